// `hook forward` on its own: the same command, options and failures as from
// the whole command line (cli.ts), loading only what it needs.
import { parseCommandArgs } from "./args.ts";
import { makeContext } from "./command.ts";
import { hookForward } from "./commands/hook.ts";
import { report } from "./report.ts";

export async function runHookForward(given: string[]): Promise<number> {
  try {
    return (await hookForward.run(makeContext(parseCommandArgs(given, hookForward.options), hookForward.words.length))) ?? 0;
  } catch (error) {
    return report(error);
  }
}
