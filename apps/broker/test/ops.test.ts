import { describe, expect, test } from "bun:test";
import { FRAME_ERROR_CODES } from "@switchboard/protocol";
import { parsePrometheusText, setupMesh, TestPeer, useTestBroker } from "@switchboard/testkit";

const METRICS_TOKEN = "metrics-secret-0123456789";
const REQUIRED_METRICS = [
  "broker_connections_active",
  "broker_connections_total",
  "broker_connections_rejected_total",
  "broker_messages_routed_total",
  "broker_messages_rejected_total",
  "broker_queue_depth",
  "broker_ttl_sweeps_total",
  "broker_hook_requests_total",
  "broker_hook_requests_rate_limited_total",
  "broker_db_healthy",
];

const broker = useTestBroker({ METRICS_TOKEN, GIT_SHA: "abc1234" });

describe("operational endpoints", () => {
  test("/health answers 200 with the contract's fields", async () => {
    const res = await fetch(`${broker.url}/health`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ status: "ok", db: "up", version: "0.1.0", gitSha: "abc1234" });
    expect(typeof body.uptime).toBe("number");
    expect(typeof body.instanceId).toBe("string");
  });

  test("unknown routes get a JSON 404", async () => {
    const res = await fetch(`${broker.url}/no/such/route`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: "not_found", message: "no route GET /no/such/route" } });
  });

  test("/ws without an upgrade is refused", async () => {
    const res = await fetch(`${broker.url}/ws`);
    expect(res.status).toBe(426);
  });

  test("/metrics requires METRICS_TOKEN when it is set", async () => {
    expect((await fetch(`${broker.url}/metrics`)).status).toBe(401);
    const wrong = await fetch(`${broker.url}/metrics`, { headers: { authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);
  });

  test("/metrics parses as Prometheus text and has every metric of the contract", async () => {
    const res = await fetch(`${broker.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const families = parsePrometheusText(await res.text());
    for (const name of REQUIRED_METRICS) expect(families.has(name)).toBe(true);
    expect(families.get("broker_db_healthy")?.samples[0]?.value).toBe(1);
    expect(families.get("broker_connections_active")?.type).toBe("gauge");
    expect(families.get("broker_connections_total")?.type).toBe("counter");
    const priorities = families.get("broker_messages_routed_total")?.samples.map((s) => s.labels.priority);
    expect(priorities?.sort()).toEqual(["low", "next", "now"]);
    const sweeps = families.get("broker_ttl_sweeps_total")?.samples.map((s) => s.labels.flipped);
    expect(sweeps?.sort()).toEqual(["false", "true"]);
    expect(families.has("process_resident_memory_bytes")).toBe(true);
    expect(families.has("nodejs_eventloop_lag_p99_seconds")).toBe(true);
  });

  // A series born at its first increment hides that increment from rate()
  // and increase(): an alert on a reason would miss the first refusals.
  test("broker_messages_rejected_total has every reason it counts from zero, unavailable included", async () => {
    const res = await fetch(`${broker.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    const samples = parsePrometheusText(await res.text()).get("broker_messages_rejected_total")?.samples ?? [];
    const reasons = new Map(samples.map((s) => [s.labels.reason, s.value]));
    // A send refused before anything was stored (its database unreachable, or the reply waits full) is counted as unavailable.
    for (const reason of [...FRAME_ERROR_CODES, "unavailable"]) expect([reason, reasons.get(reason)]).toEqual([reason, 0]);
  });

  test("logs are one JSON object per line with the contract's event names", () => {
    const text = broker.process.stderrText().trim();
    for (const line of text.split("\n")) expect(() => JSON.parse(line)).not.toThrow();
    expect(broker.process.logs.some((l) => l.msg === "broker listening")).toBe(true);
  });

  // PROTOCOL.md §9: origins are checked only when CORS_ORIGINS is set (this broker has none).
  test("without CORS_ORIGINS a page's origin gets no CORS header, and its socket is upgraded", async () => {
    const origin = "http://page.example.test";
    const health = await fetch(`${broker.url}/health`, { headers: { origin } });
    expect([health.status, health.headers.get("access-control-allow-origin")]).toEqual([200, null]);
    const opened = await new Promise<string>((resolve) => {
      const ws = new WebSocket(broker.wsUrl, { headers: { origin } });
      ws.addEventListener("open", () => {
        ws.close();
        resolve("open");
      });
      ws.addEventListener("error", () => resolve("refused"));
    });
    expect(opened).toBe("open");
  });

  test("a socket's life is logged as ws hello, ws set_status and ws close, each naming its presence", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const peer = await TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id });
    const presenceId = String(peer.helloAck?.presenceId);
    await peer.request({ type: "set_status", status: "working" });
    await peer.close();
    const ofPresence = (line: Record<string, unknown>) => line.presenceId === presenceId;
    expect(await broker.process.waitForLog("ws hello", 10_000, ofPresence)).toMatchObject({ memberId: members[0]!.id, meshId: mesh.id });
    expect(await broker.process.waitForLog("ws set_status", 10_000, ofPresence)).toMatchObject({ status: "working" });
    await broker.process.waitForLog("ws close", 10_000, ofPresence);
  });
});
