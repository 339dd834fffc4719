// What a send answers when its statement fails and the database cannot be
// asked whether it was stored (services/send-commits.ts), against a real database
// behind an executor that fails the send's statements as a lost database
// would. A statement that may have reached the database is answered
// `internal` (it may be stored: send it again with the same id); one whose
// connection could not even be opened, or that the database refused for want
// of a resource (SQLSTATE class 53: a full disk), is `unavailable` (nothing
// was stored).
import { describe, expect, test } from "bun:test";
import { toQuery, type Database, type Statement } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { createLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics.ts";
import { InstanceBus } from "../src/services/bus.ts";
import { watchDbHealth } from "../src/services/db-health.ts";
import { LocalPresences } from "../src/services/local-presences.ts";
import { QueuedWork } from "../src/services/queued-work.ts";
import { SendService } from "../src/services/sending.ts";
import { useScratchDatabase } from "./support/scratch-db.ts";

const scratch = useScratchDatabase("send-failures");
const lost = (code: string) => Object.assign(new Error(`connection failed (${code})`), { code });

/** The send statement fails with each code in turn (the last one from then on); the lookup of what it stored cannot connect. */
function failingSends(db: Database, codes: string[]): Database {
  let sends = 0;
  return {
    ...db,
    rows: <T>(query: Statement) => {
      const text = toQuery(query).sql;
      if (text.includes("INSERT INTO messages")) return Promise.reject(lost(codes[Math.min(sends++, codes.length - 1)]!));
      if (text.includes("JOIN messages m ON m.id = q.id")) return Promise.reject(lost("ECONNREFUSED"));
      return db.rows<T>(query);
    },
  };
}

async function sendThrough(db: Database) {
  const [ids] = await scratch.db.rows<{ mesh: string; sender: string }>(sql`
    WITH mesh AS (INSERT INTO meshes (slug, name) VALUES (${`fail-${crypto.randomUUID()}`}, 'f') RETURNING id),
    sender AS (INSERT INTO members (mesh_id, pubkey, display_name) SELECT id, 'sender', 's' FROM mesh RETURNING id, mesh_id),
    recipient AS (INSERT INTO members (mesh_id, pubkey, display_name) SELECT id, 'recipient', 'r' FROM mesh RETURNING id)
    SELECT sender.mesh_id AS mesh, sender.id AS sender FROM sender, recipient`);
  const log = createLogger("silent", {});
  const metrics = createMetrics();
  const dbHealth = watchDbHealth(scratch.db, log, metrics, { intervalMs: 1000, timeoutMs: 2000, clock: Date.now });
  const sending = new SendService(
    db,
    new LocalPresences(),
    { holds: () => false, unavailable: () => [], handLeased: async () => {} },
    new QueuedWork(),
    new InstanceBus(scratch.db, log),
    metrics,
    log,
    { maxMessageBytes: 65_536, defaultTtlSeconds: 3600, sendRateLimitPerMin: 1000, sendRecipientsPerMin: 1_000_000, instanceId: "send-failures", leaseSeconds: 30, clock: Date.now, dbHealth },
  );
  try {
    const outcome = await sending.send(
      { memberId: ids!.sender, meshId: ids!.mesh, pubkey: "sender", role: "member" },
      { targetSpec: "recipient", nonce: "n", ciphertext: "c", priority: "next", ephemeral: false },
    );
    return { outcome, dbState: dbHealth.state };
  } finally {
    dbHealth.stop();
  }
}

describe("a send whose statement fails with the database", () => {
  test("lost after it may have reached the database: internal, never 'nothing stored'", async () => {
    const { outcome } = await sendThrough(failingSends(scratch.db, ["CONNECTION_CLOSED", "ECONNREFUSED"]));
    expect(outcome).toMatchObject({ ok: false, code: "internal" });
  });

  test("refused for want of disk space (53100): unavailable, nothing stored, and the database reported full", async () => {
    const { outcome, dbState } = await sendThrough(failingSends(scratch.db, ["53100"]));
    expect(outcome).toEqual({ ok: false, code: "unavailable", message: "the database has no disk space left to store it; nothing was stored" });
    expect(dbState).toBe("full");
    const [stored] = await scratch.db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM messages`);
    expect(stored!.n).toBe(0);
  });

  test("refused for want of another resource (53200): unavailable, nothing stored, the database not reported full", async () => {
    const { outcome, dbState } = await sendThrough(failingSends(scratch.db, ["53200"]));
    expect(outcome).toEqual({ ok: false, code: "unavailable", message: "the database is short of a resource (SQLSTATE 53200); nothing was stored" });
    expect(dbState).toBe("up");
  });

  test("never connected: unavailable, nothing stored", async () => {
    const { outcome } = await sendThrough(failingSends(scratch.db, ["ECONNREFUSED"]));
    expect(outcome).toMatchObject({ ok: false, code: "unavailable" });
    const [stored] = await scratch.db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM messages`);
    expect(stored!.n).toBe(0);
  });
});
