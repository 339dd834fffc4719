// Sends. Durable sends are group-committed: the messages and deliveries of
// every send in a batch are written in one transaction, and each sender gets
// its ack only after that commit. Ephemeral sends are never stored.
import type { Database, Executor } from "@switchboard/db";
import type { ErrorFrame, SendAck, SendFrame } from "@switchboard/protocol";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import {
  existingChannels,
  findMessagesByClientId,
  livePresencesOfMembers,
  resolveRecipients,
  writeSends,
  type NewMessage,
} from "../store/messages.ts";
import { createBatcher, retryTransient } from "./batcher.ts";
import { pushFrame, type DeliveryPump } from "./delivery.ts";
import { RateLimiter } from "./rate-limit.ts";
import { receives } from "./status-rules.ts";
import type { LocalPresence, SessionRegistry } from "./sessions.ts";
import { memberWake, type Wakeups } from "./wakeups.ts";

// Room for the fields a push adds around nonce and ciphertext.
const PUSH_OVERHEAD_BYTES = 512;

export interface MessagingOptions {
  maxMessageBytes: number;
  defaultTtlSeconds: number;
  sendRateLimitPerMin: number;
}

interface SendItem {
  message: NewMessage;
}

type Outcome =
  | { ok: true; messageId: string; recipients: number; duplicate: boolean; recipientIds: string[] }
  | { ok: false; code: "unknown_target" | "internal"; message: string };

type Reply = Omit<SendAck, "reqId"> | Omit<ErrorFrame, "reqId">;

/** Sends with the same key are one message (null client ids never collide). */
const keyOf = (m: NewMessage) => (m.clientId === null ? m.id : `${m.senderId} ${m.clientId}`);

export class Messaging {
  private readonly limiter: RateLimiter;
  private readonly batcher;

  constructor(
    private readonly db: Database,
    private readonly sessions: SessionRegistry,
    private readonly pump: DeliveryPump,
    private readonly wakeups: Wakeups,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly options: MessagingOptions,
  ) {
    this.limiter = new RateLimiter(options.sendRateLimitPerMin);
    this.batcher = createBatcher<SendItem, Outcome>((items) => this.flushIsolating(items), 500);
  }

  prune(): void {
    this.limiter.prune();
  }

  async send(sender: LocalPresence, frame: SendFrame): Promise<Reply> {
    const id = frame.id ?? null;
    const refuse = (code: ErrorFrame["code"], message: string): Reply => {
      this.metrics.messagesRejected.labels(code).inc();
      return id === null ? { type: "error", code, message } : { type: "error", code, message, id };
    };
    if (sender.role === "observer") return refuse("forbidden", "observers may not send");
    const bytes = Buffer.byteLength(frame.nonce) + Buffer.byteLength(frame.ciphertext) + frame.targetSpec.length;
    if (bytes + PUSH_OVERHEAD_BYTES > this.options.maxMessageBytes) {
      return refuse("too_large", `nonce and ciphertext must stay under ${this.options.maxMessageBytes - PUSH_OVERHEAD_BYTES} bytes`);
    }
    if (!this.limiter.allow(sender.memberId)) {
      return refuse("rate_limited", `more than ${this.options.sendRateLimitPerMin} sends in a minute`);
    }

    const message: NewMessage = {
      id: crypto.randomUUID(),
      meshId: sender.meshId,
      senderId: sender.memberId,
      clientId: id,
      targetSpec: frame.targetSpec,
      priority: frame.priority,
      nonce: frame.nonce,
      ciphertext: frame.ciphertext,
      replyTo: frame.replyTo ?? null,
      ttlSeconds: frame.ttlSeconds ?? this.options.defaultTtlSeconds,
    };
    const outcome = frame.ephemeral ? await this.sendEphemeral(message, sender.pubkey) : await this.batcher.submit({ message });
    if (!outcome.ok) return refuse(outcome.code, outcome.message);
    if (!outcome.duplicate) this.metrics.messagesRouted.labels(frame.priority).inc();
    return {
      type: "ack",
      id,
      messageId: outcome.messageId,
      queued: !frame.ephemeral,
      recipients: outcome.recipients,
      ...(outcome.duplicate ? { duplicate: true as const } : {}),
    };
  }

  private async resolve(tx: Executor, messages: NewMessage[]): Promise<Array<string[] | Outcome>> {
    const recipients = await resolveRecipients(
      tx,
      messages.map((m, idx) => ({ idx, meshId: m.meshId, senderId: m.senderId, targetSpec: m.targetSpec })),
    );
    const channels = await existingChannels(
      tx,
      messages.filter((m) => m.targetSpec.startsWith("#")).map((m) => ({ meshId: m.meshId, channel: m.targetSpec })),
    );
    return messages.map((m, idx): string[] | Outcome => {
      const ids = recipients.get(idx) ?? [];
      if (m.targetSpec.startsWith("#") && !channels.has(`${m.meshId} ${m.targetSpec}`)) {
        return { ok: false, code: "unknown_target", message: `no channel ${m.targetSpec} in this mesh` };
      }
      if (/^[0-9a-f]{64}$/.test(m.targetSpec) && ids.length === 0) {
        return { ok: false, code: "unknown_target", message: "no member with that pubkey in this mesh" };
      }
      return ids;
    });
  }

  // One send the database refuses must not fail the others of its batch:
  // after a failed batch each send is written alone, and only the culprit fails.
  private async flushIsolating(items: SendItem[]): Promise<Outcome[]> {
    try {
      return await this.flush(items);
    } catch (error) {
      if (items.length === 1) throw error;
      this.log.warn({ err: error, sends: items.length }, "send batch failed; writing its sends one by one");
      return Promise.all(
        items.map((item) =>
          this.flush([item]).then(
            (outcomes) => outcomes[0]!,
            (e: unknown): Outcome => {
              this.log.error({ err: e }, "send failed");
              return { ok: false, code: "internal", message: "the broker could not store this message" };
            },
          ),
        ),
      );
    }
  }

  private async flush(items: SendItem[]): Promise<Outcome[]> {
    const messages = items.map((i) => i.message);
    const written = await retryTransient(() => writeSends(this.db, messages));
    const inserted = new Map<string, NewMessage>();
    for (const w of written) if (w.inserted) inserted.set(keyOf(messages[w.idx]!), messages[w.idx]!);
    // A retry whose first copy another instance committed during this statement.
    const unresolved = written.filter((w) => w.known && !w.inserted && !w.priorId && !inserted.has(keyOf(messages[w.idx]!)));
    const late = await findMessagesByClientId(
      this.db,
      unresolved.map((w) => ({ senderId: messages[w.idx]!.senderId, clientId: messages[w.idx]!.clientId! })),
    );
    const recipientsOf = new Map<string, string[]>();
    const outcomes = written.map((w): Outcome => {
      const m = messages[w.idx]!;
      if (!w.known) {
        const what = m.targetSpec.startsWith("#") ? `no channel ${m.targetSpec} in this mesh` : "no member with that pubkey in this mesh";
        return { ok: false, code: "unknown_target", message: what };
      }
      const recipientIds = JSON.parse(w.recipients) as string[];
      if (w.inserted) {
        recipientsOf.set(m.id, recipientIds);
        return { ok: true, messageId: m.id, recipients: recipientIds.length, duplicate: false, recipientIds };
      }
      if (w.priorId) return { ok: true, messageId: w.priorId, recipients: w.priorRecipients, duplicate: true, recipientIds: [] };
      const sibling = inserted.get(keyOf(m));
      if (sibling) {
        return { ok: true, messageId: sibling.id, recipients: recipientIds.length, duplicate: true, recipientIds: [] };
      }
      const found = late.find((e) => e.senderId === m.senderId && e.clientId === m.clientId);
      if (!found) throw new Error(`message ${m.id} was neither inserted nor found`);
      return { ok: true, messageId: found.messageId, recipients: found.recipients, duplicate: true, recipientIds: [] };
    });
    const woken = [...new Set([...recipientsOf.values()].flat())];
    this.pump.wake(woken);
    if (woken.length > 0) {
      // After the commit: other instances claim rows that are already there.
      this.wakeups
        .publish(this.db, memberWake(woken, messages.map((m) => m.meshId)))
        .catch((error) => this.log.warn({ err: error }, "wake-up not published; the catch-up sweep will deliver"));
    }
    return outcomes;
  }

  // Only recipients connected to this instance and able to take the priority
  // now receive an ephemeral message; nothing is written.
  private async sendEphemeral(m: NewMessage, senderPubkey: string): Promise<Outcome> {
    const [resolved] = await this.resolve(this.db, [m]);
    if (!Array.isArray(resolved)) return resolved!;
    const live = await livePresencesOfMembers(this.db, resolved);
    const chosen = new Map<string, string>();
    for (const p of live) {
      const local = this.sessions.get(p.presenceId);
      if (!local || local.closed || !receives(p.status, m.priority)) continue;
      if (!chosen.has(p.memberId)) chosen.set(p.memberId, p.presenceId);
    }
    const createdAt = new Date().toISOString();
    for (const presenceId of chosen.values()) {
      const local = this.sessions.get(presenceId)!;
      local.socket.send(
        JSON.stringify(
          pushFrame({
            presenceId,
            memberId: local.memberId,
            messageId: m.id,
            meshId: m.meshId,
            senderPubkey,
            targetSpec: m.targetSpec,
            priority: m.priority,
            nonce: m.nonce,
            ciphertext: m.ciphertext,
            createdAt,
            replyTo: m.replyTo,
            attempt: 1,
            seq: 0,
          }),
        ),
      );
    }
    this.log.debug({ messageId: m.id, recipients: chosen.size }, "ephemeral send");
    return { ok: true, messageId: m.id, recipients: chosen.size, duplicate: false, recipientIds: [] };
  }
}
