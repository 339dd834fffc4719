// A Postgres server that refuses writes for want of disk space while it
// still answers its ping: the broker answers sends as not stored (a socket's
// `internal`, HTTP's 503 `unavailable`), /health says `"db":"full"` and
// /health/ready `db_full` and broker_db_full 1, until no write was refused
// for a while. The server's refusal is real: a trigger raises SQLSTATE 53100
// (disk_full) on every new message, as a full disk would, and is dropped to
// make room.
// (embedded-full-disk.test.ts fills a real file system under the embedded
// database.)
import { afterEach, describe, expect, test } from "bun:test";
import { backendKind, PeerPool, refuseMessagesForWantOfSpace, setupMesh, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import { httpBody, postMessage, type ErrorBody } from "./support/http-api.ts";
import { scrape } from "./support/messaging.ts";

const pool = new PeerPool();
afterEach(() => pool.closeAll());

describe.skipIf(backendKind !== "postgres")("a database server with no disk space left (needs DATABASE_URL: a trigger raises it)", () => {
  const broker = useTestBroker();

  const read = async (path: string) => (await (await fetch(`${broker.url}${path}`)).json()) as { status: string; db?: string };
  const health = async () => ({ health: await read("/health"), ready: await read("/health/ready") });
  const fullGauge = async () => (await scrape(broker.url)).get("broker_db_full");

  test("sends are refused as stored nothing, /health says full; once it writes again, up", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await pool.connect(broker.wsUrl, a, mesh.id);
    const token = await broker.admin.createApiToken(mesh.id, a.id);
    const makeRoom = await refuseMessagesForWantOfSpace(broker.backend.databaseUrl!);
    try {
      expect(await sender.send(b.pubkey)).toMatchObject({
        type: "error",
        code: "internal",
        message: "the database has no disk space left to store it; nothing was stored; send it again with the same id",
      });
      const answer = await postMessage<ErrorBody>(broker.url, token, httpBody(b.pubkey));
      expect({ status: answer.status, body: answer.body, retryAfter: answer.headers.get("retry-after") }).toEqual({
        status: 503,
        body: { error: { code: "unavailable", message: "the database has no disk space left to store it; nothing was stored" } },
        retryAfter: "1",
      });
      expect(await health()).toMatchObject({ health: { status: "degraded", db: "full" }, ready: { status: "db_full" } });
      expect(await fullGauge()).toBe(1);
      expect(broker.process.logs.filter((l) => l.msg === "db full").length).toBe(1);
    } finally {
      await makeRoom();
    }
    expect(await sender.send(b.pubkey)).toMatchObject({ type: "ack", queued: true });
    await waitUntil(async () => ((await health()).health.db === "up" ? true : undefined), 30_000, "/health to say up again");
    expect(await health()).toMatchObject({ health: { status: "ok", db: "up" }, ready: { status: "ready" } });
    expect(await fullGauge()).toBe(0);
    expect(broker.process.logs.some((l) => l.msg === "db writes again")).toBe(true);
  });
});
