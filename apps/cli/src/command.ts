// The shape of a command: the words that name it, its options, and run().
import type { Args, OptionSpecs } from "./args.ts";
import { loadConfig, type Config } from "./config.ts";
import { UsageError } from "./errors.ts";

export interface Context {
  args: Args;
  /** Positionals after the command words. */
  operands: string[];
  json: boolean;
  config(): Config;
}

export interface Command {
  words: string[];
  /** Operands and options, e.g. "<slug> [--name N]". */
  usage: string;
  summary: string;
  options: OptionSpecs;
  /** Resolves to the exit code (0 when omitted). */
  run(ctx: Context): Promise<number | void>;
}

export function makeContext(args: Args, wordCount: number): Context {
  let config: Config | undefined;
  return {
    args,
    operands: args.positionals.slice(wordCount),
    json: args.flag("json"),
    config: () => (config ??= loadConfig(args)),
  };
}

/** Refuses the global --json for a command whose output is for another program, not for reading: it would be ignored. */
export function refuseJson(ctx: Context, command: string, why: string): void {
  if (ctx.json) throw new UsageError(`--json is not an option of ${command}: ${why}`);
}

/** Exactly the named operands, in order. */
export function operands(ctx: Context, names: string[]): string[] {
  const given = ctx.operands;
  if (given.length < names.length) {
    throw new UsageError(`missing ${names.slice(given.length).map((n) => `<${n}>`).join(" ")}`);
  }
  if (given.length > names.length) {
    throw new UsageError(`unexpected argument "${given[names.length]}"`);
  }
  // An empty one ("$SLUG" unset, say) is refused here, not sent for the broker to refuse by its field's name.
  const empty = given.findIndex((g) => g === "");
  if (empty >= 0) throw new UsageError(`<${names[empty]}> is empty`);
  return given;
}
