// PUT …/webhook while the target's name is slow to resolve (docs/http.md,
// "Where webhooks may point"): the lookup may take WEBHOOK_TIMEOUT_MS, longer
// than the 8 s the admin routes give the database, and the PUT answers with
// its own verdict — 400 for a name that did not resolve in time, 200 for one
// that did — never a 503 that blames the database while the webhook may yet
// be set behind it. The routes run on a real port over a real database; the
// resolver is the test's, as a stalled one cannot be had on loopback.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import { sql } from "drizzle-orm";
import { createLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics.ts";
import { createAdminService } from "../src/services/admin.ts";
import { InstanceBus } from "../src/services/bus.ts";
import { watchDbHealth, type DbHealth } from "../src/services/db-health.ts";
import { PresenceEvents } from "../src/services/presence-events.ts";
import { QueuedWork } from "../src/services/queued-work.ts";
import { createWebhookAdmin } from "../src/services/webhooks/admin.ts";
import { WebhookDispatcher } from "../src/services/webhooks/dispatcher.ts";
import type { Resolve } from "../src/services/webhooks/target-policy.ts";
import { webhookRoutes } from "../src/transport/http/webhook-routes.ts";
import { ANSWER_DEADLINE_MS } from "../src/transport/http/respond.ts";
import { meshWithMember, useBackendDatabase } from "./support/scratch-db.ts";

const ADMIN_TOKEN = "admin-token-0123456789";
// Past the admin routes' deadline for the database, as the default (10 s) is.
const LOOKUP_TIMEOUT_MS = ANSWER_DEADLINE_MS + 1000;
const SECRET = "webhook-secret-0123456789";

const backend = useBackendDatabase();
const log = createLogger("silent", {});

/** The resolver the routes look names up with; each test sets its own. */
let resolve: Resolve = () => new Promise<string[]>(() => {});

let server: Server<undefined> | undefined;
let dbHealth: DbHealth | undefined;
beforeAll(() => {
  const db = backend.db;
  const bus = new InstanceBus(db, log);
  const metrics = createMetrics();
  const events = new PresenceEvents(db, bus, "put-lookup-test", metrics, log);
  const admin = createAdminService({ db, log, events, bus, onRevoked: () => {}, onTokenRevoked: () => {} });
  const queuedWork = new QueuedWork();
  const dispatcher = new WebhookDispatcher(db, bus, queuedWork, { post: async () => ({ outcome: "network", status: null }) }, metrics, log, {
    timeoutMs: LOOKUP_TIMEOUT_MS,
    backoff: { minMs: 1000, maxMs: 1000 },
    leaseSeconds: 30,
    allowPrivate: false,
    refreshIntervalMs: 60_000,
    depthIntervalMs: 60_000,
    clock: Date.now,
  });
  const webhooks = createWebhookAdmin({
    db,
    admin,
    dispatcher,
    queuedWork,
    bus,
    log,
    allowPrivate: false,
    lookupTimeoutMs: LOOKUP_TIMEOUT_MS,
    resolve: (host) => resolve(host),
  });
  dbHealth = watchDbHealth(db, log, metrics, { intervalMs: 1000, timeoutMs: 2000, clock: Date.now });
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    routes: webhookRoutes({ webhooks, access: { adminToken: ADMIN_TOKEN, dbHealth }, log, lookupTimeoutMs: LOOKUP_TIMEOUT_MS }),
  });
});
afterAll(() => {
  dbHealth?.stop();
  server?.stop(true);
});

async function put(meshId: string, memberId: string, url: string): Promise<{ status: number; body: { error?: { code: string; message: string }; url?: string } }> {
  const res = await fetch(`${server!.url}v1/meshes/${meshId}/members/${memberId}/webhook`, {
    method: "PUT",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    body: JSON.stringify({ url, secret: SECRET }),
  });
  return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string }; url?: string } };
}

const stored = async (memberId: string) =>
  (await backend.db.rows<{ url: string }>(sql`SELECT url FROM webhooks WHERE member_id = ${memberId}::uuid`)).map((r) => r.url);

describe(`PUT …/webhook with a lookup timeout of ${LOOKUP_TIMEOUT_MS} ms (past the ${ANSWER_DEADLINE_MS} ms the database gets)`, () => {
  test("a name whose resolver never answers is refused 400 invalid once the lookup's timeout passes, and nothing is set", async () => {
    const { meshId, memberId } = await meshWithMember(backend.db, "never-resolves");
    resolve = () => new Promise<string[]>(() => {});
    const answer = await put(meshId, memberId, "https://hooks.example/events");
    expect(answer).toEqual({
      status: 400,
      body: { error: { code: "invalid", message: `url: hooks.example did not resolve within ${LOOKUP_TIMEOUT_MS} ms` } },
    });
    expect(await stored(memberId)).toEqual([]);
  });

  test("a name that resolves to a public address after the database's deadline is set, and the PUT says so", async () => {
    const { meshId, memberId } = await meshWithMember(backend.db, "resolves-late");
    resolve = () => Bun.sleep(ANSWER_DEADLINE_MS + 300).then(() => ["93.184.216.34"]);
    const answer = await put(meshId, memberId, "https://late.example/events");
    expect(answer.status).toBe(200);
    expect(answer.body.url).toBe("https://late.example/events");
    expect(await stored(memberId)).toEqual(["https://late.example/events"]);
  });
});
