/**
 * Every failure the SDK reports. `code` is the broker's error code
 * ("unknown_target", "unauthorized", …) or one of the SDK's own:
 * "timeout", "closed", "unavailable", "unreachable", "decrypt_failed", "no_key",
 * "invalid", "too_large", "protocol", "listener_error", "token_failed".
 */
export class SwitchboardError extends Error {
  readonly code: string;

  constructor(code: string, message?: string, options?: { cause?: unknown }) {
    super(message ?? code, options);
    this.name = "SwitchboardError";
    this.code = code;
  }
}
