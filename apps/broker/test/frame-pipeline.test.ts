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
          "f",
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

  test("a frame counts by its bytes on the wire, not its characters", async () => {
    const budget = new InflightBudget(1 << 30);
    const pipeline = new FramePipeline(LIMITS, budget);
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    // 1,000 characters of three bytes each in UTF-8, and one binary frame.
    const text = JSON.stringify({ type: "ping", reqId: "€".repeat(1000) });
    const fail = (error: unknown) => {
      throw error;
    };
    pipeline.next(text, () => held, fail);
    pipeline.next(new Uint8Array(10), async () => {}, fail);
    expect(pipeline.inflight).toEqual({ frames: 2, bytes: Buffer.byteLength(text) + 10 });
    expect(Buffer.byteLength(text)).toBe(text.length + 2000);
    expect(budget.bytes).toBe(Buffer.byteLength(text) + 10);
    release();
    await new Promise<void>((resolve) => pipeline.next("", async () => resolve(), fail));
    await Bun.sleep(0);
    expect(pipeline.inflight).toEqual({ frames: 0, bytes: 0 });
    expect(budget.bytes).toBe(0);
  });
});
