// request(): a send whose answer is the first message carrying its messageId
// as replyTo. Replies are watched from before the send goes out, since one
// could in principle arrive before the send's ack.
import { SwitchboardError } from "./errors.ts";
import type { Message, SendResult } from "./types.ts";

type Subscribe = (fn: (m: Message) => void) => () => void;

export class ReplyWaiters {
  private readonly failers = new Set<(error: SwitchboardError) => void>();

  constructor(private readonly subscribe: Subscribe) {}

  /**
   * `send` is given a signal aborted at the timeout: a send still unanswered
   * then is withdrawn (never written again), and the timeout names its `id`
   * as `sendId`, since the broker may have stored it.
   */
  request(send: (withdraw: AbortSignal) => Promise<SendResult>, sendId: string, timeoutMs: number): Promise<Message> {
    return new Promise<Message>((resolve, reject) => {
      const withdraw = new AbortController();
      let messageId: string | null = null;
      const early: Message[] = [];
      const finish = () => {
        unsubscribe();
        clearTimeout(timer);
        this.failers.delete(fail);
      };
      const fail = (error: unknown) => {
        finish();
        reject(error);
      };
      const unsubscribe = this.subscribe((m) => {
        if (m.replyTo === null) return;
        if (messageId === null) early.push(m);
        else if (m.replyTo === messageId) {
          finish();
          resolve(m);
        }
      });
      const timer = setTimeout(() => {
        const unanswered = messageId === null;
        if (unanswered) withdraw.abort();
        fail(
          unanswered
            ? new SwitchboardError("timeout", `the broker did not answer the request within ${timeoutMs} ms; it may have been stored`, { sendId })
            : new SwitchboardError("timeout", `no reply within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.failers.add(fail);
      send(withdraw.signal).then(
        (result) => {
          messageId = result.messageId;
          const hit = early.find((m) => m.replyTo === messageId);
          early.length = 0;
          if (hit) {
            finish();
            resolve(hit);
          }
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
