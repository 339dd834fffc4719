// The dashboard's presence stream (transport/http/dashboard-routes.ts) over a
// real socket, fed by presence events of a real database: a page that stops
// reading is cut off once the stream holds SOCKET_BUFFER_BYTES it has not
// sent, instead of having every event of its mesh kept for it; a page that
// reads is never cut off, even when its first snapshot alone is larger than
// that; and one asked for as the instance stops ends at once, not holding
// the listener's close.
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
/** A mesh whose snapshot of joined events is several times MAX_UNSENT_BYTES. */
const CROWDED = 1000;
/** The presences of the crowded mesh one of its rounds changes: a burst well within MAX_UNSENT_BYTES. */
const CROWDED_ROUND = 100;

let server: ReturnType<typeof Bun.serve>;
let stopping: ReturnType<typeof Bun.serve>;
let events: PresenceEvents;
let metrics: Metrics;
let dbHealth: DbHealth;

beforeAll(async () => {
  const log = createLogger("silent", {});
  metrics = createMetrics();
  dbHealth = watchDbHealth(scratch.db, log, metrics, { intervalMs: 1000, timeoutMs: 2000, clock: systemClock });
  events = new PresenceEvents(scratch.db, new InstanceBus(scratch.db, log), "dashboard-test", metrics, log);
  await scratch.db.rows(sql`INSERT INTO meshes (slug, name) VALUES ('watched', 'watched'), ('crowded', 'crowded')`);
  await scratch.db.rows(sql`
    INSERT INTO members (mesh_id, pubkey, display_name)
    SELECT m.id, m.slug || '-key-' || g, 'member ' || g FROM meshes m, generate_series(1, CASE m.slug WHEN 'watched' THEN ${PRESENCES}::int ELSE ${CROWDED}::int END) g`);
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

/** `count` presences of the mesh change status once: as many status events for each of its subscribers. */
async function statusRound(mesh = "watched", count = PRESENCES): Promise<void> {
  const changed = await scratch.db.rows<{ id: string }>(sql`
    UPDATE presences SET status = CASE status WHEN 'working' THEN 'idle' ELSE 'working' END
    WHERE id IN (SELECT p.id FROM presences p JOIN meshes m ON m.id = p.mesh_id WHERE m.slug = ${mesh} ORDER BY p.id LIMIT ${count})
    RETURNING id`);
  events.deliver(changed.map((p): PresenceChange => ({ presenceId: p.id, event: "status" })));
}

const subscribers = async () => (await metrics.presenceSubscribers.get()).values[0]?.value ?? 0;

/** A stream opened on a raw socket, so the test decides whether it reads. */
async function openStream(mesh = "watched", snapshot = PRESENCES): Promise<{ socket: Socket; received: () => number; closed: () => boolean }> {
  const socket = tcpConnect({ host: "127.0.0.1", port: server.port! });
  let received = "";
  let closed = false;
  socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
  socket.on("close", () => (closed = true));
  socket.on("error", () => {});
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  socket.write(
    `GET /v1/admin/meshes/${mesh}/presence-events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\n\r\n`,
  );
  const events = () => received.split("event: presence").length - 1;
  // The snapshot: every live presence as `joined`.
  await waitUntil(() => events() === snapshot || undefined, 10_000, "the stream's snapshot");
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

  test("a snapshot larger than SOCKET_BUFFER_BYTES reaches a reader whole, and the bound holds from then on", async () => {
    // Written at once, before a byte of it could be taken: cut off there, the stream could never open.
    const reading = await openStream("crowded", CROWDED);
    const stalled = await openStream("crowded", CROWDED);
    try {
      expect(await subscribers()).toBe(2);
      stalled.socket.pause();
      const maxRounds = 2000;
      for (let i = 0; i < maxRounds && (await subscribers()) > 1; i++) {
        await statusRound("crowded", CROWDED_ROUND);
        await waitUntil(() => reading.received() >= CROWDED + (i + 1) * CROWDED_ROUND || undefined, 10_000, `round ${i + 1}'s events`);
      }
      // The reader that stopped is cut off as any; the one that reads is not.
      expect(await subscribers()).toBe(1);
      expect(reading.closed()).toBe(false);
    } finally {
      reading.socket.destroy();
      stalled.socket.destroy();
    }
    await waitUntil(async () => (await subscribers()) === 0 || undefined, 10_000, "the subscriptions to end with their sockets");
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
