// Pushes a presence's socket did not take go back to the queue, and come out
// again by a claim, in queue order. Until they have, a later delivery must
// not be pushed to that member ahead of them — on that presence or another
// of the member's: one a send statement leased directly before they were
// back (its hand-out may come just as the socket drains or its window
// opens), or one a claim that started before they were back took from
// behind them. Only a claim that started once they were back leases from the
// queue's head; once such a claim found less than the presence it chose had
// room for, nothing the member may take is left behind. The leases of a
// presence whose socket closed are on their way back from the close until
// its end is written (presence-lifecycle.ts): a wait for the frames it read,
// then the statement that requeues them. No claim for the member runs while
// pushes are on their way back: it would only hand back what it took.
import type { LocalPresence } from "../local-presences.ts";

interface Returned {
  /** Requeues of its pushes under way. */
  inFlight: number;
  /** The count of requeues ended when its last one ended. */
  endedAt: number;
}

/** By member id. */
export class HandedBack {
  private readonly returned = new Map<string, Returned>();
  private ended = 0;

  /** What a claim starting now records: a requeue ended before it is behind it. */
  get clock(): number {
    return this.ended;
  }

  /** Whether a push to the presence would overtake some of its member's pushes on their way back (claimStart: null for a send's own lease). */
  holds(presence: LocalPresence, claimStart: number | null): boolean {
    const r = this.returned.get(presence.memberId);
    if (r === undefined) return false;
    return claimStart === null || r.inFlight > 0 || claimStart < r.endedAt;
  }

  /** Whether a requeue of the member's pushes is under way. */
  returning(memberId: string): boolean {
    return (this.returned.get(memberId)?.inFlight ?? 0) > 0;
  }

  /** The members with pushes handed back that no claim has taken again yet. */
  members(): string[] {
    return [...this.returned.keys()];
  }

  /** Runs the requeue of pushes to these members handed back; they are held until a claim after it took them. */
  async requeue<T>(memberIds: string[], work: () => Promise<T>): Promise<T> {
    const marks = memberIds.map((memberId) => {
      const r = this.returned.get(memberId) ?? { inFlight: 0, endedAt: 0 };
      r.inFlight++;
      this.returned.set(memberId, r);
      return r;
    });
    try {
      return await work();
    } finally {
      // Failed too: the lease sweeper requeues them, and a redelivery comes after what was pushed since.
      this.ended++;
      for (const r of marks) {
        r.inFlight--;
        r.endedAt = this.ended;
      }
    }
  }

  /** A claim started at claimStart left nothing behind for this member's presences. */
  caughtUp(memberId: string, claimStart: number): void {
    const r = this.returned.get(memberId);
    if (r !== undefined && r.inFlight === 0 && claimStart >= r.endedAt) this.returned.delete(memberId);
  }

  /** The member has no presence here any more: nothing is left to hold. */
  forget(memberId: string): void {
    const r = this.returned.get(memberId);
    if (r !== undefined && r.inFlight === 0) this.returned.delete(memberId);
  }
}
