// A Postgres server that refuses writes as read-only (a hot standby, a
// primary demoted by a failover; here `default_transaction_read_only` on the
// test's database, which each connection takes as it opens): the broker
// answers sends as not stored (a socket's `internal`, HTTP's 503
// `unavailable`) and admin changes 503, rather than "it may have been
// stored"; once the database writes again, sends are stored. Its health
// ping finds the server read-only by itself, with no send refused:
// /health says `"db":"read_only"`, /health/ready `db_read_only` and
// broker_db_read_only 1 until the server takes writes again.
import { afterEach, describe, expect, test } from "bun:test";
import { backendKind, makeDatabaseReadOnly, PeerPool, setupMesh, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import postgres from "postgres";
import { httpBody, postMessage, type ErrorBody } from "./support/http-api.ts";
import { scrape } from "./support/messaging.ts";

const pool = new PeerPool();
afterEach(() => pool.closeAll());

const READ_ONLY = "the database is read-only (a standby, or a primary demoted by a failover); nothing was stored";

describe.skipIf(backendKind !== "postgres")("a database server that refuses writes as read-only (needs DATABASE_URL)", () => {
  const broker = useTestBroker();

  test("sends are refused as stored nothing, admin changes 503; once it writes again, sends are stored", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await pool.connect(broker.wsUrl, a, mesh.id);
    const token = await broker.admin.createApiToken(mesh.id, a.id);
    const admin = postgres(broker.backend.databaseUrl!, { max: 1, onnotice: () => {} });
    const makeWritable = await makeDatabaseReadOnly(broker.backend.databaseUrl!);
    try {
      // The first sends may meet a connection that was ended: a loss, not a refusal.
      const refused = await waitUntil(
        async () => {
          const reply = await sender.send(b.pubkey);
          return reply.type === "error" && String(reply.message).startsWith(READ_ONLY) ? reply : undefined;
        },
        20_000,
        "a send refused as read-only",
      );
      expect(refused).toMatchObject({ type: "error", code: "internal", message: `${READ_ONLY}; send it again with the same id` });
      const answer = await postMessage<ErrorBody>(broker.url, token, httpBody(b.pubkey));
      expect({ status: answer.status, body: answer.body, retryAfter: answer.headers.get("retry-after") }).toEqual({
        status: 503,
        body: { error: { code: "unavailable", message: READ_ONLY } },
        retryAfter: "1",
      });
      const created = await fetch(`${broker.url}/v1/meshes`, {
        method: "POST",
        headers: { authorization: `Bearer ${broker.adminToken}`, "content-type": "application/json" },
        body: JSON.stringify({ slug: `ro-${crypto.randomUUID().slice(0, 8)}` }),
      });
      expect({ status: created.status, code: ((await created.json()) as ErrorBody).error.code }).toEqual({ status: 503, code: "unavailable" });
      expect((await admin<{ n: number }[]>`SELECT count(*)::int AS n FROM messages`)[0]!.n).toBe(0);
    } finally {
      await makeWritable();
    }
    await waitUntil(async () => ((await sender.send(b.pubkey)).type === "ack" ? true : undefined), 20_000, "a send stored again");
    await admin.end();
  });

  test("with no send refused, the health ping finds it read-only: /health, /health/ready, the gauge and the log say so until it writes again", async () => {
    const read = async (path: string) => {
      const res = await fetch(`${broker.url}${path}`);
      return { status: res.status, body: (await res.json()) as { status: string; db?: string } };
    };
    const health = async () => ({ health: await read("/health"), ready: await read("/health/ready") });
    const gauge = async () => (await scrape(broker.url)).get("broker_db_read_only");
    // The test before left the database read-only a moment ago.
    await waitUntil(async () => ((await health()).health.body.db === "up" ? true : undefined), 20_000, "/health to say up");
    expect(await gauge()).toBe(0);
    const logsBefore = broker.process.logs.length;
    const logged = (msg: string) => broker.process.logs.slice(logsBefore).filter((l) => l.msg === msg).map((l) => l.level);
    const makeWritable = await makeDatabaseReadOnly(broker.backend.databaseUrl!);
    try {
      await waitUntil(async () => ((await health()).health.body.db === "read_only" ? true : undefined), 20_000, "/health to say read_only");
      expect(await health()).toMatchObject({
        health: { status: 503, body: { status: "degraded", db: "read_only" } },
        ready: { status: 503, body: { status: "db_read_only" } },
      });
      expect(await gauge()).toBe(1);
      expect(logged("db read-only")).toEqual([50]);
    } finally {
      await makeWritable();
    }
    await waitUntil(async () => ((await health()).health.body.db === "up" ? true : undefined), 20_000, "/health to say up again");
    expect(await health()).toMatchObject({ health: { status: 200, body: { status: "ok", db: "up" } }, ready: { status: 200, body: { status: "ready" } } });
    expect(await gauge()).toBe(0);
    expect(logged("db writable")).toEqual([30]);
  });
});
