// Writing sends. Durable sends are group-committed: the messages and
// deliveries of every send in a batch are written in one statement, and each
// sender gets its answer only after that commit. A batch the database
// refuses is written again send by send, so only the culprit fails; past the
// commit, deliveries leased to presences here are pushed at once, and the
// rest are news for the queue's consumers.
import { errorCode, isConnectionLost, isDiskFull, isOutOfResources, isReadOnly, neverReachedDatabase, type Database } from "@switchboard/db";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import {
  enqueueSends,
  findSendsByClientId,
  storedSends,
  type EnqueuedSend,
  type LeasedDelivery,
  type NewMessage,
} from "../store/queue/index.ts";
import type { InstanceBus } from "./bus.ts";
import type { DbHealth } from "./db-health.ts";
import { createGroupCommit, type GroupCommit } from "./group-commit.ts";
import { refuse, type Refusal } from "./outcome.ts";
import type { QueuedWork } from "./queued-work.ts";
import { retryTransient } from "./retry.ts";

/** The most sends one flush of the group commit writes. */
export const MAX_SENDS_PER_COMMIT = 500;
const UNIQUE_VIOLATION = "23505";
// What one send statement writes at most (a single larger message goes
// alone). A statement writing megabytes of one sender's flood would hold
// every other sender's send behind it; the flood's sends past this wait for
// the next batch, while other senders' sends still join this one; and while
// a statement carries 32 KB or more of one sender's, the others' sends are
// written in a second statement beside it rather than behind it.
const MAX_SEND_BATCH_BYTES = 128 * 1024;
// Sends waiting as a statement is taken, past which one statement at a time
// falls behind: the senders are split in two halves, written side by side
// on two connections (measured in bench/RESULTS.md, "A second send statement
// for a backlog").
const SEND_BACKLOG = 100;

const sendBytes = (m: { nonce: string; ciphertext: string; targetSpec: string }) =>
  Buffer.byteLength(m.nonce) + Buffer.byteLength(m.ciphertext) + m.targetSpec.length;

/** What a send needs of the socket pump: whom it holds, where not to lease, and where to push what it leased. */
export interface LocalPushes {
  holds(meshId: string, pubkey: string): boolean;
  unavailable(): string[];
  handLeased(leased: LeasedDelivery[]): Promise<void>;
}

export interface SendCommitOptions {
  instanceId: string;
  leaseSeconds: number;
  /** Told of each failed statement: a full disk shows in /health (services/db-health.ts). */
  dbHealth: Pick<DbHealth, "unavailable">;
}

/** A send in the group commit: the message to store, and its sender's key for pushes leased at once. */
export interface PendingSend {
  message: NewMessage;
  senderPubkey: string;
}

/** `unavailable`: the database could not be reached and nothing was stored; `internal`: it may have been. */
export type CommitRefusalCode = "forbidden" | "unknown_target" | "queue_full" | "unavailable" | "internal";

/** `fullQueues`: recipients of a channel, tag or * whose queue was full, for whom nothing was written. */
export type WrittenSend =
  | { ok: true; messageId: string; recipients: number; fullQueues: number; duplicate: boolean; recipientIds: string[] }
  | Refusal<CommitRefusalCode>;

/** Sends with the same key are one message (null client ids never collide). */
const keyOf = (m: NewMessage) => (m.clientId === null ? m.id : `${m.senderId} ${m.clientId}`);

export const unknownTarget = (targetSpec: string) =>
  refuse(
    "unknown_target",
    targetSpec.startsWith("#") ? `no channel ${targetSpec} in this mesh` : "no member with that pubkey in this mesh",
  );

const queueFull = () =>
  refuse(
    "queue_full",
    "the recipient's queue is full (MAX_QUEUED_PER_MEMBER deliveries it has not taken); nothing was stored: send again once it has taken some",
  );

export class SendCommits {
  private readonly commits: GroupCommit<PendingSend, WrittenSend>;

  constructor(
    private readonly db: Database,
    private readonly pushes: LocalPushes,
    private readonly queuedWork: QueuedWork,
    private readonly bus: InstanceBus,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly options: SendCommitOptions,
  ) {
    this.commits = createGroupCommit<PendingSend, WrittenSend>((items) => this.commitBatch(items), MAX_SENDS_PER_COMMIT, {
      // Per sender in order: its sends are committed in the order it sent them.
      keyOf: (p) => p.message.senderId,
      weightOf: (p) => sendBytes(p.message),
      max: MAX_SEND_BATCH_BYTES,
      // The embedded database runs one statement at a time: a backlog split
      // there would only add statements and commits.
      lanes: { max: 2, heavy: MAX_SEND_BATCH_BYTES / 4, backlog: db.kind === "postgres" ? SEND_BACKLOG : undefined },
    });
  }

  /** Resolves once the send's batch is committed (or refused), with its answer. */
  submit(send: PendingSend): Promise<WrittenSend> {
    return this.commits.submit(send);
  }

  // A batch's time and size are the send lane's own metrics: its time, summed,
  // is how busy the lane is.
  private async commitBatch(items: PendingSend[]): Promise<WrittenSend[]> {
    const started = performance.now();
    try {
      return await this.commitIsolating(items);
    } finally {
      this.metrics.sendBatchSize.observe(items.length);
      this.metrics.sendBatchSeconds.observe((performance.now() - started) / 1000);
    }
  }

  // One send the database refuses must not fail the others of its batch:
  // after a failed batch each send is written alone, and only the culprit
  // fails. A batch is written again only when its statement failed and
  // stored nothing (storedDespite), and a message keeps its id when written
  // again, so nothing can be stored twice. The sends go one after another,
  // in their order: written side by side on several connections, a sender's
  // later send could commit (and be pushed) before its earlier one. Each send
  // is written at most twice: a lone send that failed once more (`again`)
  // gets its error.
  private async commitIsolating(items: PendingSend[], again = false, maybeStored = false): Promise<WrittenSend[]> {
    const messages = items.map((i) => i.message);
    let enqueued: EnqueuedSend[];
    try {
      const holders = {
        instanceId: this.options.instanceId,
        unavailable: this.pushes.unavailable(),
        leaseSeconds: this.options.leaseSeconds,
        notify: this.bus.crossInstance,
        // Alone on its database the instance holds every presence there is.
        recipientsHere: !this.bus.crossInstance || items.every((i) => this.pushes.holds(i.message.meshId, i.message.targetSpec)),
      };
      enqueued = await retryTransient(() => enqueueSends(this.db, messages, holders));
    } catch (error) {
      // A statement may have committed all the same when its connection was
      // lost after it was sent (or, written again, it met its own first
      // copy's id); one whose connection never opened stored nothing, and is
      // not looked up.
      const reached = (isConnectionLost(error) && !neverReachedDatabase(error)) || errorCode(error) === UNIQUE_VIOLATION;
      const stored = reached ? await this.storedDespite(error, messages) : [];
      if (stored.length > 0) return this.afterLostAnswer(items, stored);
      // Stored or not is unknown once a statement may have reached the
      // database (its lookup failed too): the caller must not take it for
      // "nothing stored" and send again without its id.
      const unknown = maybeStored || reached;
      const databaseAtFault = this.options.dbHealth.unavailable(error);
      if (items.length === 1 && again) {
        // A bug or bad data is an error; the database's state (away, or short of room) a warning.
        this.log[databaseAtFault ? "warn" : "error"]({ err: error }, "send failed");
        // Only a statement that never reached the database, or that it
        // refused for want of a resource or as read-only, this time and
        // before, certainly stored nothing.
        if (!unknown && neverReachedDatabase(error)) return [refuse("unavailable", "the database is unreachable; nothing was stored")];
        if (!unknown && (isOutOfResources(error) || isReadOnly(error))) return [refuse("unavailable", refusedWhy(error))];
        return [refuse("internal", "the broker could not store this message; it may have been stored: send it again with the same id")];
      }
      // A commit still under way when the lookup ran holds the message's id:
      // writing it again waits for that commit, fails on the id, and the
      // lookup then finds it.
      if (items.length === 1) this.log.warn({ err: error }, "send failed; writing it again");
      else this.log.warn({ err: error, sends: items.length }, "send batch failed; writing its sends one by one");
      const written: WrittenSend[] = [];
      for (const item of items) written.push(...(await this.commitIsolating([item], true, unknown)));
      return written;
    }
    // Written again and not stored, a send may have met its first write,
    // committed after the lookup for it (it waited on a lock as its
    // connection was closed as silent): a message with its id is that
    // write, stored by this send, not an earlier send it repeats.
    if (again && enqueued.some((e) => !e.inserted)) {
      const stored = await this.storedDespite(undefined, messages);
      if (stored.length > 0) return this.afterLostAnswer(items, stored);
    }
    return this.afterCommit(items, enqueued);
  }

  // The sends of a failed statement that may have committed (see
  // commitIsolating) that are stored: answering them with an error would have
  // a sender without an id send a stored message again.
  private async storedDespite(error: unknown, messages: NewMessage[]): Promise<EnqueuedSend[]> {
    const stored = await storedSends(this.db, messages, this.options.instanceId).catch((lookupError: unknown) => {
      this.log.error({ err: lookupError }, "looking up the sends of a failed statement failed");
      return [];
    });
    if (stored.length > 0) this.log.warn({ err: error, sends: messages.length, stored: stored.length }, "send statement failed after its commit");
    return stored;
  }

  // The stored sends are answered and pushed as after any commit; the rest of
  // the batch (unknown targets, retried ids, revoked senders) was not written,
  // and each is written alone for its own answer.
  private async afterLostAnswer(items: PendingSend[], stored: EnqueuedSend[]): Promise<WrittenSend[]> {
    const answered = await this.afterCommit(items, stored);
    const byIdx = new Map(stored.map((e, i) => [e.idx, answered[i]!]));
    const written: WrittenSend[] = [];
    for (const [idx, item] of items.entries()) written.push(byIdx.get(idx) ?? (await this.commitIsolating([item], true))[0]!);
    return written;
  }

  // Past the commit, nothing may turn a stored message into an error reply.
  private async afterCommit(items: PendingSend[], enqueued: EnqueuedSend[]): Promise<WrittenSend[]> {
    const messages = items.map((i) => i.message);
    // The sends this statement stored, by client id: a retry in the same batch is answered as its first copy.
    const inserted = new Map<string, { id: string; recipientIds: string[] }>();
    for (const e of enqueued) if (e.inserted) inserted.set(keyOf(messages[e.idx]!), { id: messages[e.idx]!.id, recipientIds: JSON.parse(e.recipients) as string[] });
    // A retry is answered as its first copy, whatever this copy would be
    // refused for (a full queue, a target revoked since): the statement found
    // the copies stored before it, and the batch holds its own; one another
    // instance committed during the statement is looked up here.
    const late = enqueued.filter((e) => {
      const m = messages[e.idx]!;
      return m.clientId !== null && !e.inserted && !e.priorId && !inserted.has(keyOf(m));
    });
    const found = await findSendsByClientId(
      this.db,
      late.map((e) => ({ senderId: messages[e.idx]!.senderId, clientId: messages[e.idx]!.clientId! })),
    ).catch((error: unknown) => {
      this.log.error({ err: error }, "looking up retried sends failed");
      return [];
    });

    const written = enqueued.map((e): WrittenSend => {
      const m = messages[e.idx]!;
      const firstCopy = inserted.get(keyOf(m));
      if (e.inserted) {
        const { recipientIds } = firstCopy!;
        return { ok: true, messageId: m.id, recipients: recipientIds.length, fullQueues: e.fullQueues, duplicate: false, recipientIds };
      }
      // Retries are answered as their first copy was, whatever the queues hold now.
      const copy = { fullQueues: 0, duplicate: true, recipientIds: [] };
      if (e.priorId) return { ok: true, messageId: e.priorId, recipients: e.priorRecipients, ...copy };
      if (firstCopy) return { ok: true, messageId: firstCopy.id, recipients: firstCopy.recipientIds.length, ...copy };
      const stored = found.find((s) => s.senderId === m.senderId && s.clientId === m.clientId);
      if (stored) return { ok: true, messageId: stored.messageId, recipients: stored.recipients, ...copy };
      if (e.queueFull) return queueFull();
      if (!e.known) return unknownTarget(m.targetSpec);
      if (!e.senderLive) return refuse("forbidden", "the sender was revoked");
      // Not written by this statement: the sender's retry will find the stored one.
      return refuse("internal", "the broker could not confirm this retried send; send it again");
    });

    // Deliveries written leased to presences here go out now; the rest are
    // news for the queue's consumers, here and on the other instances.
    const leased = enqueued.flatMap((e) => leasedDeliveries(items[e.idx]!, e));
    const direct = new Set(leased.map((d) => `${d.messageId} ${d.memberId}`));
    // Those leased to a presence elsewhere are its instance's to push (the statement's notice named them).
    for (const e of enqueued) {
      for (const member of JSON.parse(e.leasedElsewhere) as string[]) direct.add(`${messages[e.idx]!.id} ${member}`);
    }
    void this.pushes.handLeased(leased).catch((error: unknown) => this.log.error({ err: error }, "push of leased deliveries failed"));
    const queued = new Set<string>();
    for (const w of written) {
      if (!w.ok) continue;
      for (const member of w.recipientIds) if (!direct.has(`${w.messageId} ${member}`)) queued.add(member);
    }
    // The other instances were told by the statement itself (see enqueueSends).
    this.queuedWork.forMembers(queued);
    return written;
  }
}

function leasedDeliveries({ message, senderPubkey }: PendingSend, e: EnqueuedSend): LeasedDelivery[] {
  const rows = JSON.parse(e.leased) as Array<{ memberId: string; presenceId: string; seq: number }>;
  return rows.map((row) => ({
    messageId: message.id,
    meshId: message.meshId,
    senderPubkey,
    targetSpec: message.targetSpec,
    priority: message.priority,
    nonce: message.nonce,
    ciphertext: message.ciphertext,
    createdAt: e.createdAt,
    replyTo: message.replyTo,
    presenceId: row.presenceId,
    memberId: row.memberId,
    attempt: 1,
    seq: row.seq,
  }));
}

/** The refusal of a statement the database refused for want of a resource, or as read-only. */
function refusedWhy(error: unknown): string {
  if (isDiskFull(error)) return "the database has no disk space left to store it; nothing was stored";
  if (isReadOnly(error)) return "the database is read-only (a standby, or a primary demoted by a failover); nothing was stored";
  return `the database is short of a resource (SQLSTATE ${errorCode(error)}); nothing was stored`;
}
