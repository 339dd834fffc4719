// A connection that keeps sending what the broker refuses (frames past a rate
// limit, frames that do not parse, sends to nobody) is closed rather than
// answered frame by frame: a refusal costs the broker as much as the frame it
// answers, so a peer that ignores its refusals could keep an instance busy,
// and slow everyone else on it, for free.
import type { Reply } from "./wire.ts";

const MINUTE_MS = 60_000;

/**
 * Refusals of one connection in a sliding minute, estimated as the other
 * limits are (this minute's count plus the fading part of the previous one's).
 */
export class RefusalCount {
  private minute = -1;
  private current = 0;
  private previous = 0;

  /** Counts one refusal; true once they are more than `perMinute`. */
  add(now: number, perMinute: number): boolean {
    const minute = Math.floor(now / MINUTE_MS);
    if (minute !== this.minute) {
      this.previous = minute === this.minute + 1 ? this.current : 0;
      this.current = 0;
      this.minute = minute;
    }
    this.current++;
    const elapsed = (now % MINUTE_MS) / MINUTE_MS;
    return this.previous * (1 - elapsed) + this.current > perMinute;
  }
}

/** Every error answer refuses what the peer sent, except one that reports the broker's own failure. */
export const isRefusal = (frame: Reply): frame is Extract<Reply, { type: "error" }> => frame.type === "error" && frame.code !== "internal";
