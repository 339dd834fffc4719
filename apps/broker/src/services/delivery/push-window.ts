// Flow control per presence: at most `capacity` pushes awaiting an ack. A
// push whose lease ran out no longer counts (the queue takes it back), so a
// recipient that never acks is not stalled forever: it gets that push again.
// Its lease is the instance's LEASE_SECONDS, as the queue's. Until the queue
// has taken such pushes back, the presence is leased nothing (see lapsed()),
// so they come again ahead of what waits behind them in the queue.
//
// Every send statement asks every local presence for its room, and every
// push asks again: with thousands of presences and hundreds of pushes
// outstanding each, a scan of the window per question cost more than the
// push. Leases are kept in the order they end (one lease length; a push
// opened again moves to the end), so the ones that ran out are always at
// the front.
import type { Clock } from "../timing.ts";

/** Acked ids: of pushes awaiting their ack on the connection, and the rest. */
export interface AckedIds {
  awaited: string[];
  late: string[];
}

export class PushWindow {
  /** message id → when its lease ends (ms), in that order. */
  private readonly leases = new Map<string, number>();

  private readonly leaseMs: number;
  /** How many leases ran out here so far. */
  private lapses = 0;
  /** How many of them the queue has taken back (tookBackLapsed). */
  private takenBack = 0;

  constructor(
    private readonly capacity: number,
    leaseSeconds: number,
    private readonly clock: Clock,
  ) {
    this.leaseMs = leaseSeconds * 1000;
  }

  /** Pushes still awaiting an ack whose lease has not run out. */
  outstanding(): number {
    if (this.leases.size === 0) return 0;
    const now = this.clock();
    for (const [id, leaseEnd] of this.leases) {
      if (leaseEnd > now) break;
      this.leases.delete(id);
      this.lapses++;
    }
    return this.leases.size;
  }

  /** Whether a push's lease ran out here and the queue has not been told to take it back yet. */
  lapsed(): boolean {
    return this.lapseMark() > this.takenBack;
  }

  /** The leases that ran out so far, for tookBackLapsed. */
  lapseMark(): number {
    this.outstanding();
    return this.lapses;
  }

  /**
   * The queue took back the leases that had run out at `mark`. One that ran
   * out while it did so is not among them (its lease may not have ended
   * yet by the database's clock), so it still counts as lapsed.
   */
  tookBackLapsed(mark: number): void {
    this.takenBack = Math.max(this.takenBack, mark);
  }

  /**
   * Nothing pushed here awaits its ack and no lapsed lease is left for the
   * queue to take back: the window keeps no push out, and cannot start to
   * until a push opens in it again.
   */
  idle(): boolean {
    return this.outstanding() === 0 && this.lapses <= this.takenBack;
  }

  /** How many more pushes may go out now. */
  room(): number {
    return Math.max(0, this.capacity - this.outstanding());
  }

  /** When the earliest outstanding lease runs out (ms), or null when none is outstanding. */
  nextOpening(): number | null {
    this.outstanding();
    const first = this.leases.values().next();
    return first.done ? null : first.value;
  }

  /** Whether a push of this message went out here and awaits its ack (one whose lease ran out may be counted as lapsed already). */
  holds(messageId: string): boolean {
    return this.leases.has(messageId);
  }

  opened(messageId: string): void {
    this.leases.delete(messageId);
    this.leases.set(messageId, this.clock() + this.leaseMs);
  }

  /**
   * The ids of pushes still awaiting their ack here (each once, its lease
   * running), and the rest: ids never pushed here, whose lease ran out, or
   * repeated.
   */
  split(messageIds: readonly string[]): AckedIds {
    const now = this.clock();
    const awaited = new Set<string>();
    const late: string[] = [];
    for (const id of messageIds) {
      if (!awaited.has(id) && (this.leases.get(id) ?? 0) > now) awaited.add(id);
      else late.push(id);
    }
    return { awaited: [...awaited], late };
  }

  /** Their acks were read: they no longer count. Returns what they were, for unsettled. */
  settled(messageIds: Iterable<string>): Array<[messageId: string, leaseEnd: number]> {
    const removed: Array<[string, number]> = [];
    for (const id of messageIds) {
      const leaseEnd = this.leases.get(id);
      if (leaseEnd === undefined) continue;
      this.leases.delete(id);
      removed.push([id, leaseEnd]);
    }
    return removed;
  }

  /** Acks that were not committed after all: those pushes await their acks again, with the leases they had. */
  unsettled(pushes: Array<[messageId: string, leaseEnd: number]>): void {
    if (pushes.length === 0) return;
    const all = [...this.leases, ...pushes.filter(([id]) => !this.leases.has(id))].sort((a, b) => a[1] - b[1]);
    this.leases.clear();
    for (const [id, leaseEnd] of all) this.leases.set(id, leaseEnd);
  }
}
