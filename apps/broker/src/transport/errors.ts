// The one mapping from the broker's outcomes to the wire: error codes to
// HTTP statuses, the ends of a presence to WebSocket close codes.
import { CLOSE_CODES, type FrameErrorCode, type HelloErrorCode } from "@switchboard/protocol";
import type { EndReason } from "../services/local-presences.ts";

/** Every error code a refusal can carry, and the HTTP status it is answered with. */
export const HTTP_STATUS = {
  // Frame and body errors (docs/protocol.md).
  invalid: 400,
  too_large: 413,
  unknown_target: 404,
  rate_limited: 429,
  forbidden: 403,
  // The recipient takes no more for now: the sender should wait and send again, as after 429's other cause.
  queue_full: 429,
  internal: 500,
  // Hello refusals; over HTTP only `unauthorized` occurs.
  malformed: 400,
  timestamp_skew: 400,
  bad_signature: 401,
  unauthorized: 401,
  replayed: 401,
  capacity: 503,
  no_hello: 400,
  hello_timeout: 408,
  expired: 401,
  // Routes.
  not_found: 404,
  conflict: 409,
  method_not_allowed: 405,
  upgrade_required: 426,
  unavailable: 503,
} as const satisfies Record<FrameErrorCode | HelloErrorCode, number> & Record<string, number>;

export type ErrorCode = keyof typeof HTTP_STATUS;

/**
 * How the broker closes a presence's socket, by why it ends it; `notice`:
 * the error frame's code written just before the close.
 */
export const END_CLOSE: Record<EndReason, { code: number; reason: string; notice?: HelloErrorCode | FrameErrorCode }> = {
  replaced: { code: CLOSE_CODES.replaced, reason: "replaced" },
  revoked: { code: CLOSE_CODES.revoked, reason: "revoked" },
  lease_lost: { code: CLOSE_CODES.goingAway, reason: "lease lost" },
  shutdown: { code: CLOSE_CODES.goingAway, reason: "shutting down" },
  stalled: { code: CLOSE_CODES.tryAgainLater, reason: "stalled" },
  expired: { code: CLOSE_CODES.expired, reason: "expired", notice: "expired" },
};

/** A refused hello closes the socket with this code and the error code as reason. */
export const HELLO_REFUSED_CLOSE = CLOSE_CODES.policy;
