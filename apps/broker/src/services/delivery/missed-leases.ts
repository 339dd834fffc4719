// Notices sent while the bus's listening connection was away are lost. For
// work in the queue that costs a catch-up interval at most; but a notice that
// named deliveries a send elsewhere leased to presences here was their only
// news: they are leased, not queued, so the catch-up does not find them, and
// they would wait for their lease to run out. Once the bus listens again the
// pump recovers them, as one round (rounds.ts): it lists the leases of its
// presences, keeps those no window holds, waits for the acks read so far to
// be written (a push acked meanwhile has left its window, and its row is
// then no longer leased), renews those still leased and pushes them, each
// tested against its window once more (an ack that failed puts its pushes
// back). What notices name after the bus came back waits for it
// (leased-elsewhere.ts), and a send's own hand-out of a delivery it pushed,
// or a notice of one that came late, leaves the delivery alone
// (notRecovered), so nothing goes out twice and newer sends go out after.
import type { Database } from "@switchboard/db";
import type { Logger } from "../../log.ts";
import { leasesOf, renewLeases, type LeasedDelivery } from "../../store/queue/index.ts";
import type { LocalPresence, LocalPresences } from "../local-presences.ts";
import { retryRepeatable } from "../retry.ts";
import type { Clock } from "../timing.ts";
import type { AckCommits } from "./acks.ts";

export interface MissedLeasesDeps {
  db: Database;
  presences: LocalPresences;
  acks: AckCommits;
  /** Pushes a send's leases (the pump's hand-out); runs inside the recovery's round. */
  hand: (leased: LeasedDelivery[]) => Promise<void>;
  log: Logger;
  leaseSeconds: number;
  clock: Clock;
  /** Deliveries read and renewed in one statement. */
  perRead: number;
}

export class MissedLeases {
  /** Deliveries recovered, by id, with when: a hand-out of them may still come for as long as their lease. */
  private readonly recovered = new Map<number, number>();

  constructor(private readonly deps: MissedLeasesDeps) {}

  /** Recovers them; to be run as a round of its own (rounds.ts). */
  async recover(stopped: () => boolean): Promise<void> {
    const { db, acks, log, leaseSeconds, perRead } = this.deps;
    try {
      const { listed, notPushed } = await this.leasesNotPushed();
      if (notPushed.length > 0) await acks.awaitedSoFar();
      let handed = 0;
      for (let i = 0; i < notPushed.length && !stopped(); i += perRead) {
        const part = notPushed.slice(i, i + perRead);
        const renewed = await retryRepeatable(() => renewLeases(db.relaxed, part, leaseSeconds));
        const leased = renewed.filter((d) => this.deps.presences.get(d.presenceId)?.window.holds(d.messageId) !== true);
        this.remember(leased);
        await this.deps.hand(leased);
        handed += leased.length;
      }
      log.info({ leases: listed, deliveries: handed }, "looked for deliveries leased here whose notices were missed");
    } catch (error) {
      log.warn({ err: error }, "looking for deliveries leased here failed; their leases will run out");
    }
  }

  /** A send's or a notice's leases but those a recovery handed out already. */
  notRecovered(leased: LeasedDelivery[]): LeasedDelivery[] {
    this.prune();
    if (this.recovered.size === 0) return leased;
    return leased.filter((d) => !this.recovered.delete(d.seq));
  }

  /**
   * The leases of the presences here none of them pushed: how many leases
   * were listed, and those their windows do not hold, in queue order (they
   * go out in parts, each after the one before). A push whose lease ran out
   * has left its window too, but its row's lease, taken before the push,
   * ended before the window's, and leasesOf leaves it out. A presence with
   * such a push gives what it is handed back to the queue (pump.hand).
   */
  private async leasesNotPushed(): Promise<{ listed: number; notPushed: Array<{ presenceId: string; seq: number }> }> {
    const open = new Map<string, LocalPresence>();
    for (const p of this.deps.presences.all()) if (!p.ended) open.set(p.presenceId, p);
    if (open.size === 0) return { listed: 0, notPushed: [] };
    const held = await retryRepeatable(() => leasesOf(this.deps.db.relaxed, [...open.keys()]));
    const notPushed = held.filter((l) => open.get(l.presenceId)?.window.holds(l.messageId) === false).sort((a, b) => a.seq - b.seq);
    return { listed: held.length, notPushed };
  }

  private remember(leased: LeasedDelivery[]): void {
    this.prune();
    const now = this.deps.clock();
    for (const d of leased) {
      this.recovered.delete(d.seq);
      this.recovered.set(d.seq, now);
    }
  }

  // Kept in the order they were added: the oldest are first.
  private prune(): void {
    const now = this.deps.clock();
    for (const [seq, at] of this.recovered) {
      if (now - at < this.deps.leaseSeconds * 1000) break;
      this.recovered.delete(seq);
    }
  }
}
