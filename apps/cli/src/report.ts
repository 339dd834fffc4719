// A command's failure as one line on stderr and its exit code: 2 for a usage
// error, 1 for anything else (0 for a reader that went away).
import { CliError, UsageError } from "./errors.ts";
import { isClosedPipe, oneLine } from "./output.ts";

export function report(error: unknown): number {
  if (isClosedPipe(error)) return 0;
  const message = error instanceof Error ? error.message : String(error);
  // One line, as every line peers can put text in: an error may quote them.
  process.stderr.write(`switchboard: ${oneLine(message.split("\n")[0] ?? "")}\n`);
  if (error instanceof UsageError) return 2;
  if (!(error instanceof CliError) && process.env.SWITCHBOARD_DEBUG && error instanceof Error) {
    process.stderr.write(`${error.stack ?? ""}\n`);
  }
  return 1;
}
