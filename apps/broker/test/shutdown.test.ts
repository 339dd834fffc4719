// Graceful shutdown: the broker closes its sockets with 1001 and exits 0. Its
// own deadline (9 s) ends a shutdown that hangs with exit code 1, so exit code
// 0 also says the shutdown finished in time; how long it took is no assertion.
import { afterEach, describe, expect, test } from "bun:test";
import { TestBroker } from "@switchboard/testkit";

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.dispose();
  broker = undefined;
});

function openSocket(url: string): Promise<{ ws: WebSocket; closed: Promise<CloseEvent> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const closed = new Promise<CloseEvent>((r) => ws.addEventListener("close", r));
    ws.addEventListener("open", () => resolve({ ws, closed }));
    ws.addEventListener("error", () => reject(new Error("websocket failed to open")));
  });
}

describe("graceful shutdown", () => {
  test.each(["SIGTERM", "SIGINT"] as const)("%s closes sockets with 1001 and exits 0 before the shutdown deadline", async (signal) => {
    broker = await TestBroker.start();
    const { closed } = await openSocket(broker.wsUrl);
    broker.process.kill(signal);
    expect(await broker.process.exited).toBe(0);
    expect((await closed).code).toBe(1001);
    const events = broker.process.logs.map((l) => l.msg);
    expect(events).toContain("shutdown signal");
    expect(events).toContain("shutdown complete");
    expect(events).not.toContain("shutdown deadline passed");
    expect(events.indexOf("shutdown signal")).toBeLessThan(events.indexOf("shutdown complete"));
  });
});
