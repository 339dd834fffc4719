// Moving queued deliveries to sockets. wake(members) marks members whose
// queues may have work; one loop claims for all of them in one statement,
// pushes, and loops while work remains. Acks are group-committed.
import type { Database } from "@switchboard/db";
import type { PushFrame } from "@switchboard/protocol";
import type { Logger } from "../log.ts";
import {
  ackDeliveries,
  claimDeliveries,
  releaseDeliveries,
  type ClaimRequest,
  type ClaimedDelivery,
} from "../store/deliveries.ts";
import { createBatcher, retryTransient } from "./batcher.ts";
import type { LocalPresence, SessionRegistry } from "./sessions.ts";

/** Pushes a presence may have unacknowledged before the broker waits for acks. */
const WINDOW = 512;
const MAX_MEMBERS_PER_CLAIM = 500;

export function pushFrame(d: ClaimedDelivery): PushFrame {
  return {
    type: "push",
    messageId: d.messageId,
    meshId: d.meshId,
    senderPubkey: d.senderPubkey,
    targetSpec: d.targetSpec,
    priority: d.priority,
    nonce: d.nonce,
    ciphertext: d.ciphertext,
    createdAt: d.createdAt,
    replyTo: d.replyTo,
    attempt: d.attempt,
  };
}

/** Pushes of this presence still awaiting an ack; those whose lease ran out no longer count (they were requeued). */
function outstanding(presence: LocalPresence): number {
  const now = Date.now();
  for (const [id, leaseEnd] of presence.inflight) if (leaseEnd <= now) presence.inflight.delete(id);
  return presence.inflight.size;
}

export class DeliveryPump {
  private readonly dirty = new Set<string>();
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly acks;

  constructor(
    private readonly db: Database,
    private readonly sessions: SessionRegistry,
    private readonly log: Logger,
    private readonly leaseSeconds: number,
  ) {
    this.acks = createBatcher<{ memberId: string; messageId: string }, void>(async (items) => {
      await retryTransient(() => ackDeliveries(db.relaxed, items));
      return items.map(() => undefined);
    }, 5000);
  }

  /** Members whose queue may hold something their local presences can take now. */
  wake(memberIds: Iterable<string>): void {
    if (this.stopped) return;
    for (const id of memberIds) if (this.sessions.hasMember(id)) this.dirty.add(id);
    if (this.dirty.size > 0) this.running ??= this.loop();
  }

  async ack(presence: LocalPresence, messageIds: string[]): Promise<void> {
    for (const id of messageIds) presence.inflight.delete(id);
    await Promise.all(messageIds.map((messageId) => this.acks.submit({ memberId: presence.memberId, messageId })));
    this.wake([presence.memberId]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.dirty.clear();
    await this.running;
    await this.acks.drain();
  }

  private async loop(): Promise<void> {
    try {
      while (this.dirty.size > 0 && !this.stopped) {
        const members = [...this.dirty].slice(0, MAX_MEMBERS_PER_CLAIM);
        for (const m of members) this.dirty.delete(m);
        const requests = members.flatMap((memberId): ClaimRequest[] => {
          const presences = this.sessions.ofMember(memberId).filter((p) => !p.closed);
          const inflight = presences.reduce((n, p) => n + outstanding(p), 0);
          const limit = WINDOW - inflight;
          if (presences.length === 0 || limit <= 0) return [];
          return [{ memberId, presenceIds: presences.map((p) => p.presenceId), limit }];
        });
        let claimed: ClaimedDelivery[];
        try {
          claimed = await retryTransient(() => claimDeliveries(this.db.relaxed, requests, this.leaseSeconds));
        } catch (error) {
          // The database is away: the catch-up sweep retries these members.
          this.log.error({ err: error, members: members.length }, "claim failed");
          return;
        }
        await this.push(claimed);
        // A full claim may have left more behind.
        const taken = new Map<string, number>();
        for (const d of claimed) taken.set(d.memberId, (taken.get(d.memberId) ?? 0) + 1);
        for (const r of requests) if ((taken.get(r.memberId) ?? 0) >= r.limit) this.dirty.add(r.memberId);
        // Let the pushes go out before the next claim (see the batcher).
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.running = null;
      if (this.dirty.size > 0 && !this.stopped) this.running = this.loop();
    }
  }

  private async push(claimed: ClaimedDelivery[]): Promise<void> {
    const undeliverable: Array<{ messageId: string; presenceId: string }> = [];
    for (const d of [...claimed].sort((a, b) => a.seq - b.seq)) {
      const presence = this.sessions.get(d.presenceId);
      if (!presence || presence.closed) {
        undeliverable.push({ messageId: d.messageId, presenceId: d.presenceId });
        continue;
      }
      presence.inflight.set(d.messageId, Date.now() + this.leaseSeconds * 1000);
      presence.socket.send(JSON.stringify(pushFrame(d)));
    }
    if (undeliverable.length > 0) {
      await retryTransient(() => releaseDeliveries(this.db.relaxed, undeliverable)).catch((error) =>
        this.log.warn({ err: error }, "release failed; the lease sweeper will requeue"),
      );
      this.wake(claimed.filter((d) => undeliverable.some((u) => u.presenceId === d.presenceId)).map((d) => d.memberId));
    }
  }
}
