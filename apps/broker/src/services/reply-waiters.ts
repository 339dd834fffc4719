// HTTP senders waiting for a reply (POST /v1/messages?wait=S). A waiter
// looks for its reply right away, then again whenever QueuedWork announces
// news for its member — a commit here, or a wake-up from another instance
// over the bus — and never polls. At most `maxWaiters` wait on an instance
// at a time; past that a send that asks to wait is refused before it is
// stored, so the caller can retry without a duplicate.
import type { Database } from "@switchboard/db";
import type { Logger } from "../log.ts";
import { endReplyWait, takeReply, type TakenReply } from "../store/queue/index.ts";
import { queuedWork, type InstanceBus } from "./bus.ts";
import type { QueueConsumer, QueuedWork } from "./queued-work.ts";
import { retryTransient } from "./retry.ts";
import type { Clock } from "./timing.ts";

interface Waiter {
  memberId: string;
  meshId: string;
  wake: () => void;
}

export interface ReplyWait {
  requestId: string;
  memberId: string;
  meshId: string;
  deadline: number;
  /** When this wait's hold on the replies ends (holdReplies): its end releases them only if no later wait holds them. Null: unknown, its end releases them. */
  heldUntil: string | null;
  /** Aborted when the caller went away: the wait ends and the reply stays queued. */
  signal: AbortSignal;
}

export class ReplyWaiters implements QueueConsumer {
  private readonly byMember = new Map<string, Set<Waiter>>();
  private reserved = 0;
  private stopping = false;
  private readonly active = new Set<Promise<unknown>>();

  constructor(
    private readonly db: Database,
    private readonly queuedWork: QueuedWork,
    private readonly bus: InstanceBus,
    private readonly log: Logger,
    private readonly options: { maxWaiters: number; clock: Clock },
  ) {}

  /** A slot for one more waiter, or false when the instance has its fill; release() it after wait(). */
  reserve(): boolean {
    if (this.stopping || this.reserved >= this.options.maxWaiters) return false;
    this.reserved++;
    return true;
  }

  release(): void {
    this.reserved = Math.max(0, this.reserved - 1);
  }

  members(memberIds: readonly string[]): void {
    for (const id of memberIds) for (const w of this.byMember.get(id) ?? []) w.wake();
  }

  /** After the bus reconnected: a wake-up may have been missed, so every waiter looks again. */
  wakeAll(): void {
    for (const set of this.byMember.values()) for (const w of set) w.wake();
  }

  meshes(meshIds: readonly string[]): void {
    const meshes = new Set(meshIds);
    for (const set of this.byMember.values()) for (const w of set) if (meshes.has(w.meshId)) w.wake();
  }

  /**
   * The instance stops: every wait ends now, without its reply (answered as
   * the stored send it is, before the listener closes, so no caller is cut
   * off and sends again); resolves when their held replies went back.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeAll();
    await Promise.all(this.active);
  }

  /** The first reply to the request owed to its sender, taken (acked), or null at the deadline, on abort or when the instance stops. */
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
    let news = false;
    let wakeUp: (() => void) | null = null;
    const waiter: Waiter = {
      memberId: req.memberId,
      meshId: req.meshId,
      wake: () => {
        news = true;
        wakeUp?.();
      },
    };
    const onAbort = () => waiter.wake();
    req.signal.addEventListener("abort", onAbort);
    this.add(waiter);
    let ended: "reply" | "deadline" | "aborted" | "stopping" | "failed" = "failed";
    try {
      // Registered before the first look: a reply committed after it is news.
      for (;;) {
        if (req.signal.aborted) {
          ended = "aborted";
          return null;
        }
        if (this.stopping) {
          ended = "stopping";
          return null;
        }
        news = false;
        const reply = await retryTransient(() => takeReply(this.db, req.requestId, req.memberId));
        if (reply) {
          ended = "reply";
          return reply;
        }
        const left = req.deadline - this.options.clock();
        if (left <= 0) {
          ended = "deadline";
          return null;
        }
        if (!news) await this.until(left, (fn) => (wakeUp = fn));
        wakeUp = null;
      }
    } finally {
      req.signal.removeEventListener("abort", onAbort);
      this.remove(waiter);
      await this.end(req.requestId, req.heldUntil);
      this.log.debug({ requestId: req.requestId, ended }, "reply wait ended");
    }
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
  // consumers now, not when the hold runs out.
  private async end(requestId: string, heldUntil: string | null): Promise<void> {
    try {
      const members = await retryTransient(() =>
        this.db.transaction(async (tx) => {
          const requeued = await endReplyWait(tx, requestId, heldUntil);
          if (requeued.length > 0) await this.bus.publish(tx, queuedWork(requeued, []));
          return requeued;
        }),
      );
      this.queuedWork.forMembers(members);
    } catch (error) {
      this.log.warn({ err: error, requestId }, "ending a reply wait failed; held replies return when their hold runs out");
    }
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
