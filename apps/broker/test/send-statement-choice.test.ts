// Which statement writes a batch of sends (services/send-commits.ts): the
// direct one only when the instance holds a presence of every recipient, so
// a send to a member connected only to another instance is still leased to
// that presence by the send statement. Alone on its database (embedded), the
// instance holds every presence there is, and every batch of direct sends is
// written directly. The statements are told apart by their text, read off a
// real database's executor.
import { expect, test } from "bun:test";
import { toQuery, type Database, type Statement } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { createLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics.ts";
import { InstanceBus } from "../src/services/bus.ts";
import { watchDbHealth } from "../src/services/db-health.ts";
import { LocalPresences } from "../src/services/local-presences.ts";
import { QueuedWork } from "../src/services/queued-work.ts";
import { SendService } from "../src/services/sending.ts";
import { useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();
const pubkey = () => crypto.randomUUID().replaceAll("-", "").repeat(2);

/** The texts of the send statements run through it. */
function recording(db: Database): { db: Database; sends: string[] } {
  const sends: string[] = [];
  const recorder: Database = {
    ...db,
    rows: <T>(query: Statement) => {
      const text = toQuery(query).sql;
      if (text.includes("INSERT INTO messages")) sends.push(text);
      return db.rows<T>(query);
    },
  };
  return { db: recorder, sends };
}

test("a direct send is written by the direct statement only when its recipient is held here, or the instance is alone", async () => {
  const [mesh] = await scratch.db.rows<{ id: string; sender: string; recipient: string }>(sql`
    WITH mesh AS (INSERT INTO meshes (slug, name) VALUES (${`choice-${crypto.randomUUID()}`}, 'c') RETURNING id),
    sender AS (INSERT INTO members (mesh_id, pubkey, display_name) SELECT id, ${pubkey()}, 's' FROM mesh RETURNING id, mesh_id),
    recipient AS (INSERT INTO members (mesh_id, pubkey, display_name) SELECT id, ${pubkey()}, 'r' FROM mesh RETURNING pubkey)
    SELECT sender.mesh_id AS id, sender.id AS sender, recipient.pubkey AS recipient FROM sender, recipient`);
  const { db, sends } = recording(scratch.db);
  const held = new Set<string>();
  const log = createLogger("silent", {});
  const metrics = createMetrics();
  const dbHealth = watchDbHealth(scratch.db, log, metrics, { intervalMs: 1000, timeoutMs: 2000, clock: Date.now });
  const sending = new SendService(
    db,
    new LocalPresences(),
    { holds: (meshId, key) => held.has(`${meshId} ${key}`), unavailable: () => [], handLeased: async () => {} },
    new QueuedWork(),
    new InstanceBus(scratch.db, log),
    metrics,
    log,
    { maxMessageBytes: 65_536, defaultTtlSeconds: 3600, sendRateLimitPerMin: 1000, sendRecipientsPerMin: 1_000_000, instanceId: "choice", leaseSeconds: 30, clock: Date.now, dbHealth },
  );
  const send = () =>
    sending.send(
      { memberId: mesh!.sender, meshId: mesh!.id, pubkey: "sender", role: "member" },
      { targetSpec: mesh!.recipient, nonce: "n", ciphertext: "c", priority: "next", ephemeral: false },
    );
  const direct = (text: string) => !text.includes("elsewhere AS (");
  const alone = scratch.db.kind !== "postgres";

  expect(await send()).toMatchObject({ ok: true });
  held.add(`${mesh!.id} ${mesh!.recipient}`);
  expect(await send()).toMatchObject({ ok: true });
  expect(sends.map(direct)).toEqual([alone, true]);
  dbHealth.stop();
});
