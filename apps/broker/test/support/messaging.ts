// Helpers for the send and delivery tests: pipelined sends, metric samples,
// and reading the Postgres backend next to a running broker.
import { afterEach } from "bun:test";
import {
  newReqId,
  parsePrometheusText,
  PeerPool,
  waitUntil,
  type ConnectOptions,
  type Frame,
  type SetupMember,
  type TestBackend,
  type TestBroker,
  type TestPeer,
} from "@switchboard/testkit";
import postgres from "postgres";

export const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The file's peers, closed after each test, and how a test connects one of a mesh's members to a broker. */
export function peersOfEachTest() {
  const pool = new PeerPool();
  afterEach(() => pool.closeAll());
  const connect = (broker: TestBroker, meshId: string, member: SetupMember, options: Partial<ConnectOptions> = {}) =>
    pool.connect(broker.wsUrl, member, meshId, options);
  return { pool, connect };
}

export const str = (v: unknown): string => {
  if (typeof v !== "string") throw new Error(`expected a string, got ${JSON.stringify(v)}`);
  return v;
};

/**
 * Writes every frame at once (the broker handles them in order) and returns the
 * replies in the same order, matched by reqId.
 */
export async function sendMany(peer: TestPeer, frames: Frame[], timeoutMs = 60_000): Promise<Frame[]> {
  const start = peer.frames.length;
  const reqIds = frames.map(() => newReqId());
  frames.forEach((frame, i) => peer.sendFrame({ ...frame, reqId: reqIds[i] }));
  const replies = new Map<string, Frame>();
  let scanned = start;
  return waitUntil(
    () => {
      for (; scanned < peer.frames.length; scanned++) {
        const f = peer.frames[scanned]!;
        if (typeof f.reqId === "string") replies.set(f.reqId, f);
      }
      if (!peer.isOpen && replies.size < reqIds.length) throw new Error(`socket closed after ${replies.size} replies`);
      return replies.size >= reqIds.length ? reqIds.map((r) => replies.get(r)!) : undefined;
    },
    timeoutMs,
    `${frames.length} replies (have ${replies.size})`,
  );
}

export function sendFrame(targetSpec: string, fields: Record<string, unknown> = {}): Frame {
  return {
    type: "send",
    targetSpec,
    nonce: `n-${crypto.randomUUID()}`,
    ciphertext: Buffer.from(`body ${crypto.randomUUID()}`).toString("base64"),
    ...fields,
  };
}

/** Every sample of /metrics, keyed `name{label=value,…}` (labels sorted). */
export async function scrape(baseUrl: string): Promise<Map<string, number>> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  const out = new Map<string, number>();
  for (const family of parsePrometheusText(await res.text()).values()) {
    for (const s of family.samples) {
      const labels = Object.entries(s.labels)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => `${k}=${v}`)
        .join(",");
      out.set(labels ? `${s.name}{${labels}}` : s.name, s.value);
    }
  }
  return out;
}

/** How much each of keys grew between two scrapes. */
export function deltas(before: Map<string, number>, after: Map<string, number>, keys: string[]): Record<string, number> {
  return Object.fromEntries(keys.map((k) => [k, (after.get(k) ?? 0) - (before.get(k) ?? 0)]));
}

/** Runs a query on the backend's Postgres while the broker runs; null on the embedded backend (one process per DATA_DIR). */
export async function queryPostgres<T extends object>(
  backend: TestBackend,
  run: (sql: postgres.Sql) => Promise<T[]>,
): Promise<T[] | null> {
  if (backend.kind !== "postgres" || !backend.databaseUrl) return null;
  const sql = postgres(backend.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    return await run(sql);
  } finally {
    await sql.end();
  }
}

/** Runs `during` with every channel join's insert taking `seconds` (Postgres): a join then holds its connection's pipeline. */
export async function withSlowJoins<T>(backend: TestBackend, seconds: number, during: () => Promise<T>): Promise<T> {
  await queryPostgres(backend, (sql) =>
    sql.unsafe(`
      CREATE FUNCTION slow_join() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(${seconds}); RETURN NEW; END $$;
      CREATE TRIGGER slow_join BEFORE INSERT ON channel_members FOR EACH ROW EXECUTE FUNCTION slow_join();`),
  );
  try {
    return await during();
  } finally {
    await queryPostgres(backend, (sql) => sql.unsafe("DROP TRIGGER slow_join ON channel_members; DROP FUNCTION slow_join();"));
  }
}

/** The broker's count of pushes it could not write and handed back to the queue. */
export async function pushesUnwritten(brokerUrl: string): Promise<number> {
  return (await scrape(brokerUrl)).get("broker_pushes_unwritten_total") ?? Number.NaN;
}

export function firstArrivals(pushes: Frame[]): string[] {
  const seen = new Set<string>();
  const order: string[] = [];
  for (const p of pushes) {
    const id = str(p.messageId);
    if (!seen.has(id)) {
      seen.add(id);
      order.push(id);
    }
  }
  return order;
}
