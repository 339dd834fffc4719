// A tool failure the model sees as {code, message} with isError: true.
import { SwitchboardError } from "@switchboard/client";

export class ToolError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** A send that failed without the broker's verdict: its id, to send it again at most once. */
    readonly sendId?: string,
  ) {
    super(message);
  }
}

export function toolErrorOf(error: unknown): ToolError {
  if (error instanceof ToolError) return error;
  if (error instanceof SwitchboardError) return new ToolError(error.code, error.message, error.sendId);
  return new ToolError("internal", error instanceof Error ? error.message : String(error));
}
