// `bun run bench statement`: what the broker's send statement costs, beside
// the simplest statements on the same connection in the same run. On a
// throwaway Postgres (fsync on), through the broker's own pool (prepared
// statements, generic plans), or with `embedded-statement` on a throwaway
// embedded database (PGlite, as the broker runs it): a bare round trip, a
// single-row commit (the floor's), one statement writing messages and their
// deliveries leased to the recipients' presences and nothing else (1 and 100
// at a time), and the send statement itself with no sends and with batches
// of 1, 3, 10, 100 and 400 direct sends to members whose presence is on
// this instance, and the direct send statement (store/queue/enqueue-direct.ts),
// which the broker writes such batches with, likewise; and two housekeeping
// statements with nothing to do: the expiry sweep among messages expired and
// swept before, the prune among messages past the retention still owed (from
// the oldest message, as a fresh instance and every tenth minute's walk go,
// and from where the last ended, as the ticks between go). The cases take
// turns, a round of each at a time, so the machine's drift falls on all of
// them alike. The statements are imported from the broker's store: they are
// what is measured.
import { connect, migrate, type ConnectOptions, type Database } from "@switchboard/db";
import { startPostgresCluster } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  enqueueSends,
  expireDeliveries,
  FROM_THE_OLDEST,
  prepareEnqueue,
  pruneMessages,
  writtenDirectly,
  type LocalHolders,
  type NewMessage,
  type Retention,
} from "../../apps/broker/src/store/queue/index.ts";
import { postgresVersion, runContext } from "./machine.ts";
import { writeReport } from "./out.ts";
import { contextLines, table, type RunContext } from "./report.ts";
import { onDisk, type Size } from "./scenarios.ts";
import { summarize, type Summary } from "./stats.ts";

const MEMBERS = 100;
/** Messages expired and swept before the run, kept as the prune keeps them. */
const SWEPT = 10_000;
/** Messages older than the settled retention, still owed to a member who is away. */
const OWED = 10_000;
const RETENTION: Retention = { settledSeconds: 3600, historySeconds: 7 * 86_400 };
/** The broker's limit for one sweep or prune (services/sweepers.ts). */
const HOUSEKEEPING_BATCH = 5000;
const HOLDERS: LocalHolders = { instanceId: "bench-statement", unavailable: [], leaseSeconds: 30, notify: true };
export const STATEMENT_SHAPE: Record<Size, { rounds: number; calls: number }> = { full: { rounds: 5, calls: 200 }, smoke: { rounds: 1, calls: 10 } };
/** The nonce of the send statement's messages, which tells their deliveries from the bare statement's. */
const SEND_NONCE = "s".repeat(32);

export interface StatementCase {
  name: string;
  /** Messages each call writes. */
  messages: number;
  wallMs: Summary;
  /** The benchmark process's own CPU per call (building the statement, the driver, parsing the answer). */
  clientCpuMs: number;
}

export interface StatementReport {
  kind: "statement";
  /** The run's name: `statement` on Postgres, `embedded-statement` on PGlite. */
  name: string;
  context: RunContext;
  description: string;
  cases: StatementCase[];
  /** Rows the send statement wrote, against the deliveries its sends asked for. */
  deliveries: { written: number; expected: number };
}

interface Member {
  id: string;
  pubkey: string;
}

async function seed(db: Database): Promise<{ meshId: string; members: Member[] }> {
  const [mesh] = await db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('bench-statement', 'bench') RETURNING id`);
  const members = await db.rows<Member>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name)
    SELECT ${mesh!.id}::uuid, md5('bench-statement-' || g) || md5('key-' || g), 'm' || g FROM generate_series(1, ${MEMBERS}) g
    RETURNING id, pubkey`);
  await db.rows(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    SELECT mesh_id, id, ${HOLDERS.instanceId}, 'bench-' || id, display_name FROM members WHERE mesh_id = ${mesh!.id}`);
  // Messages past their time whose deliveries an earlier sweep expired, as a
  // short per-send TTL leaves them until the prune: what a sweep with
  // nothing to expire passes on its way.
  await db.rows(sql`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT ${mesh!.id}::uuid, ${members[0]!.id}::uuid, ${members[1]!.pubkey}, 'next', 'n', 'c', now() - interval '1 minute'
      FROM generate_series(1, ${SWEPT}) g
      RETURNING id)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state)
    SELECT id, ${members[1]!.id}::uuid, 'next', now() - interval '1 minute', 'expired' FROM m`);
  // A member away for hours, its backlog older than the settled retention:
  // what the prune reads past on its way to what it may remove.
  const [away] = await db.rows<Member>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name)
    VALUES (${mesh!.id}::uuid, md5('bench-statement-away') || md5('away'), 'away') RETURNING id, pubkey`);
  await db.rows(sql`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, created_at, expires_at)
      SELECT ${mesh!.id}::uuid, ${members[0]!.id}::uuid, ${away!.pubkey}, 'next', 'n', 'c', now() - interval '2 hours', now() + interval '7 days'
      FROM generate_series(1, ${OWED}) g
      RETURNING id, created_at, expires_at)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, created_at, expires_at, state)
    SELECT id, ${away!.id}::uuid, 'next', created_at, expires_at, 'queued' FROM m`);
  await db.rows(sql`CREATE TABLE bench_commits (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`);
  await db.rows(sql`ANALYZE`);
  return { meshId: mesh!.id, members };
}

/** A random sender, and the i-th member after it as the recipient: a batch's sends go to different members. */
function pairOf(members: Member[], i: number): { sender: Member; recipient: Member } {
  const s = (Math.random() * members.length) | 0;
  return { sender: members[s]!, recipient: members[(s + 1 + i) % members.length]! };
}

function sendsOf(meshId: string, members: Member[], count: number): NewMessage[] {
  return Array.from({ length: count }, (_, i) => {
    const { sender, recipient } = pairOf(members, i);
    return {
      id: crypto.randomUUID(),
      meshId,
      senderId: sender.id,
      clientId: crypto.randomUUID(),
      targetSpec: recipient.pubkey,
      priority: "next",
      nonce: SEND_NONCE,
      ciphertext: "c".repeat(200),
      replyTo: null,
      ttlSeconds: 3600,
      replyWaitSeconds: null,
    };
  });
}

/**
 * Messages and their deliveries, each leased to its recipient's presence, in
 * one statement: the rows of a batch of sends, without their routing and
 * checks.
 */
function bareWrite(db: Database, meshId: string, members: Member[], count: number): Promise<unknown> {
  const rows = Array.from({ length: count }, (_, i) => {
    const { sender, recipient } = pairOf(members, i);
    return { id: crypto.randomUUID(), senderId: sender.id, recipientId: recipient.id, clientId: crypto.randomUUID(), targetSpec: recipient.pubkey };
  });
  return db.rows(sql`
    WITH q AS (
      SELECT * FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
        AS q(id uuid, "senderId" uuid, "recipientId" uuid, "clientId" text, "targetSpec" text)
    ),
    m AS (
      INSERT INTO messages (id, mesh_id, sender_member_id, client_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT id, ${meshId}::uuid, "senderId", "clientId", "targetSpec", 'next', ${"n".repeat(32)}, ${"c".repeat(200)}, now() + interval '1 hour'
      FROM q
      RETURNING id
    )
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state, lease_presence_id, lease_expires_at, attempt, delivered_at)
    SELECT m.id, q."recipientId", 'next', now() + interval '1 hour', 'leased',
           (SELECT p.id FROM presences p WHERE p.member_id = q."recipientId" AND p.disconnected_at IS NULL LIMIT 1),
           now() + interval '30 seconds', 1, now()
    FROM m JOIN q ON q.id = m.id
    RETURNING id`);
}

async function runStatementCosts(database: ConnectOptions, size: Size): Promise<Omit<StatementReport, "kind" | "name" | "context" | "description">> {
  const db = await connect(database);
  try {
    await migrate(db);
    const { meshId, members } = await seed(db);
    const send = (count: number, recipientsHere: boolean) => async () => {
      const sends = sendsOf(meshId, members, count);
      const holders = { ...HOLDERS, recipientsHere };
      if (writtenDirectly(sends, holders) !== recipientsHere) throw new Error("a batch of the benchmark went to the other send statement");
      const written = await enqueueSends(db, sends, holders);
      if (written.some((w) => !w.inserted)) throw new Error("a send of the benchmark was not written");
    };
    const sendCases = (name: string, recipientsHere: boolean) => [
      { name: `${name}, no sends`, messages: 0, call: () => prepareEnqueue(db, { ...HOLDERS, recipientsHere }, 1) },
      ...[1, 3, 10, 100, 400].map((n) => ({ name: `${name}, ${n} send${n > 1 ? "s" : ""}`, messages: n, sends: true as const, call: send(n, recipientsHere) })),
    ];
    // Where the broker's next prune starts after one (services/prune-walk.ts).
    let pruneFrom = FROM_THE_OLDEST;
    const cases: Array<{ name: string; messages: number; sends?: true; call: () => Promise<unknown> }> = [
      { name: "round trip (SELECT 1)", messages: 0, call: () => db.rows(sql`SELECT 1`) },
      { name: "single-row insert and commit", messages: 0, call: () => db.rows(sql`INSERT INTO bench_commits DEFAULT VALUES`) },
      { name: "a message and its delivery, bare", messages: 1, call: () => bareWrite(db, meshId, members, 1) },
      { name: "100 messages and their deliveries, bare", messages: 100, call: () => bareWrite(db, meshId, members, 100) },
      ...sendCases("send statement", false),
      ...sendCases("direct send statement", true),
      {
        name: `expiry sweep, nothing to expire, ${SWEPT.toLocaleString("en-US")} messages expired and swept before`,
        messages: 0,
        call: async () => {
          if ((await expireDeliveries(db, HOUSEKEEPING_BATCH)) !== 0) throw new Error("the benchmark's expiry sweep found a delivery to expire");
        },
      },
      {
        name: `prune from the oldest message, nothing to remove, ${OWED.toLocaleString("en-US")} messages past the retention still owed`,
        messages: 0,
        call: async () => {
          if ((await pruneMessages(db, RETENTION, HOUSEKEEPING_BATCH)).removed !== 0) throw new Error("the benchmark's prune found a message to remove");
        },
      },
      {
        name: `prune from where the last ended, nothing to remove, the same ${OWED.toLocaleString("en-US")} behind it`,
        messages: 0,
        call: async () => {
          const pruned = await pruneMessages(db, RETENTION, HOUSEKEEPING_BATCH, pruneFrom);
          if (pruned.removed !== 0) throw new Error("the benchmark's prune found a message to remove");
          pruneFrom = pruned.next;
        },
      },
    ];
    // Every statement planned and cached on the connection before anything counts.
    for (const c of cases) await c.call();
    const before = await deliveriesBySends(db);
    const samples = cases.map(() => ({ wall: [] as number[], cpuMicros: 0 }));
    const { rounds, calls } = STATEMENT_SHAPE[size];
    for (let round = 0; round < rounds; round++) {
      for (const [i, c] of cases.entries()) {
        const cpuBefore = process.cpuUsage();
        for (let k = 0; k < calls; k++) {
          const start = performance.now();
          await c.call();
          samples[i]!.wall.push(performance.now() - start);
        }
        const cpu = process.cpuUsage(cpuBefore);
        samples[i]!.cpuMicros += cpu.user + cpu.system;
      }
    }
    return {
      cases: cases.map((c, i) => ({
        name: c.name,
        messages: c.messages,
        wallMs: summarize(samples[i]!.wall),
        clientCpuMs: samples[i]!.cpuMicros / 1000 / samples[i]!.wall.length,
      })),
      deliveries: {
        written: (await deliveriesBySends(db)) - before,
        expected: rounds * calls * cases.reduce((n, c) => n + (c.sends ? c.messages : 0), 0),
      },
    };
  } finally {
    await db.close();
  }
}

/** Deliveries written by the send statement. */
async function deliveriesBySends(db: Database): Promise<number> {
  const [row] = await db.rows<{ n: number }>(sql`
    SELECT count(*)::int AS n FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE m.nonce = ${SEND_NONCE}`);
  return row!.n;
}

export function statementMarkdown(report: StatementReport): string {
  const base = (name: string) => report.cases.find((c) => c.name === name)!.wallMs.p50;
  const bare = base("a message and its delivery, bare");
  const trip = base("round trip (SELECT 1)");
  const f = (v: number, digits = 3) => v.toLocaleString("en-US", { maximumFractionDigits: digits });
  const rows = report.cases.map((c) => [
    c.name,
    `${f(c.wallMs.p50)} / ${f(c.wallMs.p99)}`,
    f(c.clientCpuMs),
    c.messages > 0 ? f(c.wallMs.p50 / c.messages) : "—",
    `${f(c.wallMs.p50 / trip, 2)}×`,
    `${f(c.wallMs.p50 / bare, 2)}×`,
  ]);
  return [
    contextLines(report.context),
    "",
    `**${report.name}**: ${report.description}.`,
    "",
    table(["statement", "p50 / p99 (ms)", "client CPU per call (ms)", "p50 per message (ms)", "p50 ÷ round trip", "p50 ÷ bare message and delivery"], rows),
    "",
    `Deliveries the send statements wrote: ${report.deliveries.written} of ${report.deliveries.expected}.`,
  ].join("\n");
}

const describe = (size: Size, on: string) => {
  const { rounds, calls } = STATEMENT_SHAPE[size];
  return (
    `${on}, ${rounds} rounds of ${calls} calls of each statement in turn; ` +
    `sends are direct, to members of one mesh of ${MEMBERS} whose presences are on this instance, written by the send statement and by the direct one; ` +
    `the expiry sweep and the prune (at most ${HOUSEKEEPING_BATCH.toLocaleString("en-US")} each, the prune with a settled retention of 1 h) ` +
    `run among ${SWEPT.toLocaleString("en-US")} messages whose deliveries expired before and ${OWED.toLocaleString("en-US")} messages 2 h old ` +
    `still owed to a member away (not one of the ${MEMBERS})`
  );
};

export type StatementBackend = "postgres" | "embedded";

const benchName = (backend: StatementBackend) => (backend === "embedded" ? "embedded-statement" : "statement");

export async function runStatementReport(size: Size, backend: StatementBackend = "postgres"): Promise<StatementReport> {
  const name = benchName(backend);
  if (backend === "embedded") {
    const dataDir = mkdtempSync(join(tmpdir(), "switchboard-statement-"));
    try {
      return {
        kind: "statement",
        name,
        context: runContext(name, size, "embedded (PGlite)"),
        description: describe(size, "the embedded database"),
        ...(await runStatementCosts({ dataDir }, size)),
      };
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
  const cluster = await startPostgresCluster({ fsync: true, onDisk: onDisk(size) });
  try {
    return {
      kind: "statement",
      name,
      context: runContext(name, size, `Postgres ${await postgresVersion(cluster.url())}, fsync on`),
      description: describe(size, "one connection of the broker's pool"),
      ...(await runStatementCosts({ databaseUrl: cluster.url(), dataDir: "" }, size)),
    };
  } finally {
    await cluster.destroy();
  }
}

export async function main(size: Size, backend: StatementBackend): Promise<void> {
  const report = await runStatementReport(size, backend);
  await writeReport(report.name, size, report, statementMarkdown(report));
}
