// A Postgres server that refuses writes as read-only (a hot standby, a
// primary demoted by a failover; here `default_transaction_read_only` on the
// test's database, which each connection takes as it opens): the broker
// answers sends as not stored (a socket's `internal`, HTTP's 503
// `unavailable`) and admin changes 503, rather than "it may have been
// stored"; once the database writes again, sends are stored.
import { afterEach, describe, expect, test } from "bun:test";
import { backendKind, PeerPool, setupMesh, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import postgres from "postgres";
import { httpBody, postMessage, type ErrorBody } from "./support/http-api.ts";

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
    // The broker's connections take the setting as they open again.
    const reconnectAll = () => admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
    const name = (await admin<{ name: string }[]>`SELECT current_database() AS name`)[0]!.name;
    try {
      await admin.unsafe(`ALTER DATABASE "${name}" SET default_transaction_read_only = on`);
      await reconnectAll();
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
      await admin.unsafe(`ALTER DATABASE "${name}" RESET default_transaction_read_only`);
      await reconnectAll();
    }
    await waitUntil(async () => ((await sender.send(b.pubkey)).type === "ack" ? true : undefined), 20_000, "a send stored again");
    await admin.end();
  });
});
