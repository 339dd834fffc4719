// Ephemeral sends are never stored: only recipients connected now, and able
// to take the priority, receive one. Those with a socket here are pushed to
// at once; the others, whose receiving presences other instances hold, are
// handed to one of those instances through the relay table
// (store/ephemeral-relay.ts), which pushes it by the same rules
// (ephemeral-relay.ts). One push per recipient in all.
import type { Database } from "@switchboard/db";
import type { Logger } from "../log.ts";
import { relayEphemeral, type EphemeralMessage, type RelayTarget } from "../store/ephemeral-relay.ts";
import { presencesReceiving } from "../store/presences.ts";
import type { NewMessage } from "../store/queue/index.ts";
import { routeSend } from "../store/routing.ts";
import { takesPushes, type LocalPresences } from "./local-presences.ts";
import type { Clock } from "./timing.ts";

export interface EphemeralContext {
  db: Database;
  presences: LocalPresences;
  clock: Clock;
  instanceId: string;
  /** Whether other instances may hold sockets (a shared Postgres server, not the embedded database). */
  crossInstance: boolean;
  log: Logger;
}

/**
 * Pushes the message to one of the member's presences here that takes pushes
 * now and is among `allowed`; whether one took it. A socket that is backing
 * up is marked so, and gets nothing more until it drains.
 */
export function pushToMember(
  presences: LocalPresences,
  clock: Clock,
  memberId: string,
  allowed: ReadonlySet<string>,
  message: EphemeralMessage,
): boolean {
  for (const p of presences.ofMember(memberId)) {
    if (!takesPushes(p) || !allowed.has(p.presenceId)) continue;
    const result = p.link.pushEphemeral(message);
    if (result !== "sent") presences.markCongested(p, clock());
    if (result === "dropped") continue;
    return true;
  }
  return false;
}

/**
 * How many recipients it went to: those a socket here took, and those handed
 * to another instance holding a presence of theirs that may receive it now;
 * null when the target is unknown.
 */
export async function pushEphemeral(ctx: EphemeralContext, m: NewMessage, senderPubkey: string): Promise<number | null> {
  const { db, presences, clock } = ctx;
  const route = await routeSend(db, m);
  if (!route.known) return null;
  const receiving = await presencesReceiving(db, route.recipientIds, m.priority, ctx.instanceId);
  const message: EphemeralMessage = {
    messageId: m.id,
    meshId: m.meshId,
    senderPubkey,
    targetSpec: m.targetSpec,
    priority: m.priority,
    nonce: m.nonce,
    ciphertext: m.ciphertext,
    createdAt: new Date(clock()).toISOString(),
    replyTo: m.replyTo,
  };
  const allowed = new Set(receiving.map((p) => p.presenceId));
  const reached = new Set(route.recipientIds.filter((memberId) => pushToMember(presences, clock, memberId, allowed, message)));
  const targets = ctx.crossInstance ? elsewhere(receiving, reached, ctx.instanceId) : [];
  try {
    await relayEphemeral(db.relaxed, message, targets);
  } catch (error) {
    // Those recipients miss it, as they would a moment offline; the send stands for the others.
    ctx.log.warn({ err: error, messageId: m.id, instances: targets.length }, "relaying an ephemeral send to other instances failed");
    return reached.size;
  }
  return reached.size + targets.reduce((n, t) => n + t.recipients.length, 0);
}

/**
 * The recipients not reached here, each given to one other instance that
 * holds a receiving presence of theirs (the first found: of the instance
 * that renewed its lease last), with its presences there: one push per
 * recipient, as here.
 */
function elsewhere(
  receiving: Array<{ presenceId: string; memberId: string; instanceId: string }>,
  reached: ReadonlySet<string>,
  instanceId: string,
): RelayTarget[] {
  const instanceOf = new Map<string, string>();
  const byInstance = new Map<string, Map<string, string[]>>();
  for (const p of receiving) {
    if (p.instanceId === instanceId || reached.has(p.memberId)) continue;
    const to = instanceOf.get(p.memberId) ?? p.instanceId;
    if (to !== p.instanceId) continue;
    instanceOf.set(p.memberId, to);
    const members = byInstance.get(to) ?? new Map<string, string[]>();
    byInstance.set(to, members);
    members.set(p.memberId, [...(members.get(p.memberId) ?? []), p.presenceId]);
  }
  return [...byInstance].map(([to, members]) => ({
    instanceId: to,
    recipients: [...members].map(([memberId, presenceIds]) => ({ memberId, presenceIds })),
  }));
}
