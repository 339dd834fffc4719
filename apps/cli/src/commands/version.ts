// version: which release of the command line this is.
import type { Command } from "../command.ts";
import { operands } from "../command.ts";
import { out, outJson } from "../output.ts";
import { VERSION } from "../version.ts";

export const version: Command = {
  words: ["version"],
  usage: "",
  summary: "print this command line's version (also --version)",
  options: {},
  async run(ctx) {
    operands(ctx, []);
    if (ctx.json) return outJson({ version: VERSION });
    await out(`switchboard ${VERSION}`);
  },
};
