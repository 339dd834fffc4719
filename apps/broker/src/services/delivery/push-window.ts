// Flow control per presence: at most `capacity` pushes awaiting an ack. A
// push whose lease ran out no longer counts (the queue took it back), so a
// recipient that never acks is not stalled forever.
import type { Clock } from "../timing.ts";

export class PushWindow {
  /** message id → when its lease ends (ms). */
  private readonly leases = new Map<string, number>();

  constructor(
    private readonly capacity: number,
    private readonly clock: Clock,
  ) {}

  /** Pushes still awaiting an ack whose lease has not run out. */
  outstanding(): number {
    const now = this.clock();
    for (const [id, leaseEnd] of this.leases) if (leaseEnd <= now) this.leases.delete(id);
    return this.leases.size;
  }

  /** How many more pushes may go out now. */
  room(): number {
    return Math.max(0, this.capacity - this.outstanding());
  }

  /** When the earliest outstanding lease runs out (ms), or null when none is outstanding. */
  nextOpening(): number | null {
    let next: number | null = null;
    for (const leaseEnd of this.leases.values()) if (next === null || leaseEnd < next) next = leaseEnd;
    return next;
  }

  opened(messageId: string, leaseSeconds: number): void {
    this.leases.set(messageId, this.clock() + leaseSeconds * 1000);
  }

  /**
   * The ids of pushes still awaiting their ack here (each once, its lease
   * running), and the rest: ids never pushed here, whose lease ran out, or
   * repeated.
   */
  split(messageIds: readonly string[]): { awaited: string[]; late: string[] } {
    const now = this.clock();
    const awaited = new Set<string>();
    const late: string[] = [];
    for (const id of messageIds) {
      if (!awaited.has(id) && (this.leases.get(id) ?? 0) > now) awaited.add(id);
      else late.push(id);
    }
    return { awaited: [...awaited], late };
  }

  /** How many distinct ids among these are pushes still awaiting their ack here. */
  awaited(messageIds: readonly string[]): number {
    return this.split(messageIds).awaited.length;
  }

  settled(messageIds: Iterable<string>): void {
    for (const id of messageIds) this.leases.delete(id);
  }
}
