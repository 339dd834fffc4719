// /health/ready: 503 while migrating (here: waiting for a database that is
// not up yet, as at a compose boot), while the database is down, and while
// draining after SIGTERM; 200 otherwise. /health stays the liveness check.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  backendKind,
  freePort,
  freshBackend,
  ownPostgresTestsRun,
  setupMesh,
  spawnBroker,
  spawnRaw,
  startPostgresCluster,
  TEST_ADMIN_TOKEN,
  waitUntil,
  TestBroker,
  TestPeer,
  type BrokerProcess,
  type PostgresCluster,
  type SetupMember,
} from "@switchboard/testkit";
import { MIGRATION_LOCK_KEY } from "@switchboard/db";
import postgres from "postgres";
import { scrape } from "./support/messaging.ts";

interface Answer {
  code: number;
  body: { status?: string; instanceId?: string };
}

async function ready(url: string): Promise<Answer | null> {
  try {
    const res = await fetch(`${url}/health/ready`);
    return { code: res.status, body: (await res.json()) as Answer["body"] };
  } catch {
    return null;
  }
}

/** broker_db_healthy as /metrics says it (scrape throws unless /metrics answers 200). */
const dbHealthy = async (url: string): Promise<number | undefined> => (await scrape(url)).get("broker_db_healthy");

/** Polls until the port answers with the wanted status (or the time is up); returns the last answer. */
async function readyBecomes(url: string, status: string, timeoutMs = 20_000): Promise<Answer | null> {
  const until = Date.now() + timeoutMs;
  let last: Answer | null = null;
  while (Date.now() < until) {
    last = await ready(url);
    if (last?.body.status === status) return last;
    await Bun.sleep(100);
  }
  return last;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A broker on this database and port, killed after the file's tests; `logged` is its stderr so far. */
function spawnLogged(databaseUrl: string, port: number) {
  const proc = spawnRaw({ DATABASE_URL: databaseUrl, BROKER_PORT: String(port), ADMIN_TOKEN: TEST_ADMIN_TOKEN });
  cleanups.push(async () => {
    proc.kill("SIGKILL");
    await proc.exited;
  });
  let text = "";
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) text += decoder.decode(chunk, { stream: true });
  })();
  return { proc, logged: () => text };
}

describe("readiness", () => {
  test("a started broker is ready", async () => {
    const broker = await TestBroker.start();
    cleanups.push(() => broker.dispose());
    const answer = await ready(broker.url);
    expect(answer).toEqual({ code: 200, body: { status: "ready", instanceId: expect.any(String) } });
  });

  test("SHUTDOWN_DRAIN_MS: after SIGTERM it says draining while it still serves its sockets and HTTP, then exits 0", async () => {
    const broker = await TestBroker.start({ SHUTDOWN_DRAIN_MS: "5000" });
    cleanups.push(() => broker.dispose());
    const socket = new WebSocket(broker.wsUrl);
    await new Promise((resolve) => socket.addEventListener("open", resolve));
    const closed = new Promise<number>((resolve) => socket.addEventListener("close", (event) => resolve(event.code)));
    broker.process.kill("SIGTERM");
    expect((await readyBecomes(broker.url, "draining", 4000))?.code).toBe(503);
    // Still serving: a proxy that routes one more request here gets an answer.
    expect((await fetch(`${broker.url}/health`)).status).toBe(200);
    expect(socket.readyState).toBe(WebSocket.OPEN);
    expect(broker.process.exitCode).toBeNull();
    expect(await broker.process.exited).toBe(0);
    expect(await closed).toBe(1001);
  });

  test("a peer that leaves during the drain gives its leases back at once: its member's other presence gets them", async () => {
    const broker = await TestBroker.start({ SHUTDOWN_DRAIN_MS: "5000" });
    cleanups.push(() => broker.dispose());
    const { mesh, members } = await setupMesh(broker.admin, { members: ["sender", "recipient"] });
    const [sender, recipient] = members as [SetupMember, SetupMember];
    const from = await TestPeer.connect(broker.wsUrl, { identity: sender.identity, meshId: mesh.id });
    // Takes the push and never acks it: the message is leased to it.
    const holder = await TestPeer.connect(broker.wsUrl, { identity: recipient.identity, meshId: mesh.id });
    const ack = await from.send(recipient.pubkey);
    await holder.waitForPushes(1);
    const other = await TestPeer.connect(broker.wsUrl, { identity: recipient.identity, meshId: mesh.id, autoAck: true });
    broker.process.kill("SIGTERM");
    expect((await readyBecomes(broker.url, "draining", 4000))?.code).toBe(503);
    await holder.close();
    // Within the drain, not only once the instance stops (by then every socket is closed).
    const [push] = await other.waitForPushes(1, 4000);
    expect(push?.messageId).toBe(ack.messageId);
    expect(await broker.process.exited).toBe(0);
    await Promise.all([from.close(), other.close()]);
  });
});

describe.skipIf(backendKind !== "postgres")("draining beside another instance", () => {
  test("its lease is renewed through the drain: the other instance does not reap the presences it still serves", async () => {
    // The longest drain and the shortest lease: what follows must fit in the drain.
    const env = { SHUTDOWN_DRAIN_MS: "5000", INSTANCE_LEASE_SECONDS: "2" };
    const a = await TestBroker.start(env);
    cleanups.push(() => a.dispose());
    const b = await TestBroker.start(env, { backend: a.backend });
    cleanups.push(() => b.dispose());
    const { mesh, members } = await setupMesh(a.admin, { members: 1 });
    const peer = await TestPeer.connect(a.wsUrl, { identity: (members[0] as SetupMember).identity, meshId: mesh.id });
    const sql = postgres(a.backend.databaseUrl!, { max: 1, onnotice: () => {} });
    cleanups.push(() => sql.end());
    const leaseOf = async (instanceId: string | undefined): Promise<number> => {
      const [row] = await sql<{ lease: Date }[]>`SELECT lease_expires_at AS lease FROM broker_instances WHERE id = ${instanceId!}`;
      return row!.lease.getTime();
    };
    const [aId, bId] = [(await ready(a.url))?.body.instanceId, (await ready(b.url))?.body.instanceId];
    a.process.kill("SIGTERM");
    expect((await readyBecomes(a.url, "draining", 4000))?.code).toBe(503);
    const leaseAtSignal = await leaseOf(aId);
    // Past the lease it held at the signal (by the database's clock), and two
    // renewals of the other instance after that: its reaping runs as often, so
    // at least one reaping round began in between.
    await waitUntil(async () => (await sql`SELECT now() > ${new Date(leaseAtSignal)} AS past`)[0]!.past === true, 30_000, "the lease held at the signal to pass");
    const bLeases = new Set<number>();
    await waitUntil(async () => bLeases.add(await leaseOf(bId)).size >= 3, 30_000, "two renewals of the other instance");
    expect(await leaseOf(aId)).toBeGreaterThan(leaseAtSignal);
    expect((await b.admin.peers(mesh.id)).map((p) => p.sessionId)).toEqual([peer.sessionId]);
    expect(a.process.exitCode).toBeNull();
    expect(await a.process.exited).toBe(0);
    await peer.close();
  });
});

// /health (PROTOCOL.md §4) answers the contract's body from the moment the
// port opens: while the instance starts 503 degraded, with db saying whether
// its database has answered; 200 ok once it serves.
describe("/health while the broker starts", () => {
  interface Health {
    status?: string;
    db?: string;
    version?: string;
    gitSha?: string;
    uptime?: number;
    instanceId?: string;
  }
  const health = async (url: string) => {
    const res = await fetch(`${url}/health`);
    return { code: res.status, body: (await res.json()) as Health };
  };
  const contractBody = (status: string, db: string, instanceId: string) => ({
    status,
    db,
    version: expect.any(String),
    gitSha: expect.any(String),
    uptime: expect.any(Number),
    instanceId,
  });

  test("before its database answers: 503 degraded, db down, with the build and the instance", async () => {
    const nowhere = await freePort();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const proc = spawnRaw({ DATABASE_URL: `postgres://switchboard@127.0.0.1:${nowhere}/switchboard`, BROKER_PORT: String(port), ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    try {
      const migrating = await readyBecomes(url, "migrating");
      expect(migrating?.code).toBe(503);
      expect(await health(url)).toEqual({ code: 503, body: contractBody("degraded", "down", migrating!.body.instanceId!) });
      // A method the route does not serve is the caller's mistake, as once the broker serves; any other path waits for the start.
      const posted = await fetch(`${url}/health`, { method: "POST" });
      expect({ code: posted.status, allow: posted.headers.get("allow"), body: await posted.json() }).toEqual({
        code: 405,
        allow: "GET, HEAD",
        body: { error: { code: "method_not_allowed", message: "POST is not allowed here; use GET, HEAD" } },
      });
      expect((await fetch(`${url}/v1/meshes`)).status).toBe(503);
    } finally {
      proc.kill("SIGKILL");
      await proc.exited;
    }
  });

  // docs/browser.md: every HTTP route answers a listed origin so, a 503 of the start included, so a page can read it.
  test("before its database answers, a listed origin gets its CORS headers and preflight, an unlisted one none", async () => {
    const nowhere = await freePort();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const origin = "http://app.example.test:3000";
    const proc = spawnRaw({
      DATABASE_URL: `postgres://switchboard@127.0.0.1:${nowhere}/switchboard`,
      BROKER_PORT: String(port),
      ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      CORS_ORIGINS: origin,
    });
    try {
      expect((await readyBecomes(url, "migrating"))?.code).toBe(503);
      const seen = async (path: string, init: RequestInit) => {
        const res = await fetch(`${url}${path}`, init);
        return { path, status: res.status, allow: res.headers.get("access-control-allow-origin"), vary: res.headers.get("vary") };
      };
      for (const path of ["/health", "/health/ready", "/v1/meshes"]) {
        expect(await seen(path, { headers: { origin } })).toEqual({ path, status: 503, allow: origin, vary: "Origin" });
        expect(await seen(path, { headers: { origin: "http://evil.example.test" } })).toEqual({ path, status: 503, allow: null, vary: "Origin" });
      }
      const preflight = { method: "OPTIONS", headers: { origin, "access-control-request-method": "POST" } };
      expect(await seen("/v1/messages", preflight)).toEqual({ path: "/v1/messages", status: 204, allow: origin, vary: "Origin" });
    } finally {
      proc.kill("SIGKILL");
      await proc.exited;
    }
  });

  test.skipIf(backendKind !== "postgres")("while its migrations wait (another instance's hold the lock): 503 degraded with db up, /health/ready migrating; then 200 ok (needs DATABASE_URL)", async () => {
    const backend = await freshBackend();
    cleanups.push(() => backend.dispose());
    // The lock migrate() takes: an instance migrating elsewhere holds it.
    const holder = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
    cleanups.push(() => holder.end({ timeout: 1 }));
    await holder`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const starting = spawnBroker({ ...backend.env, BROKER_PORT: String(port), ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    // Stopped even when an expectation below fails before the start is awaited.
    cleanups.push(() => starting.then((broker) => broker.stop(), () => undefined));
    const migrating = await readyBecomes(url, "migrating");
    expect(migrating?.code).toBe(503);
    const instanceId = migrating!.body.instanceId!;
    // The migration waits on the lock, so the database has answered the ping before it.
    await waitUntil(async () => (await dbHealthy(url)) === 1 || undefined, 20_000, "the database answered");
    expect(await health(url)).toEqual({ code: 503, body: contractBody("degraded", "up", instanceId) });
    expect((await ready(url))?.body.status).toBe("migrating");

    await holder`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
    await starting;
    expect((await readyBecomes(url, "ready"))?.code).toBe(200);
    expect(await health(url)).toEqual({ code: 200, body: contractBody("ok", "up", instanceId) });
  });
});

describe.skipIf(!ownPostgresTestsRun())("readiness against a Postgres that comes and goes", () => {
  let cluster: PostgresCluster;
  beforeAll(async () => {
    cluster = await startPostgresCluster();
    cleanups.push(() => cluster.destroy());
  });

  test("503 migrating until the database is up, 200 ready, 503 db_down while it is away, 200 again", async () => {
    await cluster.stop();

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const starting = spawnBroker({ DATABASE_URL: cluster.url(), BROKER_PORT: String(port), ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    const migrating = await readyBecomes(url, "migrating");
    expect(migrating?.code).toBe(503);
    // Everything but readiness and the metrics waits for the migrations too.
    expect((await fetch(`${url}/health`)).status).toBe(503);
    // Prometheus sees the instance up, its database not.
    const whileAway = await dbHealthy(url);

    await cluster.start();
    const broker = await starting;
    cleanups.push(() => broker.stop());
    expect(whileAway).toBe(0);
    expect((await readyBecomes(url, "ready"))?.code).toBe(200);
    expect(await dbHealthy(url)).toBe(1);

    await cluster.stop();
    expect((await readyBecomes(url, "db_down"))?.code).toBe(503);
    expect((await fetch(`${url}/health`)).status).toBe(503);

    await cluster.start();
    expect((await readyBecomes(url, "ready"))?.code).toBe(200);
  });

  test("a start that met its database away logs db healthy once it answers, after the last db ping failed", async () => {
    await cluster.stop();
    const port = await freePort();
    const starting = spawnBroker({ DATABASE_URL: cluster.url(), BROKER_PORT: String(port), ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    await readyBecomes(`http://127.0.0.1:${port}`, "migrating");
    await waitUntil(async () => (await dbHealthy(`http://127.0.0.1:${port}`)) === 0 || undefined, 20_000, "a failed start attempt");
    await cluster.start();
    const broker = await starting;
    cleanups.push(() => broker.stop());
    const events = broker.logs.map((l) => l.msg);
    expect(events).toContain("db ping failed");
    expect(events.lastIndexOf("db ping failed")).toBeLessThan(events.indexOf("db healthy"));
    expect(events.indexOf("db healthy")).toBeLessThan(events.indexOf("broker listening"));
  });

  test("a start past its migrations with no connection left for listening waits for one, then serves and hears notices", async () => {
    // A role whose limit the pool's warm-up takes whole: the listening connection is refused (53300).
    const name = `sb_few_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    const admin = postgres(cluster.url(), { max: 1, onnotice: () => {} });
    cleanups.push(() => admin.end({ timeout: 1 }));
    await admin.unsafe(`CREATE ROLE ${name} LOGIN CONNECTION LIMIT 3`);
    await admin.unsafe(`CREATE DATABASE ${name} OWNER ${name}`);
    const url = new URL(cluster.url());
    url.username = name;
    url.pathname = `/${name}`;
    const port = await freePort();
    const { proc, logged } = spawnLogged(url.toString(), port);
    await waitUntil(() => /"step":"register, listen","msg":"db ping failed"/.test(logged()) || undefined, 60_000, "the listening connection refused");
    expect(logged()).toContain("too many connections for role");
    expect(proc.exitCode).toBeNull();
    await admin.unsafe(`ALTER ROLE ${name} CONNECTION LIMIT -1`);
    const base = `http://127.0.0.1:${port}`;
    expect((await readyBecomes(base, "ready", 30_000))?.code).toBe(200);
    // The bus hears what is notified on its channel, once: a notice it cannot
    // read is logged. (A listen tried again had the driver keep the failed
    // one's listener beside the new one: each notice was heard twice.)
    const own = new URL(cluster.url());
    own.pathname = `/${name}`;
    const notifier = postgres(own.toString(), { max: 1, onnotice: () => {} });
    cleanups.push(() => notifier.end({ timeout: 1 }));
    const heard = () => logged().split('"msg":"ignored a malformed bus message"').length - 1;
    await notifier`SELECT pg_notify('switchboard_wake', 'not a bus message')`;
    await waitUntil(() => heard() > 0 || undefined, 10_000, "the notice heard");
    await Bun.sleep(1000);
    expect(heard()).toBe(1);
  });

  test("a migration the database refuses: the instance is up, its database up, and it waits at migrating", async () => {
    // A table of the schema's name and another shape: the first migration fails on it, the database answers.
    const name = `sb_refused_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    const admin = postgres(cluster.url(), { max: 1, onnotice: () => {} });
    cleanups.push(() => admin.end({ timeout: 1 }));
    await admin.unsafe(`CREATE DATABASE ${name}`);
    const url = new URL(cluster.url());
    url.pathname = `/${name}`;
    const refused = postgres(url.toString(), { max: 1, onnotice: () => {} });
    await refused.unsafe("CREATE TABLE meshes (id int)");
    await refused.end();

    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const { logged } = spawnLogged(url.toString(), port);
    expect((await readyBecomes(base, "migrating"))?.code).toBe(503);
    // Past the first refusal (the database answered before it), and still at migrating.
    await waitUntil(() => logged().includes('"msg":"db migration failed"') || undefined, 20_000, "a migration refused");
    expect(await dbHealthy(base)).toBe(1);
    expect((await ready(base))?.body.status).toBe("migrating");
  });

  test("503 draining from SIGTERM until the listener closes, then exit 0", async () => {
    const broker: BrokerProcess = await spawnBroker({ DATABASE_URL: cluster.url(), ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    cleanups.push(() => broker.stop());
    const { instanceId } = (await ready(broker.url))!.body;

    // Holding this instance's lease row keeps its shutdown at the step that
    // marks it stopped, with the HTTP listener still open.
    const sql = postgres(cluster.url(), { max: 1, onnotice: () => {} });
    cleanups.push(() => sql.end({ timeout: 1 }));
    const held = sql.reserve();
    const conn = await held;
    await conn`BEGIN`;
    await conn`SELECT id FROM broker_instances WHERE id = ${instanceId!} FOR UPDATE`;

    broker.kill("SIGTERM");
    const draining = await readyBecomes(broker.url, "draining");
    expect(draining).toEqual({ code: 503, body: { status: "draining", instanceId: instanceId! } });
    // A socket asking in now is refused rather than admitted into a stopping instance.
    const upgrade = await fetch(`${broker.url}/ws`, {
      headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" },
    });
    expect(upgrade.status).toBe(503);

    await conn`COMMIT`;
    conn.release();
    expect(await broker.exited).toBe(0);
  });
});
