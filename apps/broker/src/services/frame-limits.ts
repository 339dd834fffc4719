// Every frame type a presence may send is limited per member, so no frame is
// free to flood with: sends by SendService's own limit, acks by the number of
// ids they carry that no push on the connection awaits (the acks of its own
// pushes are bounded by its push window), every other frame (status,
// channels, peers, ping, and any frame added later) by one control limit.
import type { SessionFrame } from "@switchboard/protocol";
import type { LocalPresence } from "./local-presences.ts";
import { refuse, type Refusal } from "./outcome.ts";
import { RateLimiter } from "./rate-limit.ts";
import type { Clock } from "./timing.ts";

export interface FrameLimitOptions {
  controlPerMin: number;
  ackIdsPerMin: number;
  clock: Clock;
}

export class FrameLimits {
  private readonly control: RateLimiter;
  private readonly acks: RateLimiter;

  constructor(private readonly options: FrameLimitOptions) {
    this.control = new RateLimiter(options.controlPerMin);
    this.acks = new RateLimiter(options.ackIdsPerMin);
  }

  /** Null when the frame may go on; nothing of a refused frame is counted. */
  check(presence: Pick<LocalPresence, "memberId" | "window">, frame: SessionFrame): Refusal<"rate_limited"> | null {
    const now = this.options.clock();
    switch (frame.type) {
      case "send":
        return null;
      case "client_ack": {
        const unawaited = frame.messageIds.length - presence.window.awaited(frame.messageIds);
        if (unawaited === 0 || this.acks.allow(presence.memberId, now, unawaited)) return null;
        return refuse(
          "rate_limited",
          `more than ${this.options.ackIdsPerMin} acknowledged ids in a minute that no push on this connection awaited; these were not applied`,
        );
      }
      default:
        return this.control.allow(presence.memberId, now)
          ? null
          : refuse("rate_limited", `more than ${this.options.controlPerMin} ${frame.type} and other control frames in a minute`);
    }
  }

  prune(): void {
    const now = this.options.clock();
    this.control.prune(now);
    this.acks.prune(now);
  }
}
