// What this instance's sockets hold unsent, together. Each socket is bounded
// by SOCKET_BUFFER_BYTES and in time by STALLED_PRESENCE_SECONDS, but many
// peers that stop reading at once (laptops asleep, or a member's sockets
// asking for history and never reading it) would hold the sum of their
// bounds. Past INSTANCE_SOCKET_BUFFER_BYTES the backed-up sockets holding
// the most are ended as stalled, until the rest fit: a closed socket's
// buffer is freed at once, and its leases go back to the queue, in order.
import type { Logger } from "../log.ts";
import type { LocalPresences } from "./local-presences.ts";

/** The backed-up sockets a check left, and what they hold unsent together. */
export interface UnsentHeld {
  backedUp: number;
  heldBytes: number;
}

export class UnsentBudget {
  private checkScheduled = false;

  constructor(
    private readonly presences: LocalPresences,
    private readonly limitBytes: number,
    private readonly log: Logger,
  ) {}

  /**
   * A write left a socket holding bytes unsent: the sum is checked once the
   * turn's writes are done, once however many there were.
   */
  grew(): void {
    if (this.checkScheduled) return;
    this.checkScheduled = true;
    setImmediate(() => {
      this.checkScheduled = false;
      this.enforce();
    });
  }

  /** Ends the backed-up sockets holding the most until the rest fit. */
  enforce(): UnsentHeld {
    const held = this.presences
      .congestedSince(Number.POSITIVE_INFINITY)
      .map((presence) => ({ presence, bytes: presence.link.unsentBytes() }));
    let total = held.reduce((sum, h) => sum + h.bytes, 0);
    let ended = 0;
    if (total > this.limitBytes) {
      for (const { presence, bytes } of held.sort((a, b) => b.bytes - a.bytes)) {
        if (total <= this.limitBytes) break;
        this.log.warn(
          { presenceId: presence.presenceId, memberId: presence.memberId, unsentBytes: bytes, heldBytes: total, limitBytes: this.limitBytes },
          "socket buffers over budget",
        );
        presence.link.end("stalled");
        total -= bytes;
        ended++;
      }
    }
    return { backedUp: held.length - ended, heldBytes: total };
  }
}
