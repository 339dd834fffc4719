// WebhookDispatcher.stop (services/webhooks/dispatcher.ts) with more members
// due than it sends to at once (64), against a real database and a poster
// that holds every request until it is cut short: stopping starts no attempt
// in place of those it cut short, and returns only once each gave its batch
// back — nothing is left leased to an instance that is gone.
import { describe, expect, test } from "bun:test";
import type { Database } from "@switchboard/db";
import { waitUntil } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { createLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics.ts";
import { InstanceBus } from "../src/services/bus.ts";
import { QueuedWork } from "../src/services/queued-work.ts";
import { WebhookDispatcher } from "../src/services/webhooks/dispatcher.ts";
import type { WebhookPoster, WebhookRequest } from "../src/services/webhooks/request.ts";
import { useScratchDatabase } from "./support/scratch-db.ts";

const scratch = useScratchDatabase("webhook-stop");
const MEMBERS = 65;

describe("WebhookDispatcher.stop", () => {
  test(`${MEMBERS} members due, 64 requests in flight: the stop starts no other and leaves nothing leased`, async () => {
    const db = scratch.db;
    await db.rows(sql`
      WITH mesh AS (INSERT INTO meshes (slug, name) VALUES ('hooks', 'hooks') RETURNING id),
      hooked AS (
        INSERT INTO members (mesh_id, pubkey, display_name)
        SELECT mesh.id, 'k' || g, 'm' || g FROM mesh, generate_series(1, ${MEMBERS}) g RETURNING id, mesh_id),
      hooks AS (INSERT INTO webhooks (member_id, url, secret) SELECT id, 'http://127.0.0.1:9/hook', 'secret-0123456789abcdef' FROM hooked),
      message AS (
        INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
        SELECT mesh_id, id, '*', 'now', 'n', 'c', now() + interval '1 hour' FROM hooked LIMIT 1 RETURNING id)
      INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at)
      SELECT message.id, hooked.id, 'now', now() + interval '1 hour' FROM message, hooked`);

    const posted: WebhookRequest[] = [];
    const poster: WebhookPoster = {
      post: (request, _timeoutMs, signal) => {
        posted.push(request);
        return new Promise((resolve) => {
          const cut = () => resolve({ outcome: "network", status: null });
          if (signal.aborted) cut();
          else signal.addEventListener("abort", cut);
        });
      },
    };
    // Statements the dispatcher runs outside a transaction, and when.
    let stopped = false;
    let afterStop = 0;
    const note = () => {
      if (stopped) afterStop++;
    };
    const counted: Database = { ...db, rows: (q) => (note(), db.rows(q)), transaction: (work) => (note(), db.transaction(work)) };
    const log = createLogger("silent", {});
    const dispatcher = new WebhookDispatcher(counted, new InstanceBus(db, log), new QueuedWork(), poster, createMetrics(), log, {
      timeoutMs: 10_000,
      backoff: { minMs: 100, maxMs: 1000 },
      leaseSeconds: 30,
      allowPrivate: true,
      refreshIntervalMs: 60_000,
      depthIntervalMs: 60_000,
      clock: Date.now,
    });
    await dispatcher.start();
    await waitUntil(() => posted.length === 64 || undefined, 20_000, "64 requests in flight");

    await dispatcher.stop();
    stopped = true;
    const [leased] = await db.rows<{ webhooks: number; deliveries: number }>(sql`
      SELECT (SELECT count(*)::int FROM webhooks WHERE lease_holder IS NOT NULL) AS webhooks,
             (SELECT count(*)::int FROM deliveries WHERE state = 'leased') AS deliveries`);
    expect(leased).toEqual({ webhooks: 0, deliveries: 0 });
    // Whatever was still to start would have started by now.
    await Bun.sleep(300);
    expect({ posted: posted.length, statementsAfterStop: afterStop }).toEqual({ posted: 64, statementsAfterStop: 0 });
  });
});
