/**
 * Every failure the SDK reports. `code` is the broker's error code
 * ("unknown_target", "unauthorized", …) or one of the SDK's own:
 * "timeout", "closed", "unavailable", "unreachable", "decrypt_failed", "no_key",
 * "invalid", "too_large", "protocol", "listener_error", "token_failed",
 * "outcome_unknown".
 */
export class SwitchboardError extends Error {
  readonly code: string;
  /**
   * On a send that failed without the broker's verdict (UNDECIDED_CODES):
   * the `id` it was written with (over HTTP its Idempotency-Key). The broker
   * may have stored it; sending again with this `id` cannot store it twice.
   */
  readonly sendId: string | undefined;
  /** On a failure answered over HTTP (HttpSender): the answer's status, whoever gave it (the broker or a proxy). */
  readonly httpStatus: number | undefined;
  /** On a failure answered over HTTP with `Retry-After` in seconds (`rate_limited`, `unavailable`): how long to wait before trying again. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: string, message?: string, options?: { cause?: unknown; sendId?: string; httpStatus?: number; retryAfterSeconds?: number }) {
    super(message ?? code, options);
    this.name = "SwitchboardError";
    this.code = code;
    this.sendId = options?.sendId;
    this.httpStatus = options?.httpStatus;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

/** The same failure, naming the send's id: the broker may have stored it (`note` says why, where the code does not). */
export function namingSend(error: SwitchboardError, sendId: string, note?: string): SwitchboardError {
  return new SwitchboardError(error.code, note === undefined ? error.message : `${error.message}; ${note}`, { cause: error, sendId });
}

/**
 * The codes of a failed send that say nothing of whether the broker stored
 * it, on a socket and over HTTP: `internal` too, which a database lost
 * mid-commit can leave undecided, `protocol`, an answer the SDK could not
 * read (over HTTP, a body that is not the broker's, 2xx or not), and on a
 * socket the codes that end the client before the answer came: `replaced`
 * and `revoked` (its close), and the hello refusals no reconnect retries
 * (the broker answers no send with those). Sending again with the same id is
 * safe whatever happened.
 */
export const UNDECIDED_CODES = {
  socket: new Set(["timeout", "unavailable", "closed", "internal", "protocol", "replaced", "revoked", "unauthorized", "bad_signature", "malformed"]),
  http: new Set(["timeout", "unreachable", "internal", "protocol"]),
} as const;

/** Any failure as a SwitchboardError (`code` for what is not one yet). */
export const asError = (error: unknown, code = "closed"): SwitchboardError =>
  error instanceof SwitchboardError ? error : new SwitchboardError(code, String(error), { cause: error });
