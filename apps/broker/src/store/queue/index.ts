// The delivery queue: every transition of a delivery, one function each.
//   enqueue  (none)   → queued      enqueueSends
//   claim    queued   → leased      claimForPresences
//   ack      leased   → acked       ackDeliveries
//   requeue  leased   → queued      requeue (presence ended, push not written, lease ran out)
//   expire   queued   → expired     expireDeliveries
//   drop     queued|leased → gone   dropUndelivered (recipient revoked)
//   prune    settled  → gone        pruneExpiredMessages, pruneSettledMessages
export * from "./ack.ts";
export * from "./claim.ts";
export * from "./drop.ts";
export * from "./eligibility.ts";
export * from "./enqueue.ts";
export * from "./expire.ts";
export * from "./prune.ts";
export * from "./requeue.ts";
export * from "./types.ts";
