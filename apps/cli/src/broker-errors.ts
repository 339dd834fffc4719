// A call to the broker that failed, as the one line a command fails with.
import { SwitchboardError } from "@switchboard/client";
import { CliError } from "./errors.ts";

/** A failed call to the broker, on one line: what failed, the code, why. */
export function brokerError(what: string, error: unknown): CliError {
  if (!(error instanceof SwitchboardError)) return new CliError(`${what}: ${error instanceof Error ? error.message : String(error)}`);
  const detail = error.message && error.message !== error.code ? `: ${error.message}` : "";
  return new CliError(`${what}: ${error.code}${detail}`);
}

/**
 * A failed send, on one line. One that may have been stored (the answer
 * never came, or the broker failed it) names the id it was written with:
 * sent again with `--id`, it cannot become a second message.
 */
export function sendFailed(error: unknown): CliError {
  const failed = brokerError("send failed", error);
  const sendId = error instanceof SwitchboardError ? error.sendId : undefined;
  if (sendId === undefined) return failed;
  // Not "it may have been stored": the broker's own line may say that nothing was (a full disk).
  return new CliError(`${failed.message} (to send it again, add --id ${sendId}: it is stored at most once)`);
}
