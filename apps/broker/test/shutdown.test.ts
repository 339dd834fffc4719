// Graceful shutdown: the broker closes its sockets with 1001 and exits 0. Its
// own deadline (9 s) ends a shutdown that hangs with exit code 1, so exit code
// 0 also says the shutdown finished in time; how long it took is no assertion.
import { afterEach, describe, expect, test } from "bun:test";
import { spawnRaw, TestBroker } from "@switchboard/testkit";

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

describe("a stop signal while the broker starts", () => {
  test("SIGTERM while it waits for an unreachable database ends it with exit 0, not by the signal's default", async () => {
    const proc = spawnRaw({ DATABASE_URL: "postgres://switchboard@127.0.0.1:1/none", HOST: "127.0.0.1", BROKER_PORT: "0" });
    let stderr = "";
    const reading = (async () => {
      for await (const chunk of proc.stderr) stderr += new TextDecoder().decode(chunk);
    })();
    // Waiting for its database: it has logged the first failed attempt.
    for (const end = Date.now() + 30_000; !stderr.includes("db ping failed") && Date.now() < end; ) await Bun.sleep(50);
    expect(stderr).toContain("db ping failed");
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
    const code = await proc.exited;
    clearTimeout(timer);
    await reading;
    expect({ code, signal: proc.signalCode ?? null }).toEqual({ code: 0, signal: null });
    expect(stderr).toContain("stopped before the start finished");
  });
});
