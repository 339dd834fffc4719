// JWT presences end when their token does: once a second this instance's
// presences with a passed exp are ended with `expired` (the socket gets the
// error frame and close 4001, the client reconnects with a fresh token).
import type { LocalPresence } from "./local-presences.ts";
import type { Clock } from "./timing.ts";

// The contract allows 5 s after exp; a second's scan stays well within it.
const SCAN_INTERVAL_MS = 1000;

export class TokenExpiry {
  private readonly tracked = new Set<LocalPresence>();
  private timer: Timer | undefined;

  constructor(private readonly clock: Clock) {}

  track(presence: LocalPresence): void {
    if (presence.tokenExpiresAt === undefined) return;
    this.tracked.add(presence);
    this.timer ??= setInterval(() => this.scan(), SCAN_INTERVAL_MS);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.tracked.clear();
  }

  private scan(): void {
    const now = this.clock();
    for (const presence of this.tracked) {
      if (presence.ended) this.tracked.delete(presence);
      else if ((presence.tokenExpiresAt ?? Number.POSITIVE_INFINITY) <= now) {
        this.tracked.delete(presence);
        presence.link.end("expired");
      }
    }
    if (this.tracked.size === 0) this.stop();
  }
}
