// The frame pipeline as pure code on the real event loop: one connection's
// frames run in order, and a long run of them gives the event loop turns, so
// other sockets and timers are not held behind a burst.
import { describe, expect, test } from "bun:test";
import { FramePipeline, InflightBudget } from "../src/transport/ws/pipeline.ts";

const LIMITS = { frames: 10_000, bytes: 1 << 30, sliceMs: 2 };

/** Keeps the thread busy for about `ms`, as handling a large frame does. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe("FramePipeline", () => {
  test("a burst of frames gives the event loop turns between them, and still runs them in order", async () => {
    const pipeline = new FramePipeline(LIMITS, new InflightBudget(1 << 30));
    const ran: number[] = [];
    let doneBeforeTurn = -1;
    // Scheduled before the burst arrives: without turns it runs only after all 50 frames.
    setImmediate(() => (doneBeforeTurn = ran.length));
    const finished = new Promise<void>((resolve) => {
      for (let i = 0; i < 50; i++) {
        pipeline.next(
          1,
          async () => {
            busy(1);
            ran.push(i);
            if (i === 49) resolve();
          },
          (error) => {
            throw error;
          },
        );
      }
    });
    await finished;
    expect(ran).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(doneBeforeTurn).toBeGreaterThanOrEqual(0);
    expect(doneBeforeTurn).toBeLessThan(50);
  });
});
