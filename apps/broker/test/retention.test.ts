// AUDIT_RETENTION_SECONDS and ENDED_PRESENCE_RETENTION_SECONDS: a broker's
// housekeeping deletes audit rows and ended presences older than them and
// keeps younger ones; unset, a day for ended presences and 30 days for audit
// rows as before. Rows are written at a chosen age while no broker runs (an
// embedded broker holds its database alone), a broker housekeeps them, and
// once it has logged a prune, stopped, the rows left are read.
import { describe, expect, test } from "bun:test";
import { connect, migrate, type Database } from "@switchboard/db";
import { freshBackend, spawnBroker, TEST_ADMIN_TOKEN, type TestBackend } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { meshWithMember } from "./support/scratch-db.ts";

const HOUR = 3600;
const DAY = 24 * HOUR;

/** Ended presences and audit rows, each named and as old as given (seconds). */
interface Aged {
  presences: Record<string, number>;
  audit: Record<string, number>;
}

async function onDatabase<T>(backend: TestBackend, fn: (db: Database) => Promise<T>): Promise<T> {
  const db = await connect({ databaseUrl: backend.databaseUrl, dataDir: backend.dataDir ?? "" });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

async function write(db: Database, aged: Aged): Promise<void> {
  await migrate(db);
  const { meshId, memberId } = await meshWithMember(db, "retention");
  for (const [session, age] of Object.entries(aged.presences)) {
    await db.rows(sql`
      INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name, connected_at, disconnected_at)
      VALUES (${meshId}::uuid, ${memberId}::uuid, 'gone-instance', ${session}, 'n',
              now() - make_interval(secs => ${age + 60}), now() - make_interval(secs => ${age}))`);
  }
  for (const [name, age] of Object.entries(aged.audit)) {
    await db.rows(sql`
      INSERT INTO audit_log (at, event, meta) VALUES (now() - make_interval(secs => ${age}), 'retention-test', jsonb_build_object('name', ${name}::text))`);
  }
}

async function left(db: Database): Promise<{ presences: string[]; audit: string[] }> {
  const presences = await db.rows<{ s: string }>(sql`SELECT session_id AS s FROM presences WHERE instance_id = 'gone-instance' ORDER BY 1`);
  const audit = await db.rows<{ s: string }>(sql`SELECT meta->>'name' AS s FROM audit_log WHERE event = 'retention-test' ORDER BY 1`);
  return { presences: presences.map((r) => r.s), audit: audit.map((r) => r.s) };
}

/** The rows left once a broker with this environment has pruned `pruned` presences and audit rows of those written. */
async function housekept(env: Record<string, string>, aged: Aged, pruned: { presences: number; auditRows: number }) {
  const backend = await freshBackend({ withSchema: true });
  try {
    await onDatabase(backend, (db) => write(db, aged));
    const broker = await spawnBroker({ ...backend.env, ADMIN_TOKEN: TEST_ADMIN_TOKEN, LOG_LEVEL: "debug", HOUSEKEEPING_INTERVAL_MS: "200", ...env });
    let line;
    try {
      line = await broker.waitForLog("ended presences and audit rows pruned", 60_000);
    } finally {
      // Stopped whatever happened; its exit checked only once the wait's own failure had its say.
      const exit = await broker.stop();
      if (line !== undefined) expect(exit).toBe(0);
    }
    expect({ presences: line.presences, auditRows: line.auditRows }).toEqual(pruned);
    return await onDatabase(backend, left);
  } finally {
    await backend.dispose();
  }
}

describe("retention of audit rows and ended presences", () => {
  test("a broker with short retentions prunes the older rows at housekeeping and keeps the younger", async () => {
    const rows = await housekept(
      { AUDIT_RETENTION_SECONDS: String(HOUR), ENDED_PRESENCE_RETENTION_SECONDS: String(2 * HOUR) },
      {
        presences: { "ended-3h": 3 * HOUR, "ended-1h": HOUR },
        audit: { "audit-2h": 2 * HOUR, "audit-30min": HOUR / 2 },
      },
      { presences: 1, auditRows: 1 },
    );
    expect(rows).toEqual({ presences: ["ended-1h"], audit: ["audit-30min"] });
  });

  test("unset, ended presences are kept a day and audit rows 30 days", async () => {
    const rows = await housekept(
      {},
      {
        presences: { "ended-25h": 25 * HOUR, "ended-23h": 23 * HOUR },
        audit: { "audit-31d": 31 * DAY, "audit-29d": 29 * DAY },
      },
      { presences: 1, auditRows: 1 },
    );
    expect(rows).toEqual({ presences: ["ended-23h"], audit: ["audit-29d"] });
  });
});
