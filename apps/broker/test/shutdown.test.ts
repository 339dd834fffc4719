import { afterEach, describe, expect, test } from "bun:test";
import { freshBackend, spawnBroker, type BrokerProcess, type TestBackend } from "@switchboard/testkit";

let backend: TestBackend | undefined;
let broker: BrokerProcess | undefined;
afterEach(async () => {
  await broker?.stop();
  await backend?.dispose();
  broker = undefined;
  backend = undefined;
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
  test.each(["SIGTERM", "SIGINT"] as const)("%s closes sockets with 1001 and exits 0 within 10 s", async (signal) => {
    backend = await freshBackend();
    broker = await spawnBroker(backend.env);
    const { closed } = await openSocket(broker.wsUrl);
    const started = Date.now();
    broker.kill(signal);
    const code = await Promise.race([broker.exited, Bun.sleep(10_000).then(() => "timeout" as const)]);
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await closed).code).toBe(1001);
    const events = broker.logs.map((l) => l.msg);
    expect(events).toContain("shutdown signal");
    expect(events).toContain("shutdown complete");
    expect(events.indexOf("shutdown signal")).toBeLessThan(events.indexOf("shutdown complete"));
  });
});
