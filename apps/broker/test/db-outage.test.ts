// /health follows a real Postgres going away and coming back (and the admin
// API answers 503 meanwhile); the broker neither exits nor needs a restart.
// A socket that closed meanwhile is ended once it is back, and until then
// nothing is leased to it.
import { afterAll, describe, expect, test } from "bun:test";
import {
  AdminError,
  ownPostgresTestsRun,
  rawPresence,
  setupMesh,
  startBrokerOnOwnPostgres,
  TestPeer,
  waitUntil,
  type BrokerOnOwnPostgres,
  type SetupMember,
} from "@switchboard/testkit";
import { deltas, pushesUnwritten, queryPostgres, scrape, sendFrame, str } from "./support/messaging.ts";

let own: BrokerOnOwnPostgres | undefined;
afterAll(() => own?.dispose());

async function healthStatusBecomes(url: string, status: number, timeoutMs: number): Promise<number> {
  const until = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < until) {
    last = (await fetch(`${url}/health`)).status;
    if (last === status) return last;
    await Bun.sleep(200);
  }
  return last;
}

/** Postgres stopped, the peer's socket closed (its end cannot be written), Postgres back. */
async function closeWhileAway({ cluster, broker }: BrokerOnOwnPostgres, peer: { destroy(): void }): Promise<void> {
  await cluster.stop();
  expect(await healthStatusBecomes(broker.url, 503, 15_000)).toBe(503);
  peer.destroy();
  await broker.process.waitForLog("disconnect failed");
  await cluster.start();
  expect(await healthStatusBecomes(broker.url, 200, 20_000)).toBe(200);
}

describe.skipIf(!ownPostgresTestsRun())("database outage", () => {
  test("/health goes 200 → 503 while Postgres is stopped → 200 when it is back", async () => {
    own = await startBrokerOnOwnPostgres();
    const { cluster, broker } = own;
    expect((await fetch(`${broker.url}/health`)).status).toBe(200);
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const hookToken = await broker.admin.createHookToken(mesh.id, members[0]!.id);
    const apiToken = await broker.admin.createApiToken(mesh.id, members[0]!.id);
    const counted = ["broker_messages_rejected_total{reason=unavailable}", "broker_connections_rejected_total{reason=internal}"];
    const before = await scrape(broker.url);

    await cluster.stop();
    expect(await healthStatusBecomes(broker.url, 503, 15_000)).toBe(503);
    const degraded = (await (await fetch(`${broker.url}/health`)).json()) as Record<string, unknown>;
    expect(degraded).toMatchObject({ status: "degraded", db: "down" });
    await broker.process.waitForLog("db ping failed");
    // An HTTP send is refused as the socket's is, and counted so (its token's lookup is what failed);
    // a hello fails as the broker's doing, and is counted too.
    const send = await fetch(`${broker.url}/v1/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiToken}`, "content-type": "application/json" },
      body: JSON.stringify({ targetSpec: "*", nonce: "plain", ciphertext: "while away" }),
    });
    expect({ status: send.status, body: await send.json() }).toMatchObject({ status: 503, body: { error: { code: "unavailable" } } });
    const hello = await TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id }).catch((error: unknown) => error);
    expect(hello).toMatchObject({ code: "internal", closeCode: 1011 });
    expect(deltas(before, await scrape(broker.url), counted)).toEqual({ [counted[0]!]: 1, [counted[1]!]: 1 });
    // The admin API says so too, as the messaging API does: 503, not 500.
    const meshes = await fetch(`${broker.url}/v1/meshes`, { headers: { authorization: `Bearer ${broker.adminToken}` } });
    expect({ status: meshes.status, retryAfter: meshes.headers.get("retry-after"), body: await meshes.json() }).toMatchObject({
      status: 503,
      retryAfter: "1",
      body: { error: { code: "unavailable" } },
    });
    // And the dashboard's endpoints, which are admin API.
    const overview = await fetch(`${broker.url}/v1/admin/overview`, { headers: { authorization: `Bearer ${broker.adminToken}` } });
    expect({ status: overview.status, retryAfter: overview.headers.get("retry-after"), body: await overview.json() }).toMatchObject({
      status: 503,
      retryAfter: "1",
      body: { error: { code: "unavailable" } },
    });
    // A status hook is told so in its contract's shape, and its failure is a
    // warning, as a socket frame's is: not an error report per session's hook.
    const hook = await fetch(`${broker.url}/hook/set-status`, {
      method: "POST",
      headers: { authorization: `Bearer ${hookToken}`, "content-type": "application/json" },
      body: JSON.stringify({ cwd: "/home/dev/project", status: "working" }),
    });
    expect({ status: hook.status, body: await hook.json() }).toMatchObject({ status: 503, body: { ok: false, error: "unavailable" } });
    expect((await broker.process.waitForLog("hook failed")).level).toBe(40);

    await cluster.start();
    expect(await healthStatusBecomes(broker.url, 200, 20_000)).toBe(200);
    await broker.process.waitForLog("db healthy");
    expect(broker.process.logs.some((l) => l.msg === "broker failed to start")).toBe(false);
  });

  test("SIGTERM while Postgres is away still ends the instance cleanly: exit 0, saying what it could not write", async () => {
    const mine = await startBrokerOnOwnPostgres({ SHUTDOWN_DRAIN_MS: "0" });
    try {
      const { cluster, broker } = mine;
      const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
      const peer = await rawPresence(broker.wsUrl, mesh.id, (members[0] as SetupMember).identity);
      await cluster.stop();
      expect(await healthStatusBecomes(broker.url, 503, 15_000)).toBe(503);
      const code = await broker.process.stop();
      const failed = broker.process.logs.filter((l) => l.msg === "shutdown failed").map((l) => (l.err as { message?: string } | undefined)?.message);
      expect({ code, failed }).toEqual({ code: 0, failed: [] });
      expect(broker.process.logs.some((l) => l.msg === "shutdown complete")).toBe(true);
      expect(broker.process.logs.some((l) => l.msg === "shutdown step failed")).toBe(true);
      peer.destroy();
      // For the database's own cleanup.
      await cluster.start();
    } finally {
      await mine.dispose();
    }
  });

  test("a socket that closed while Postgres was away is ended in the database once it is back", async () => {
    const mine = await startBrokerOnOwnPostgres();
    try {
      const { broker } = mine;
      const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
      const peer = await rawPresence(broker.wsUrl, mesh.id, (members[0] as SetupMember).identity);
      expect(await broker.admin.peers(mesh.id)).toHaveLength(1);

      await closeWhileAway(mine, peer);
      // Left as it was, the row would stay live, listed and counted, until the instance stopped.
      // Right after the outage the admin API may still answer 503 unavailable
      // a moment (a connection of the broker's pool met the restart): asked again.
      const livePeers = () =>
        broker.admin.peers(mesh.id).then(
          (peers) => peers.length,
          (error: unknown) => {
            if (error instanceof AdminError && error.status === 503 && error.body.includes('"unavailable"')) return undefined;
            throw error;
          },
        );
      await waitUntil(async () => (await livePeers()) === 0, 20_000, "the presence ended in the database");
    } finally {
      await mine.dispose();
    }
  });

  test("until then (CATCH_UP_INTERVAL_MS=600000), a message for its member is queued, not leased to the socket that is gone", async () => {
    const mine = await startBrokerOnOwnPostgres({ CATCH_UP_INTERVAL_MS: "600000" });
    try {
      const { broker } = mine;
      const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
      const [sender, recipient] = members as [SetupMember, SetupMember];
      const peer = await rawPresence(broker.wsUrl, mesh.id, recipient.identity);
      await closeWhileAway(mine, peer);

      const unwrittenBefore = await pushesUnwritten(broker.url);
      const from = await TestPeer.connect(broker.wsUrl, { identity: sender.identity, meshId: mesh.id });
      try {
        const ack = await from.request(sendFrame(recipient.pubkey));
        // Queued either way once any push of it went back: then count.
        const state = () =>
          queryPostgres(broker.backend, (sql) => sql<{ state: string }[]>`SELECT state FROM deliveries WHERE message_id = ${str(ack.messageId)}::uuid`);
        await waitUntil(async () => (await state())?.[0]?.state === "queued", 10_000, "the delivery queued");
        expect((await pushesUnwritten(broker.url)) - unwrittenBefore).toBe(0);
      } finally {
        await from.close();
      }
    } finally {
      await mine.dispose();
    }
  });
});
