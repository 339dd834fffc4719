// A connection that keeps sending what the broker refuses (frames past a rate
// limit, frames that do not parse, sends to nobody) is closed rather than
// answered frame by frame: a refusal costs the broker as much as the frame it
// answers, so a peer that ignores its refusals could keep an instance busy,
// and slow everyone else on it, for free.
import { emptyWindow, estimate, windowAt } from "../../services/rate-limit.ts";
import type { Reply } from "./wire.ts";

/** Refusals of one connection in a sliding minute, estimated as the rate limits are. */
export class RefusalCount {
  private window = emptyWindow();

  /** Counts one refusal; true once they are more than `perMinute`. */
  add(now: number, perMinute: number): boolean {
    this.window = windowAt(this.window, now);
    this.window.current++;
    return estimate(this.window, now) > perMinute;
  }
}

/** Every error answer refuses what the peer sent, except one that reports the broker's own failure. */
export const isRefusal = (frame: Reply): frame is Extract<Reply, { type: "error" }> => frame.type === "error" && frame.code !== "internal";
