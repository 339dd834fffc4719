// The two ways a command fails: a usage error (exit 2) or anything else (exit 1).
import { SwitchboardError } from "@switchboard/client";

export class UsageError extends Error {}

export class CliError extends Error {}

/**
 * A failed send, on one line. One that may have been stored (the answer
 * never came) names the id it was written with: sent again with `--id`, it
 * cannot become a second message.
 */
export function sendFailed(error: unknown): CliError {
  if (!(error instanceof SwitchboardError)) return new CliError(`send failed: ${error instanceof Error ? error.message : String(error)}`);
  const detail = error.message && error.message !== error.code ? `: ${error.message}` : "";
  const again = error.sendId === undefined ? "" : ` (it may have been stored: to send it again, add --id ${error.sendId})`;
  return new CliError(`send failed: ${error.code}${detail}${again}`);
}
