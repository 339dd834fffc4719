// Ephemeral sends are never stored: only recipients connected to this
// instance and able to take the priority now receive one, and only a push a
// socket took counts.
import type { Database } from "@switchboard/db";
import { presencesReceiving } from "../store/presences.ts";
import type { NewMessage } from "../store/queue/index.ts";
import { routeSend } from "../store/routing.ts";
import { takesPushes, type LocalPresences } from "./local-presences.ts";
import type { Clock } from "./timing.ts";

/** How many recipients a socket took it for (one push per recipient); null when the target is unknown. */
export async function pushEphemeral(
  db: Database,
  presences: LocalPresences,
  clock: Clock,
  m: NewMessage,
  senderPubkey: string,
): Promise<number | null> {
  const route = await routeSend(db, m);
  if (!route.known) return null;
  const receiving = new Set((await presencesReceiving(db, route.recipientIds, m.priority)).map((p) => p.presenceId));
  const message = {
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
  let delivered = 0;
  for (const memberId of route.recipientIds) {
    for (const p of presences.ofMember(memberId)) {
      if (!takesPushes(p) || !receiving.has(p.presenceId)) continue;
      const result = p.link.pushEphemeral(message);
      if (result !== "sent") presences.markCongested(p, clock());
      if (result === "dropped") continue;
      delivered++;
      break;
    }
  }
  return delivered;
}
