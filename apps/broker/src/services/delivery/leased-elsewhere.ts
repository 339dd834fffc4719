// Deliveries a send statement of another instance leased to presences here,
// which its notice names (services/bus.ts): read with their messages as soon
// as the notice comes — no write, no commit — and handed to the pump, which
// pushes them as a send's own leases, and hands back at once what a
// presence cannot take now or is no longer here to take. Notices are read
// one batch after another, so the deliveries of later sends never go out
// before those of earlier ones; and the pump's claims wait for what notices
// named before they began (settled), so a sender's later message that went
// through the queue does not go out before its earlier one leased by its send.
// After the bus listened again, what notices name from then on (newer sends)
// waits for the recovery of what was missed meanwhile (holdLaterUntil).
import type { Database } from "@switchboard/db";
import type { Logger } from "../../log.ts";
import { readLeases, type LeasedDelivery } from "../../store/queue/index.ts";
import { retryRepeatable } from "../retry.ts";

/** Deliveries read in one statement. */
const MAX_PER_READ = 500;

export class LeasedElsewhere {
  /** Named by notices, in the order they came. */
  private readonly named: Array<{ presenceId: string; seq: number }> = [];
  private reading: Promise<void> | null = null;
  private stopped = false;
  /** How many were ever named, and how many of those are handed out (or left to their leases). */
  private taken = 0;
  private done = 0;
  private readonly waiting: Array<{ upTo: number; resolve: () => void }> = [];
  /** Named from the at-th on, deliveries are read only once gate resolves. */
  private readonly gates: Array<{ at: number; gate: Promise<void> }> = [];

  constructor(
    private readonly db: Database,
    private readonly hand: (leased: LeasedDelivery[]) => Promise<void>,
    private readonly log: Logger,
  ) {}

  /** A notice's deliveries, as [presence id, delivery id]. */
  take(pushes: Array<[presenceId: string, seq: number]>): void {
    if (this.stopped) return;
    for (const [presenceId, seq] of pushes) this.named.push({ presenceId, seq });
    this.taken += pushes.length;
    this.reading ??= this.read();
  }

  /** Resolves once everything named so far is handed out (or left to its lease); what comes later is not waited for. */
  settled(): Promise<void> {
    if (this.done >= this.taken) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push({ upTo: this.taken, resolve }));
  }

  /** What notices name from now on is read only once `gate` resolves; what they named so far is not held. */
  holdLaterUntil(gate: Promise<void>): void {
    if (!this.stopped) this.gates.push({ at: this.taken, gate });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.reading;
  }

  private finished(count: number): void {
    this.done += count;
    for (const w of this.waiting.filter((w) => w.upTo <= this.done)) {
      this.waiting.splice(this.waiting.indexOf(w), 1);
      w.resolve();
    }
  }

  private async read(): Promise<void> {
    try {
      while (this.named.length > 0 && !this.stopped) {
        const next = this.taken - this.named.length;
        const gate = this.gates[0];
        if (gate !== undefined && gate.at <= next) {
          this.gates.shift();
          await gate.gate;
          continue;
        }
        const named = this.named.splice(0, Math.min(MAX_PER_READ, gate === undefined ? MAX_PER_READ : gate.at - next));
        try {
          // Those no longer leased to the presence named (it ended, and they
          // went back to the queue) are not read.
          await this.hand(await retryRepeatable(() => readLeases(this.db.relaxed, named)));
        } catch (error) {
          this.log.warn({ err: error, deliveries: named.length }, "pushing deliveries leased by another instance failed; their leases will run out");
        } finally {
          this.finished(named.length);
        }
      }
    } finally {
      this.reading = null;
      // Stopped: nothing named is waited for any more.
      if (this.stopped) this.finished(this.taken - this.done);
    }
  }
}
