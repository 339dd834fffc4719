// The delivery queue: every transition of a delivery, one function each.
//   enqueue  (none)   → queued      enqueueSends
//   claim    queued   → leased      claimForPresences (sockets), claimForHolder (webhooks)
//   hold     (none)   → leased      enqueueSends, for a reply a waiting HTTP sender is owed (reply.ts)
//   ack      leased   → acked       ackDeliveries, ackHeldBy (webhooks), takeReplies (waiting HTTP senders): moved to acked_deliveries
//   requeue  leased   → queued      requeue (presence or holder ended, push not written, lease ran out), endReplyWait
//   return   acked    → queued      returnTakenReply (taken for a waiting HTTP sender that went away before its answer)
//   expire   queued   → expired     expireDeliveries
//   drop     queued|leased → gone   dropUndelivered (recipient revoked), dropUndeliveredOfRevoked (queued by sends under way then)
//   prune    settled  → gone        pruneMessages
// and the bound on a queue: markFullQueues (members whose queue is full get no new deliveries),
// which counts the queue's depth in the same walk
export * from "./ack.ts";
export * from "./claim.ts";
export * from "./drop.ts";
export * from "./eligibility.ts";
export * from "./enqueue.ts";
export * from "./expire.ts";
export * from "./full-queues.ts";
export * from "./inspect.ts";
export * from "./prune.ts";
export * from "./reply.ts";
export * from "./requeue.ts";
export * from "./stored-sends.ts";
export * from "./types.ts";
