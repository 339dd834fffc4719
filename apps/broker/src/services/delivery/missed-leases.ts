// Notices sent while the bus's listening connection was away are lost. For
// work in the queue that costs a catch-up interval at most; but a notice that
// named deliveries a send elsewhere leased to presences here was their only
// news: they are leased, not queued, so the catch-up does not find them, and
// they would wait for their lease to run out. Once the bus listens again the
// pump looks for them: every lease of a presence here that its window does
// not hold, read as it is once the acks read so far are committed, is pushed
// as a notice's would be. A send's own hand-out of one of them, or the read
// of a notice that named one and came late, follows; it leaves the delivery
// alone (notRecovered), so nothing goes out twice.
import type { Database } from "@switchboard/db";
import { leasesOf, readLeases, type LeasedDelivery } from "../../store/queue/index.ts";
import type { LocalPresence } from "../local-presences.ts";
import { retryTransient } from "../retry.ts";
import type { Clock } from "../timing.ts";

/**
 * The leases of these presences none of them pushed, with their messages.
 * Presences with a push whose lease ran out are left out: their window no
 * longer tells such a push from one never sent, and the pump takes it back.
 */
export async function leasesNotPushed(
  db: Database,
  presences: LocalPresence[],
  acksCommitted: () => Promise<void>,
): Promise<LeasedDelivery[]> {
  const open = new Map(presences.filter((p) => !p.ended && !p.window.lapsed()).map((p) => [p.presenceId, p]));
  if (open.size === 0) return [];
  const held = await retryTransient(() => leasesOf(db.relaxed, [...open.keys()]));
  const unknown = held.filter((l) => open.get(l.presenceId)?.window.holds(l.messageId) === false);
  if (unknown.length === 0) return [];
  // A push acked since it went out has left its window, and its row may be
  // leased still: once the acks read so far are committed, the read below
  // finds it acked and leaves it out.
  await acksCommitted();
  return retryTransient(() => readLeases(db.relaxed, unknown));
}

/** Deliveries the recovery handed out, by id, for as long as a hand-out of them may still come. */
export class RecoveredLeases {
  private readonly handed = new Map<number, number>();

  constructor(
    private readonly keepMs: number,
    private readonly clock: Clock,
  ) {}

  add(leased: LeasedDelivery[]): void {
    const now = this.clock();
    for (const d of leased) {
      this.handed.delete(d.seq);
      this.handed.set(d.seq, now);
    }
  }

  /** A send's or a notice's leases but those the recovery handed out already. */
  notRecovered(leased: LeasedDelivery[]): LeasedDelivery[] {
    // Kept in the order they were added: the oldest are first.
    for (const [seq, at] of this.handed) {
      if (this.clock() - at < this.keepMs) break;
      this.handed.delete(seq);
    }
    if (this.handed.size === 0) return leased;
    return leased.filter((d) => !this.handed.delete(d.seq));
  }
}
