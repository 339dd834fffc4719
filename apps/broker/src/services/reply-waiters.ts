// HTTP senders waiting for a reply (POST /v1/messages?wait=S). Replies are
// looked for per member, not per request: when a waiter comes, and whenever
// QueuedWork announces news for its member — a commit here, or a wake-up from
// another instance over the bus — one statement takes a reply for each of the
// member's waiting requests, so a backend with many requests waiting on one
// token costs one statement per news, not one per request. Never polls. At
// most `maxWaiters` wait on an instance at a time, and at most
// `maxWaitersPerMember` of one member, so one token cannot take every wait
// of the instance from the others; past either a send that asks to wait is
// refused before it is stored, so the caller can retry without a duplicate.
import type { Database, Executor } from "@switchboard/db";
import type { Logger } from "../log.ts";
import { endReplyWait, returnTakenReply, takeReplies, type FoundReply, type TakenReply } from "../store/queue/index.ts";
import type { RecentEnds } from "./recent-ends.ts";
import { queuedWork, type InstanceBus } from "./bus.ts";
import type { QueueConsumer, QueuedWork } from "./queued-work.ts";
import { retryTransient } from "./retry.ts";
import type { Clock } from "./timing.ts";

interface Waiter {
  requestId: string;
  memberId: string;
  meshId: string;
  /** Set by a look that took this request's reply. */
  found: FoundReply | null;
  /** Set by a look that failed: the wait ends with it. */
  failed: unknown;
  /** The statement under way that looks for this waiter's reply, if any. */
  looking: Promise<unknown> | null;
  wake: () => void;
}

/** Whether news came while a member's look ran (it looks again). */
interface Look {
  again: boolean;
}

/** Why a wait cannot start now. */
export type WaitRefusal = "full" | "member_full" | "stopping";

export interface ReplyWait {
  requestId: string;
  memberId: string;
  meshId: string;
  deadline: number;
  /** When this wait's hold on the replies ends (holdReplies): its end counts only while that is ahead. Null: it holds none. */
  heldUntil: string | null;
  /** Aborted when the caller went away: the wait ends and the reply stays queued. */
  signal: AbortSignal;
}

export class ReplyWaiters implements QueueConsumer {
  private readonly byMember = new Map<string, Set<Waiter>>();
  private reserved = 0;
  /** Reserved slots by member; a member with none has no entry. */
  private readonly reservedBy = new Map<string, number>();
  private isStopping = false;
  private readonly active = new Set<Promise<unknown>>();
  private readonly looks = new Map<string, Look>();

  constructor(
    private readonly db: Database,
    private readonly queuedWork: QueuedWork,
    private readonly bus: InstanceBus,
    private readonly log: Logger,
    private readonly options: { maxWaiters: number; maxWaitersPerMember: number; clock: Clock; releasedHolds: RecentEnds },
  ) {}

  /** A slot for one more waiter of the member (null), or why there is none; release() it after wait(). */
  reserve(memberId: string): WaitRefusal | null {
    if (this.isStopping) return "stopping";
    const mine = this.reservedBy.get(memberId) ?? 0;
    if (mine >= this.options.maxWaitersPerMember) return "member_full";
    if (this.reserved >= this.options.maxWaiters) return "full";
    this.reserved++;
    this.reservedBy.set(memberId, mine + 1);
    return null;
  }

  release(memberId: string): void {
    this.reserved = Math.max(0, this.reserved - 1);
    const mine = (this.reservedBy.get(memberId) ?? 1) - 1;
    if (mine <= 0) this.reservedBy.delete(memberId);
    else this.reservedBy.set(memberId, mine);
  }

  members(memberIds: readonly string[]): void {
    for (const id of memberIds) if (this.byMember.has(id)) this.look(id);
  }

  /** After the bus reconnected: a wake-up may have been missed, so every member's waiters look again. */
  wakeAll(): void {
    for (const id of this.byMember.keys()) this.look(id);
  }

  meshes(meshIds: readonly string[]): void {
    const meshes = new Set(meshIds);
    for (const [id, set] of this.byMember) if ([...set].some((w) => meshes.has(w.meshId))) this.look(id);
  }

  /** Whether the instance stops: a wait that ends without its reply now was cut short, not out of time. */
  get stopping(): boolean {
    return this.isStopping;
  }

  /**
   * The instance stops: every wait ends now, without its reply (answered as
   * the stored send it is, before the listener closes, so no caller is cut
   * off and sends again); resolves when their held replies went back.
   */
  async stop(): Promise<void> {
    this.isStopping = true;
    for (const set of this.byMember.values()) for (const w of set) w.wake();
    await Promise.all(this.active);
  }

  /**
   * The first reply to the request owed to its sender, taken (acked), or null
   * at the deadline, on abort or when the instance stops. Throws when looking
   * for it failed: the caller answers without a reply.
   */
  async wait(req: ReplyWait): Promise<TakenReply | null> {
    const run = this.waitFor(req);
    this.active.add(run);
    try {
      return await run;
    } finally {
      this.active.delete(run);
    }
  }

  private async waitFor(req: ReplyWait): Promise<TakenReply | null> {
    let wakeUp: (() => void) | null = null;
    const waiter: Waiter = {
      requestId: req.requestId,
      memberId: req.memberId,
      meshId: req.meshId,
      found: null,
      failed: null,
      looking: null,
      wake: () => wakeUp?.(),
    };
    const onAbort = () => waiter.wake();
    req.signal.addEventListener("abort", onAbort);
    this.add(waiter);
    let ended: "reply" | "returned" | "deadline" | "aborted" | "stopping" | "failed" = "deadline";
    this.log.debug({ requestId: req.requestId }, "reply wait started");
    try {
      // Registered before the first look: a reply committed after it is news.
      this.look(req.memberId);
      for (;;) {
        if (waiter.found !== null || waiter.failed !== null) break;
        if (req.signal.aborted || this.isStopping) {
          ended = req.signal.aborted ? "aborted" : "stopping";
          break;
        }
        const left = req.deadline - this.options.clock();
        if (left <= 0) break;
        await this.until(left, (fn) => (wakeUp = fn));
        wakeUp = null;
      }
    } finally {
      req.signal.removeEventListener("abort", onAbort);
      this.remove(waiter);
    }
    try {
      let reply: FoundReply | null;
      try {
        // The statement under way for this waiter may have taken its reply
        // (acked): it is this wait's answer, not lost. Later ones leave it out.
        await waiter.looking;
        reply = waiter.found;
        if (reply !== null) ended = "reply";
        else if (waiter.failed !== null) {
          ended = "failed";
          throw waiter.failed;
        }
      } finally {
        await this.end(req.requestId, req.heldUntil);
      }
      // Taken for a caller that went away meanwhile (checked last, after every
      // wait here): answered, it would be lost in a closed connection. One that
      // other waits on the request hold too is theirs to answer with.
      if (reply !== null && reply.takenNow && !reply.sharedHold && req.signal.aborted) {
        ended = "returned";
        await this.giveBack(reply.messageId, req.memberId);
        return null;
      }
      return reply;
    } finally {
      this.log.debug({ requestId: req.requestId, ended }, "reply wait ended");
    }
  }

  /**
   * Takes the first reply of each of the member's waiting requests that have
   * none yet, in one statement, and answers every wait on the request with
   * it: those that came while the statement ran too (they may have missed
   * it: a reply it took is no longer one to take). One look at a time per
   * member, and news during a look makes it look once more. A look that
   * fails ends the waits it was for, with its error.
   */
  private look(memberId: string): void {
    const running = this.looks.get(memberId);
    if (running) {
      running.again = true;
      return;
    }
    const look: Look = { again: true };
    this.looks.set(memberId, look);
    void this.lookWhileNews(memberId, look);
  }

  private async lookWhileNews(memberId: string, look: Look): Promise<void> {
    while (look.again) {
      look.again = false;
      const waiting = this.unanswered(memberId);
      if (waiting.length === 0) break;
      let settled = () => {};
      const looking = new Promise<void>((resolve) => (settled = resolve));
      for (const w of waiting) w.looking = looking;
      try {
        const requestIds = [...new Set(waiting.map((w) => w.requestId))];
        const replies = await retryTransient(() => takeReplies(this.db, memberId, requestIds));
        const byRequest = new Map(replies.map((reply) => [reply.replyTo, reply]));
        // The waits it looked for, those that ended meanwhile included (theirs
        // is acked now: it is their answer), and those that came since.
        for (const w of new Set([...waiting, ...this.unanswered(memberId)])) {
          if (w.found !== null || w.failed !== null) continue;
          const reply = byRequest.get(w.requestId);
          if (reply === undefined) continue;
          w.found = reply;
          w.wake();
        }
        // Waits on the same requests elsewhere look again, and find what was taken here.
        if (replies.some((r) => r.sharedHold)) {
          await this.bus.publish(this.db, queuedWork([memberId], [])).catch((error: unknown) => {
            this.log.warn({ err: error, memberId }, "a shared reply's wake-up not published; waits elsewhere answer at their deadline");
          });
        }
      } catch (error) {
        this.log.warn({ err: error, memberId }, "looking for replies failed");
        for (const w of waiting) {
          w.failed = error;
          w.wake();
        }
      } finally {
        settled();
      }
    }
    this.looks.delete(memberId);
  }

  private unanswered(memberId: string): Waiter[] {
    return [...(this.byMember.get(memberId) ?? [])].filter((w) => w.found === null && w.failed === null);
  }

  private until(ms: number, onWake: (fn: () => void) => void): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      onWake(done);
    });
  }

  // Replies held for this request and not taken go to the member's other
  // consumers now, not when the hold runs out; and so, at the next sweeps,
  // does one a send held as the hold was released (recent-ends.ts).
  private async end(requestId: string, heldUntil: string | null): Promise<void> {
    let released = false;
    await this.queueAgain(async (tx) => {
      const ended = await endReplyWait(tx, requestId, heldUntil);
      released = ended.released;
      return ended.members;
    }).catch((error: unknown) => {
      this.log.warn({ err: error, requestId }, "ending a reply wait failed; held replies return when their hold runs out");
    });
    if (released) this.options.releasedHolds.add([requestId]);
  }

  private async giveBack(replyId: string, memberId: string): Promise<void> {
    await this.queueAgain((tx) => returnTakenReply(tx, replyId, memberId)).catch((error: unknown) => {
      this.log.error({ err: error, replyId, memberId }, "a reply taken for a caller that went away could not go back to the queue");
    });
  }

  /** Puts deliveries back in their members' queues, with news of them for the consumers here and on the other instances. */
  private async queueAgain(write: (tx: Executor) => Promise<string[]>): Promise<void> {
    const members = await retryTransient(() =>
      this.db.transaction(async (tx) => {
        const back = await write(tx);
        if (back.length > 0) await this.bus.publish(tx, queuedWork(back, []));
        return back;
      }),
    );
    this.queuedWork.forMembers(members);
  }

  private add(w: Waiter): void {
    let set = this.byMember.get(w.memberId);
    if (!set) this.byMember.set(w.memberId, (set = new Set()));
    set.add(w);
  }

  private remove(w: Waiter): void {
    const set = this.byMember.get(w.memberId);
    set?.delete(w);
    if (set?.size === 0) this.byMember.delete(w.memberId);
  }
}
