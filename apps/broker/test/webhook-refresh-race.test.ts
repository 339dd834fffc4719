// A webhook set on an instance while that instance's dispatcher is reading
// every webhook (its refresh): the read's rows may predate the new webhook,
// and must not make the instance forget it until the next refresh
// (CATCH_UP_INTERVAL_MS): news of work for the member starts an attempt at
// once. The race is made certain by letting the refresh's statement run
// and holding its rows back until the webhook is set; the database, the
// requests and their receiver are real.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { toQuery, type Database } from "@switchboard/db";
import { WebhookReceiver } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { createLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics.ts";
import { createAdminService } from "../src/services/admin.ts";
import { InstanceBus } from "../src/services/bus.ts";
import { PresenceEvents } from "../src/services/presence-events.ts";
import { QueuedWork } from "../src/services/queued-work.ts";
import { createWebhookAdmin } from "../src/services/webhooks/admin.ts";
import { WebhookDispatcher } from "../src/services/webhooks/dispatcher.ts";
import { createWebhookPoster } from "../src/transport/webhook/poster.ts";
import { meshWithMember, useBackendDatabase } from "./support/scratch-db.ts";

const backend = useBackendDatabase();
const log = createLogger("silent", {});

/** Set while the next read of every webhook is to be held: told when it has run, and let go by the test. */
let holdNextRead: { ran: () => void; release: Promise<void> } | null = null;

/** The file's database, but for the rows of a held read, which come back when the test says. */
function heldReads(db: Database): Database {
  const rows = async <T>(query: Parameters<Database["rows"]>[0]): Promise<T[]> => {
    const answer = await db.rows<T>(query);
    const hold = holdNextRead;
    if (hold !== null && toQuery(query).sql.includes('AS "dueInMs"')) {
      holdNextRead = null;
      hold.ran();
      await hold.release;
    }
    return answer;
  };
  return new Proxy(db, { get: (target, key) => (key === "rows" ? rows : Reflect.get(target, key)) });
}

let receiver: WebhookReceiver | undefined;
beforeAll(async () => {
  receiver = await WebhookReceiver.start();
});
afterAll(() => receiver?.stop());

test("a webhook set while a refresh reads the webhooks is delivered to on news, not at the next refresh", async () => {
  const db = heldReads(backend.db);
  const { meshId, memberId } = await meshWithMember(backend.db, "refresh-race");
  const bus = new InstanceBus(db, log);
  const metrics = createMetrics();
  const events = new PresenceEvents(db, bus, "refresh-race-test", metrics, log);
  const admin = createAdminService({ db, log, events, bus, onRevoked: () => {}, onTokenRevoked: () => {} });
  const queuedWork = new QueuedWork();
  const dispatcher = new WebhookDispatcher(db, bus, queuedWork, createWebhookPoster("refresh-race-test"), metrics, log, {
    timeoutMs: 5000,
    backoff: { minMs: 100, maxMs: 100 },
    leaseSeconds: 30,
    // Neither comes round during the test: only news starts an attempt.
    refreshIntervalMs: 600_000,
    depthIntervalMs: 600_000,
    allowPrivate: true,
    clock: Date.now,
  });
  const webhooks = createWebhookAdmin({ db, admin, dispatcher, queuedWork, bus, log, allowPrivate: true, lookupTimeoutMs: 5000 });

  /** A message for the member, queued; its id. */
  const queue = async (): Promise<string> => {
    const [row] = await backend.db.rows<{ id: string }>(sql`
      WITH m AS (
        INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
        VALUES (${meshId}::uuid, ${memberId}::uuid, 'k', 'now', 'n', 'c', now() + interval '1 hour')
        RETURNING id)
      INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state)
      SELECT id, ${memberId}::uuid, 'now', now() + interval '1 hour', 'queued' FROM m
      RETURNING message_id AS id`);
    return row!.id;
  };
  const arrived = (id: string, what: string) => receiver!.waitFor((reqs) => reqs.some((r) => r.body.includes(id)), 10_000, what);

  let ran!: () => void;
  let release!: () => void;
  const readRan = new Promise<void>((resolve) => (ran = resolve));
  holdNextRead = { ran, release: new Promise<void>((resolve) => (release = resolve)) };
  // The instance starts: its first refresh reads the webhooks (none yet) and is held there.
  const started = dispatcher.start();
  try {
    await readRan;
    // Setting the webhook starts an attempt, which takes what is queued then.
    const first = await queue();
    await webhooks.set(meshId, memberId, { url: `${receiver!.url}/events`, secret: "webhook-secret-0123456789" });
    await arrived(first, "the message queued before the webhook was set");
    release();
    await started;

    // A later message, and the news of it a send gives the instance's consumers.
    const later = await queue();
    dispatcher.members([memberId]);
    await arrived(later, "the message queued after the refresh");
  } finally {
    release();
    await started.catch(() => {});
    await dispatcher.stop();
  }
});
