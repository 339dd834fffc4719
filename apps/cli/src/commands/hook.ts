// hook forward: what the installed hooks run (see ../hook-forward.ts).
import { refuseJson, type Command } from "../command.ts";
import { httpBase } from "../config.ts";
import { FORWARD_DEADLINE_MS, forwardHook } from "../hook-forward.ts";
import { err, oneLine } from "../output.ts";

export const hookForward: Command = {
  words: ["hook", "forward"],
  usage: "--url U --token-file FILE [--pid P]",
  summary: "send Claude Code's hook input (stdin) to the broker's /hook/set-status: what the installed hooks run; never fails",
  options: { "token-file": { type: "string" }, pid: { type: "string" } },
  async run(ctx) {
    // A usage error, as an option it does not know is: no installed hook passes it.
    refuseJson(ctx, "hook forward", "it writes one line to stderr, for Claude Code's hook log");
    // Never fails the hook: no config file is read, every problem is one line on stderr and exit 0.
    const signal = AbortSignal.timeout(FORWARD_DEADLINE_MS);
    try {
      const url = ctx.args.string("url");
      const tokenFile = ctx.args.string("token-file");
      if (url === undefined || tokenFile === undefined) throw new Error("--url and --token-file are required");
      const pid = Number(ctx.args.string("pid"));
      const stdin = new Response(Bun.stdin.stream()).text();
      const input = await Promise.race([
        stdin,
        new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(new Error("no hook input within 5 s")))),
      ]);
      const outcome = await forwardHook({
        url: httpBase(url),
        tokenFile,
        pid: Number.isInteger(pid) && pid > 0 ? pid : undefined,
        input,
        signal,
      });
      // One line, safe for a terminal: the outcome quotes what the server answered.
      await err(`switchboard hook: ${oneLine(outcome)}`);
    } catch (error) {
      await err(`switchboard hook: ${oneLine(error instanceof Error ? error.message : String(error))}`);
    }
    return 0;
  },
};
