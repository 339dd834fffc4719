// The database's state as /health reports it (services/db-health.ts), driven
// by real refusals of a real database: a write refused as read-only marks it
// read_only at once, ahead of full, until a ping finds the server writable
// with none refused for 10 s; a ping that finds the server read-only marks it
// by itself.
import { afterEach, describe, expect, test } from "bun:test";
import { connect, isDiskFull, isReadOnly, type Database } from "@switchboard/db";
import { makeDatabaseReadOnly, scratchDir, waitUntil } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { rmSync } from "node:fs";
import pino from "pino";
import { createMetrics } from "../src/metrics.ts";
import { watchDbHealth, type DbHealth } from "../src/services/db-health.ts";
import { useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();
let watching: DbHealth | undefined;
afterEach(() => watching?.stop());

interface Line {
  level: number;
  msg: string;
  err?: { code?: string };
}

function watch(db: Database, clock: () => number) {
  const lines: Line[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) });
  const metrics = createMetrics();
  watching = watchDbHealth(db, log, metrics, { intervalMs: 20, timeoutMs: 2000, clock });
  const gauge = async () => (await metrics.dbReadOnly.get()).values[0]?.value;
  const healthyGauge = async () => (await metrics.dbHealthy.get()).values[0]?.value;
  return { dbHealth: watching, lines, gauge, healthyGauge };
}

/** The error the database answers `statement` with. */
async function refusal(db: Database, ...statements: string[]): Promise<unknown> {
  return db
    .transaction(async (tx) => {
      for (const statement of statements) await tx.rows(sql.raw(statement));
    })
    .then(
      () => {
        throw new Error(`${statements.join("; ")} was not refused`);
      },
      (error: unknown) => error,
    );
}

/**
 * Turns the database read-only; the returned function turns it writable
 * again. Postgres: on the database, which each connection takes as it opens;
 * embedded: on its one session.
 */
async function readOnlyDatabase(): Promise<() => Promise<void>> {
  const url = scratch.backend.databaseUrl;
  if (url !== undefined) return makeDatabaseReadOnly(url);
  const set = async (on: boolean) => void (await scratch.db.rows(sql.raw(`SET default_transaction_read_only = ${on ? "on" : "off"}`)));
  await set(true);
  return () => set(false);
}

describe("the database's state", () => {
  test("a write refused as read-only marks it read_only at once, ahead of full; a ping that finds the server writable clears it once none was refused for 10 s", async () => {
    let now = 0;
    const { dbHealth, lines, gauge } = watch(scratch.db, () => now);
    const readOnly = await refusal(scratch.db, "SET TRANSACTION READ ONLY", "CREATE TABLE read_only_probe ()");
    const diskFull = await refusal(scratch.db, `DO $$ BEGIN RAISE EXCEPTION 'no space left' USING ERRCODE = 'disk_full'; END $$`);
    expect([isDiskFull(diskFull), isReadOnly(readOnly)]).toEqual([true, true]);

    expect(dbHealth.unavailable(readOnly)).toBe(true);
    expect(dbHealth.state).toBe("read_only");
    expect(await gauge()).toBe(1);
    expect(lines.filter((l) => l.msg === "db read-only").map((l) => ({ level: l.level, code: l.err?.code }))).toEqual([{ level: 50, code: "25006" }]);
    dbHealth.unavailable(readOnly);
    expect(lines.filter((l) => l.msg === "db read-only").length).toBe(1);
    now = 9_000;
    expect(dbHealth.unavailable(diskFull)).toBe(true);
    expect(dbHealth.state).toBe("read_only");
    // Pings (every 20 ms) find the server writable, but a write was refused within 10 s.
    await Bun.sleep(200);
    expect(dbHealth.state).toBe("read_only");

    now = 10_001;
    await waitUntil(() => dbHealth.state !== "read_only", 20_000, "a ping to find the database writable");
    expect(dbHealth.state).toBe("full");
    expect(await gauge()).toBe(0);
    expect(lines.filter((l) => l.msg === "db writable").map((l) => l.level)).toEqual([30]);
    now = 19_001;
    expect(dbHealth.state).toBe("up");
  });

  test("a ping that finds the server read-only marks it read_only, with no write refused; once writable, up", async () => {
    const { dbHealth, lines, gauge } = watch(scratch.db, Date.now);
    const makeWritable = await readOnlyDatabase();
    try {
      await waitUntil(() => dbHealth.state === "read_only", 20_000, "a ping to find the database read-only");
      expect(await gauge()).toBe(1);
      expect(lines.filter((l) => l.msg === "db read-only").map((l) => ({ level: l.level, err: l.err }))).toEqual([{ level: 50, err: undefined }]);
    } finally {
      await makeWritable();
    }
    await waitUntil(() => dbHealth.state === "up", 20_000, "a ping to find the database writable");
    expect(await gauge()).toBe(0);
    expect(lines.filter((l) => l.msg === "db writable").length).toBe(1);
  });

  test("a ping that fails after a read-only spell shows down alone: the read-only gauge is 0 while the database is unreachable", async () => {
    // A connection of its own, closed to make every ping fail.
    const url = scratch.backend.databaseUrl;
    const dir = url === undefined ? scratchDir("db-health-own") : undefined;
    const own = await connect({ databaseUrl: url, dataDir: dir ?? "" });
    let closed = false;
    try {
      const { dbHealth, gauge, healthyGauge } = watch(own, () => 0);
      expect(dbHealth.unavailable(await refusal(own, "SET TRANSACTION READ ONLY", "CREATE TABLE read_only_probe ()"))).toBe(true);
      await Bun.sleep(100);
      expect([dbHealth.state, await gauge(), await healthyGauge()]).toEqual(["read_only", 1, 1]);

      await own.close();
      closed = true;
      await waitUntil(() => dbHealth.state === "down", 20_000, "a ping to fail");
      expect([await gauge(), await healthyGauge()]).toEqual([0, 0]);
    } finally {
      if (!closed) await own.close();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    }
  });
});
