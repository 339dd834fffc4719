// Every frame type a presence may send is limited per member, so no frame is
// free to flood with: sends by SendService's own limit, acks by the number of
// ids they carry that no push on the connection awaits (the acks of its own
// pushes are bounded by its push window), every other frame (status,
// channels, peers, ping, and any frame added later) by one control limit.
import type { SessionFrame } from "@switchboard/protocol";
import type { AckedIds } from "./delivery/push-window.ts";
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

  /**
   * Null when the frame may go on; nothing of a refused frame is counted. An
   * ack frame is checked by ackedWithin instead.
   */
  check(presence: Pick<LocalPresence, "memberId">, frame: Exclude<SessionFrame, { type: "client_ack" }>): Refusal<"rate_limited"> | null {
    const now = this.options.clock();
    switch (frame.type) {
      case "send":
        return null;
      default:
        return this.control.allow(presence.memberId, now)
          ? null
          : refuse("rate_limited", `more than ${this.options.controlPerMin} ${frame.type} and other control frames in a minute`);
    }
  }

  /**
   * The ids of an ack frame that may be applied, split as the push window
   * tells them apart: all of them within the limit; past it only those a
   * push on this connection awaits (never counted), the rest refused and not
   * applied.
   */
  ackedWithin(presence: Pick<LocalPresence, "memberId" | "window">, messageIds: readonly string[]): { acked: AckedIds; refusal: Refusal<"rate_limited"> | null } {
    const acked = presence.window.split(messageIds);
    if (acked.late.length === 0 || this.acks.allow(presence.memberId, this.options.clock(), acked.late.length)) return { acked, refusal: null };
    return {
      acked: { awaited: acked.awaited, late: [] },
      refusal: refuse(
        "rate_limited",
        `more than ${this.options.ackIdsPerMin} acknowledged ids in a minute that no push on this connection awaited; those ${acked.late.length} were not applied`,
      ),
    };
  }

  prune(): void {
    const now = this.options.clock();
    this.control.prune(now);
    this.acks.prune(now);
  }
}
