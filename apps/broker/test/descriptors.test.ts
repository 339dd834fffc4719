// A broker under a low limit on open files (`ulimit -n`, as containers set
// it) flooded with sockets. Out of descriptors, the server spun on accept()
// and answered nobody, not even /health, and the embedded database, failing
// to create a file, went on failing. While fewer than a reserve are left, new
// sockets and requests are refused 503 and closed (readiness-states.test.ts:
// /health/ready says so); the peers it holds, /health and /metrics go on,
// and new sockets are let in once descriptors are back.
import { afterAll, describe, expect, test } from "bun:test";
import {
  AdminClient,
  freshBackend,
  setupMesh,
  spawnBroker,
  TEST_ADMIN_TOKEN,
  TestPeer,
  waitUntil,
  type BrokerProcess,
  type SetupMember,
} from "@switchboard/testkit";

const FILE_LIMIT = 256;
const FLOOD = 300;

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A socket that opens and says nothing (its hello may wait a minute): open, refused, or not answered within 10 s. */
function bareSocket(url: string, opened: WebSocket[]): Promise<"open" | "refused" | "hung"> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url);
    const timer = setTimeout(() => resolve("hung"), 10_000);
    socket.onopen = () => {
      clearTimeout(timer);
      opened.push(socket);
      resolve("open");
    };
    socket.onerror = () => {
      clearTimeout(timer);
      resolve("refused");
    };
  });
}

const answered = (url: string) => fetch(url, { signal: AbortSignal.timeout(5_000) });

describe("a broker short of file descriptors", () => {
  test("refuses new sockets and requests while short, serves its peers, /health and /metrics, and lets sockets in once descriptors are back", async () => {
    const backend = await freshBackend({ withSchema: true });
    cleanups.push(() => backend.dispose());
    const broker: BrokerProcess = await spawnBroker(
      { ...backend.env, ADMIN_TOKEN: TEST_ADMIN_TOKEN, HELLO_TIMEOUT_MS: "60000" },
      { fileLimit: FILE_LIMIT },
    );
    cleanups.push(() => broker.stop());
    const admin = new AdminClient(broker.url, TEST_ADMIN_TOKEN);
    const { mesh, members } = await setupMesh(admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const from = await TestPeer.connect(broker.wsUrl, { identity: alice.identity, meshId: mesh.id });
    const to = await TestPeer.connect(broker.wsUrl, { identity: bob.identity, meshId: mesh.id, autoAck: true });
    cleanups.push(() => Promise.all([from.close(), to.close()]));

    const flood: WebSocket[] = [];
    cleanups.push(async () => flood.forEach((s) => s.close()));
    const outcomes = await Promise.all(Array.from({ length: FLOOD }, () => bareSocket(broker.wsUrl, flood)));
    // Every one answered, some refused; those let in leave the reserve (64 of 256) free.
    expect(outcomes.filter((o) => o === "hung")).toEqual([]);
    expect(outcomes.filter((o) => o === "refused").length).toBeGreaterThan(0);
    expect(flood.length).toBeLessThanOrEqual(FILE_LIMIT - 64);
    await broker.waitForLog("descriptors short");

    expect((await answered(`${broker.url}/health`)).status).toBe(200);
    expect((await answered(`${broker.url}/metrics`)).status).toBe(200);
    const refused = await answered(`${broker.url}/v1/meshes`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(await refused.json()).toEqual({ error: { code: "unavailable", message: "the broker is short of file descriptors; try again shortly" } });
    const ack = await from.send(bob.pubkey);
    const [push] = await to.waitForPushes(1);
    expect(push?.messageId).toBe(ack.messageId);

    for (const socket of flood.splice(0)) socket.close();
    const again = await waitUntil(
      () => TestPeer.connect(broker.wsUrl, { identity: bob.identity, meshId: mesh.id, sessionId: "after" }).catch(() => undefined),
      20_000,
      "a socket let in once the flood is gone",
    );
    cleanups.push(() => again.close());
    await broker.waitForLog("descriptors available");
    const ready = await answered(`${broker.url}/health/ready`);
    expect({ status: ready.status, body: await ready.json() }).toMatchObject({ status: 200, body: { status: "ready" } });
  });
});
