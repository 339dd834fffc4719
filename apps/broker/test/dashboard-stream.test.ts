// The dashboard's presence stream (transport/http/dashboard-routes.ts) over a
// real socket, fed by presence events of a real database: a page that stops
// reading is cut off once the stream holds SOCKET_BUFFER_BYTES it has not
// sent, instead of having every event of its mesh kept for it; a page that
// reads is never cut off; and one asked for as the instance stops ends at
// once, not holding the listener's close.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { waitUntil } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { connect as tcpConnect, type Socket } from "node:net";
import { createLogger } from "../src/log.ts";
import { createMetrics, type Metrics } from "../src/metrics.ts";
import { InstanceBus } from "../src/services/bus.ts";
import { DashboardService } from "../src/services/dashboard.ts";
import { watchDbHealth, type DbHealth } from "../src/services/db-health.ts";
import { PresenceEvents, type PresenceChange } from "../src/services/presence-events.ts";
import { systemClock } from "../src/services/timing.ts";
import { dashboardRoutes } from "../src/transport/http/dashboard-routes.ts";
import { useScratchDatabase } from "./support/scratch-db.ts";

const scratch = useScratchDatabase("dashboard-stream");
const ADMIN_TOKEN = "dashboard-stream-admin-token";
const MAX_UNSENT_BYTES = 65_536;
const PRESENCES = 200;

let server: ReturnType<typeof Bun.serve>;
let stopping: ReturnType<typeof Bun.serve>;
let events: PresenceEvents;
let metrics: Metrics;
let dbHealth: DbHealth;
let round = 0;

beforeAll(async () => {
  const log = createLogger("silent", {});
  metrics = createMetrics();
  dbHealth = watchDbHealth(scratch.db, log, metrics, { intervalMs: 1000, timeoutMs: 2000, clock: systemClock });
  events = new PresenceEvents(scratch.db, new InstanceBus(scratch.db, log), "dashboard-test", metrics, log);
  await scratch.db.rows(sql`INSERT INTO meshes (slug, name) VALUES ('watched', 'watched')`);
  await scratch.db.rows(sql`
    INSERT INTO members (mesh_id, pubkey, display_name)
    SELECT m.id, 'key-' || g, 'member ' || g FROM meshes m, generate_series(1, ${PRESENCES}) g`);
  await scratch.db.rows(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    SELECT mesh_id, id, 'dashboard-test', 'session', display_name FROM members`);
  const serving = (closing: AbortSignal) => {
    const routes = dashboardRoutes({
      dashboard: new DashboardService(scratch.db, metrics, systemClock, { sampleIntervalMs: 60_000, instanceLeaseSeconds: 15 }),
      presenceEvents: events,
      access: { adminToken: ADMIN_TOKEN, dbHealth },
      stream: { maxUnsentBytes: MAX_UNSENT_BYTES, closing, log },
      page: false,
    });
    const path = "/v1/admin/meshes/:mesh/presence-events";
    return Bun.serve({ port: 0, hostname: "127.0.0.1", routes: { [path]: routes[path] } });
  };
  server = serving(new AbortController().signal);
  // An instance that is stopping: its streams are ending.
  stopping = serving(AbortSignal.abort());
});

afterAll(() => {
  dbHealth.stop();
  server.stop(true);
  stopping.stop(true);
});

/** Every presence of the mesh changes status once: PRESENCES status events for each subscriber. */
async function statusRound(): Promise<void> {
  const status = ++round % 2 === 1 ? "working" : "idle";
  const changed = await scratch.db.rows<{ id: string }>(sql`UPDATE presences SET status = ${status} RETURNING id`);
  events.deliver(changed.map((p): PresenceChange => ({ presenceId: p.id, event: "status" })));
}

const subscribers = async () => (await metrics.presenceSubscribers.get()).values[0]?.value ?? 0;

/** A stream opened on a raw socket, so the test decides whether it reads. */
async function openStream(): Promise<{ socket: Socket; received: () => number; closed: () => boolean }> {
  const socket = tcpConnect({ host: "127.0.0.1", port: server.port! });
  let received = "";
  let closed = false;
  socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
  socket.on("close", () => (closed = true));
  socket.on("error", () => {});
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  socket.write(
    `GET /v1/admin/meshes/watched/presence-events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\n\r\n`,
  );
  const events = () => received.split("event: presence").length - 1;
  // The snapshot: every live presence as `joined`.
  await waitUntil(() => events() === PRESENCES || undefined, 10_000, "the stream's snapshot");
  return { socket, received: events, closed: () => closed };
}

describe("the dashboard's presence stream", () => {
  test("one asked for as the instance stops ends at once, subscribed to nothing", async () => {
    const res = await fetch(`http://127.0.0.1:${stopping.port}/v1/admin/meshes/watched/presence-events`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      signal: AbortSignal.timeout(10_000),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
    expect(await subscribers()).toBe(0);
  });

  test("a reader that stops reading is cut off past SOCKET_BUFFER_BYTES unsent, and its subscription ends", async () => {
    const stream = await openStream();
    expect(await subscribers()).toBe(1);
    stream.socket.pause();
    // The kernel's buffers take the first megabytes; the bound is on what waits beyond them.
    const maxRounds = 500;
    let rounds = 0;
    while (rounds < maxRounds && (await subscribers()) > 0) {
      await statusRound();
      rounds++;
      await Bun.sleep(5);
    }
    expect(await subscribers()).toBe(0);
    stream.socket.resume();
    await waitUntil(() => stream.closed() || undefined, 10_000, "the broker to end the stalled stream's connection");
  });

  test("a reader that keeps reading hears every event and stays subscribed", async () => {
    const stream = await openStream();
    try {
      const rounds = 40;
      for (let i = 0; i < rounds; i++) {
        await statusRound();
        await waitUntil(() => stream.received() >= (i + 2) * PRESENCES || undefined, 10_000, `round ${i + 1}'s events`);
      }
      // 8,000 events after the snapshot, several times MAX_UNSENT_BYTES in all.
      expect(stream.received()).toBe((rounds + 1) * PRESENCES);
      expect(await subscribers()).toBe(1);
      expect(stream.closed()).toBe(false);
    } finally {
      stream.socket.destroy();
    }
    await waitUntil(async () => (await subscribers()) === 0 || undefined, 10_000, "the subscription to end with its socket");
  });
});
