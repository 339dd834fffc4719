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

  /** Whether the message was pushed here and awaits its ack, its lease running. */
  awaits(messageId: string): boolean {
    return (this.leases.get(messageId) ?? 0) > this.clock();
  }

  /** How many distinct ids among these are pushes still awaiting their ack here. */
  awaited(messageIds: readonly string[]): number {
    return new Set(messageIds.filter((id) => this.awaits(id))).size;
  }

  settled(messageIds: Iterable<string>): void {
    for (const id of messageIds) this.leases.delete(id);
  }
}
