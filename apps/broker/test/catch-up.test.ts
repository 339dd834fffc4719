// Closes that another instance announces by wake-up must still happen when
// that wake-up is missed (the listener was reconnecting): the catch-up sweep
// finds them in the rows. Rows are changed here behind the broker's back,
// without a NOTIFY, as such an instance would have left them. The sweep also
// ends rows of its own instance that no socket holds.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { backendKind, setupMesh, TestPeer, useTestBroker, waitUntil, type CloseInfo } from "@switchboard/testkit";
import postgres from "postgres";
import { ADMISSION_TIMEOUT_FACTOR } from "../src/services/timing.ts";

const CATCH_UP_INTERVAL_MS = 200;
// Long enough for every hello here to be admitted on a busy machine (twice this).
const HELLO_TIMEOUT_MS = 1000;
// Rows older than this that no socket holds are ended by the catch-up: a hello and its admission's time, in whole seconds.
const SOCKETLESS_AFTER_MS = Math.ceil(HELLO_TIMEOUT_MS / 1000) * (1 + ADMISSION_TIMEOUT_FACTOR) * 1000;

/** The close of the socket, or null if it is still open after ms. */
async function closedWithin(peer: TestPeer, ms = 10_000): Promise<CloseInfo | null> {
  let timer: Timer | undefined;
  const closed = await Promise.race([peer.closed, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)))]);
  clearTimeout(timer);
  return closed;
}

// Embedded mode is one process: its closes never travel between instances.
describe.skipIf(backendKind !== "postgres")(`catch-up of missed closes (CATCH_UP_INTERVAL_MS=${CATCH_UP_INTERVAL_MS})`, () => {
  const broker = useTestBroker({ CATCH_UP_INTERVAL_MS: String(CATCH_UP_INTERVAL_MS), HELLO_TIMEOUT_MS: String(HELLO_TIMEOUT_MS) });
  let sql: postgres.Sql;

  beforeAll(() => {
    sql = postgres(broker.backend.databaseUrl!, { max: 1, onnotice: () => {} });
  });
  afterAll(() => sql?.end());

  test("a session taken over elsewhere closes with 4000 replaced", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const peer = await TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id });
    const presenceId = String(peer.helloAck!.presenceId);
    await sql.begin(async (tx) => {
      await tx`UPDATE presences SET disconnected_at = now() WHERE id = ${presenceId}`;
      await tx`
        INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
        SELECT mesh_id, member_id, 'another-instance', session_id, display_name FROM presences WHERE id = ${presenceId}`;
    });
    expect(await closedWithin(peer)).toEqual({ code: 4000, reason: "replaced" });
  });

  test("a member revoked elsewhere is closed with 4002 revoked", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const revoked = await TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id });
    const bystander = await TestPeer.connect(broker.wsUrl, { identity: members[1]!.identity, meshId: mesh.id });
    await sql`UPDATE members SET revoked_at = now() WHERE id = ${members[0]!.id}`;
    expect(await closedWithin(revoked)).toEqual({ code: 4002, reason: "revoked" });
    expect(bystander.isOpen).toBe(true);
    await bystander.close();
  });

  test("a presence ended without a successor is left to the lease check, not closed as replaced", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 3 });
    const peer = await TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id });
    const others = members.slice(1);
    const markers = await Promise.all(others.map((m) => TestPeer.connect(broker.wsUrl, { identity: m.identity, meshId: mesh.id })));
    await sql`UPDATE presences SET disconnected_at = now() WHERE id = ${String(peer.helloAck!.presenceId)}`;
    // Two catch-up rounds, each proven by a revocation it must close: a round looks at all of this
    // instance's sockets at once, so the one that closes a marker has looked at the peer too, and a
    // close of the peer sent by the first round is in before the second round's.
    for (const [i, marker] of markers.entries()) {
      await sql`UPDATE members SET revoked_at = now() WHERE id = ${others[i]!.id}`;
      expect(await closedWithin(marker)).toEqual({ code: 4002, reason: "revoked" });
    }
    expect(peer.isOpen).toBe(true);
    await peer.close();
  });

  test("a live row of this instance that no socket holds is ended; the sockets it holds are not", async () => {
    // As a hello batch whose commit's answer was lost leaves it: committed, its socket told it failed.
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [ghostMember, sender] = members as [(typeof members)[0], (typeof members)[0]];
    const instanceId = ((await (await fetch(`${broker.url}/health`)).json()) as { instanceId: string }).instanceId;
    const [ghost] = await sql<{ id: string }[]>`
      INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name, connected_at)
      VALUES (${mesh.id}, ${ghostMember!.id}, ${instanceId}, 'no-socket', 'ghost', now() - interval '1 hour')
      RETURNING id`;
    const ended = async () => (await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM presences WHERE id = ${ghost!.id} AND disconnected_at IS NOT NULL`)[0]!.n === 1;
    await waitUntil(ended, 10_000, "the row no socket holds ended");
    expect(await ended()).toBe(true);
    // A real socket, old enough to be looked at, is not taken for one: its row stays live.
    const real = await TestPeer.connect(broker.wsUrl, { identity: sender!.identity, meshId: mesh.id });
    await Bun.sleep(SOCKETLESS_AFTER_MS + 500);
    const [row] = await sql<{ id: string }[]>`
      INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name, connected_at)
      VALUES (${mesh.id}, ${ghostMember!.id}, ${instanceId}, 'no-socket-2', 'ghost', now() - interval '1 hour')
      RETURNING id`;
    const liveRow = async (id: string) => (await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM presences WHERE id = ${id} AND disconnected_at IS NULL`)[0]!.n === 1;
    // The round that ends the second ghost looks at the real row too, older than the threshold by then.
    await waitUntil(async () => !(await liveRow(row!.id)), 10_000, "the second row no socket holds ended");
    expect(await liveRow(row!.id)).toBe(false);
    expect(await liveRow(String(real.helloAck!.presenceId))).toBe(true);
    expect(real.isOpen).toBe(true);
    await real.close();
  });
});
