// request(): a send whose answer is the first message carrying its messageId
// as replyTo, from whom may answer it (Answerers). Replies are watched from before the send goes out, since one
// could in principle arrive before the send's ack. The client hands every
// message it delivers to receive(); a waiting request is no listener of
// `message` events, so the other messages that come meanwhile wait for the
// application's own listener instead of going to nobody.
import { namingSend, SwitchboardError, UNDECIDED_CODES } from "./errors.ts";
import type { Message, SendResult, UnreadableMessage } from "./types.ts";

/** A reply as the client had it: opened, or one whose envelope did not open (it fails the request). */
type Reply = Message | UnreadableMessage;

/** What decides whether a message answers a request, known before it is opened. */
type ReplyHeader = Pick<Message, "replyTo" | "senderPubkey" | "encrypted">;

/**
 * Who may answer a request. The broker chooses a push's replyTo, and its
 * sender for a message in the clear: a direct request takes a reply from its
 * target alone, and one that went sealed a sealed reply alone (a reply the
 * target sealed could not be sent by anyone else). Other messages naming it
 * go to the application as any message does.
 */
export interface Answerers {
  /** The request's target, when it is a member's key; null for a channel, a tag or `*`. */
  from: string | null;
  sealed: boolean;
}

interface Waiter {
  /** The send's messageId, once the broker answered it. */
  messageId: string | null;
  answerers: Answerers;
  /** Replies that came before the send's answer. */
  early: Reply[];
  settle(reply: Reply): void;
}

function answers(w: Waiter, reply: ReplyHeader): boolean {
  return (
    w.messageId !== null &&
    w.messageId === reply.replyTo &&
    (w.answerers.from === null || w.answerers.from === reply.senderPubkey) &&
    (!w.answerers.sealed || reply.encrypted)
  );
}

export class ReplyWaiters {
  private readonly failers = new Set<(error: SwitchboardError) => void>();
  private readonly waiters = new Set<Waiter>();

  /** `sent`: a request's send was answered with messageId; a reply held back for a listener may be handed over now. */
  constructor(private readonly sent: (messageId: string) => void) {}

  /** Whether a waiting request takes this message as its reply. */
  awaits(reply: ReplyHeader): boolean {
    if (reply.replyTo === null) return false;
    for (const w of this.waiters) if (answers(w, reply)) return true;
    return false;
  }

  /** A message delivered by the client, or one that did not open: the reply of the request it answers, if one waits. */
  receive(m: Reply): void {
    if (m.replyTo === null) return;
    for (const w of [...this.waiters]) {
      if (w.messageId === null) w.early.push(m);
      else if (answers(w, m)) w.settle(m);
    }
  }

  /**
   * `send` is given a signal aborted at the timeout: a send still unanswered
   * then is withdrawn (never written again), and the timeout names its `id`
   * as `sendId`, since the broker may have stored it.
   */
  request(send: (withdraw: AbortSignal) => Promise<SendResult>, sendId: string, timeoutMs: number, answerers: Answerers): Promise<Message> {
    return new Promise<Message>((resolve, reject) => {
      const withdraw = new AbortController();
      const waiter: Waiter = {
        messageId: null,
        answerers,
        early: [],
        // A reply the client cannot open is no answer to wait on: its error ends the request.
        settle: (reply) => {
          finish();
          if ("payload" in reply) resolve(reply);
          else reject(reply.error);
        },
      };
      const finish = () => {
        this.waiters.delete(waiter);
        clearTimeout(timer);
        this.failers.delete(failOnEnd);
      };
      const fail = (error: unknown) => {
        finish();
        reject(error);
      };
      this.waiters.add(waiter);
      const timer = setTimeout(() => {
        const unanswered = waiter.messageId === null;
        if (unanswered) withdraw.abort();
        fail(
          unanswered
            ? new SwitchboardError("timeout", `the broker did not answer the request within ${timeoutMs} ms; it may have been stored`, { sendId })
            : new SwitchboardError("timeout", `no reply within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      // The client ended: a send it had not had answered may be stored, so
      // the error names its id, as the send's own would.
      const failOnEnd = (error: SwitchboardError) =>
        fail(
          waiter.messageId === null && UNDECIDED_CODES.socket.has(error.code) && error.sendId === undefined
            ? namingSend(error, sendId)
            : error,
        );
      this.failers.add(failOnEnd);
      send(withdraw.signal).then(
        (result) => {
          if (!this.waiters.has(waiter)) return;
          waiter.messageId = result.messageId;
          const hit = waiter.early.find((m) => answers(waiter, m));
          waiter.early.length = 0;
          if (hit) waiter.settle(hit);
          else this.sent(result.messageId);
        },
        // The send's own error (invalid, too_large, …): the SDK throws only
        // its own, and anything else goes on as it is, not disguised as closed.
        fail,
      );
    });
  }

  failAll(error: SwitchboardError): void {
    for (const fail of [...this.failers]) fail(error);
  }
}
