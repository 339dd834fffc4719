// A tool failure the model sees as {code, message} with isError: true.
import { SwitchboardError } from "@switchboard/client";

export class ToolError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function toolErrorOf(error: unknown): ToolError {
  if (error instanceof ToolError) return error;
  if (error instanceof SwitchboardError) return new ToolError(error.code, error.message);
  return new ToolError("internal", error instanceof Error ? error.message : String(error));
}
