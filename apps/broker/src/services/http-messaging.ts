// The HTTP messaging API (docs/http.md): a member without a socket sends as
// itself with an API token, through the same SendService as a socket (the
// same checks, rate limit and group commit), may wait for the reply, and may
// read what became of its messages.
import type { Database } from "@switchboard/db";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { holdReplies, messageState, type MessageState, type TakenReply } from "../store/queue/index.ts";
import { UUID } from "../store/sql.ts";
import type { ApiSender } from "../store/directory.ts";
import type { ApiSenders } from "./api-senders.ts";
import { refuse } from "./outcome.ts";
import type { ReplyWaiters, WaitRefusal } from "./reply-waiters.ts";
import { retryTransient } from "./retry.ts";
import type { SendOutcome, SendRequest, SendService } from "./sending.ts";
import type { Clock } from "./timing.ts";

export interface HttpSend {
  request: SendRequest;
  /** Seconds to wait for the reply; absent → answer at the commit. */
  waitSeconds?: number;
  /** Aborted when the caller disconnects. */
  signal: AbortSignal;
}

export type HttpSendOutcome =
  | { ok: true; messageId: string; recipients: number; fullQueues: number; duplicate: boolean; waited: boolean; reply: TakenReply | null }
  | Exclude<SendOutcome, { ok: true }>;

/** Who reads a message's status: its sender (by API token), or the admin. */
export type Reader = { memberId: string } | "admin";

// A hold outlives the wait a little, so a reply committed at the deadline is
// still held while the waiter looks one last time.
const HOLD_GRACE_SECONDS = 5;

const WAIT_REFUSED: Record<WaitRefusal, string> = {
  stopping: "this instance is stopping; send again (another instance takes it)",
  full: "too many requests are waiting for replies on this instance; retry shortly",
  member_full: "too many of this member's requests are waiting for replies on this instance; retry shortly",
};

export class HttpMessaging {
  constructor(
    private readonly db: Database,
    private readonly senders: ApiSenders,
    private readonly sending: SendService,
    private readonly waiters: ReplyWaiters,
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** The member an API token acts as; null for an unknown, revoked or non-API token. */
  authenticate(token: string): Promise<ApiSender | null> {
    return this.senders.find(token);
  }

  async send(sender: ApiSender, { request, waitSeconds, signal }: HttpSend): Promise<HttpSendOutcome> {
    if (waitSeconds === undefined) {
      const sent = await this.sending.send(sender, request);
      return sent.ok ? { ...sent, waited: false, reply: null } : sent;
    }
    // Refused before anything is stored, so a retry makes no duplicate.
    const full = this.waiters.reserve(sender.memberId);
    if (full !== null) {
      // Refused before the send service, which counts the refusals it makes.
      this.metrics.messagesRejected.labels("unavailable").inc();
      return refuse("unavailable", WAIT_REFUSED[full]);
    }
    try {
      const deadline = this.clock() + waitSeconds * 1000;
      const holdSeconds = waitSeconds + HOLD_GRACE_SECONDS;
      const sent = await this.sending.send(sender, request, { replyWaitSeconds: holdSeconds });
      if (!sent.ok) return sent;
      // Stored now: whatever fails from here is answered as the send it is,
      // without a reply, never as an error a caller would retry without its
      // key (a second message). The same key with ?wait waits again.
      try {
        // The send held the replies already (a retried send waits for the first
        // message's reply, held since then); this counts this wait among the
        // hold's, so that its end does not release another wait's. A retry
        // whose reply an earlier wait returned (in a response its caller may
        // never have read) gets it from its first look.
        const heldUntil = await retryTransient(() => holdReplies(this.db, sent.messageId, sender.memberId, holdSeconds));
        const reply = await this.waiters.wait({
          requestId: sent.messageId,
          memberId: sender.memberId,
          meshId: sender.meshId,
          deadline,
          heldUntil,
          signal,
        });
        // Cut short by the instance's stop, the wait did not wait: answered as a failed one, which says so.
        return { ...sent, waited: reply !== null || !this.waiters.stopping, reply };
      } catch (error) {
        this.log.error({ err: error, requestId: sent.messageId }, "reply wait failed");
        return { ...sent, waited: false, reply: null };
      }
    } finally {
      this.waiters.release(sender.memberId);
    }
  }

  /** The message's delivery state, for its sender or the admin; null for anyone else or an unknown id. */
  async status(messageId: string, reader: Reader): Promise<MessageState | null> {
    if (!UUID.test(messageId)) return null;
    const state = await messageState(this.db, messageId);
    if (state === null || (reader !== "admin" && state.senderId !== reader.memberId)) return null;
    return state;
  }
}

/**
 * Whether `mesh` names the sender's mesh, by id (any case) or by slug. A
 * token acts in its member's mesh only: a caller that meant another must not
 * have its message sent in this one.
 */
export function namesMesh(mesh: string, sender: ApiSender): boolean {
  return UUID.test(mesh) ? mesh.toLowerCase() === sender.meshId : mesh === sender.meshSlug;
}
