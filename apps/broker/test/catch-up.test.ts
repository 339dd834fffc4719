// Closes that another instance announces by wake-up must still happen when
// that wake-up is missed (the listener was reconnecting): the catch-up sweep
// finds them in the rows. Rows are changed here behind the broker's back,
// without a NOTIFY, as such an instance would have left them.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  AdminClient,
  TestPeer,
  backendKind,
  freshBackend,
  setupMesh,
  spawnBroker,
  type BrokerProcess,
  type TestBackend,
} from "@switchboard/testkit";
import postgres from "postgres";

const ADMIN_TOKEN = "admin-secret-0123456789abcdef";

// Embedded mode is one process: its closes never travel between instances.
describe.skipIf(backendKind !== "postgres")("catch-up of missed closes", () => {
  let backend: TestBackend;
  let broker: BrokerProcess;
  let admin: AdminClient;
  let sql: postgres.Sql;

  beforeAll(async () => {
    backend = await freshBackend();
    broker = await spawnBroker({ ...backend.env, ADMIN_TOKEN });
    admin = new AdminClient(broker.url, ADMIN_TOKEN);
    sql = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await sql?.end();
    await broker?.stop();
    await backend?.dispose();
  });

  test("a session taken over elsewhere closes with 4000 replaced", async () => {
    const { mesh, members } = await setupMesh(admin, { members: 1 });
    const peer = await TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id });
    const presenceId = String(peer.helloAck!.presenceId);
    await sql.begin(async (tx) => {
      await tx`UPDATE presences SET disconnected_at = now() WHERE id = ${presenceId}`;
      await tx`
        INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
        SELECT mesh_id, member_id, 'another-instance', session_id, display_name FROM presences WHERE id = ${presenceId}`;
    });
    const closed = await Promise.race([peer.closed, Bun.sleep(10_000).then(() => null)]);
    expect(closed).toEqual({ code: 4000, reason: "replaced" });
  });

  test("a member revoked elsewhere is closed with 4002 revoked", async () => {
    const { mesh, members } = await setupMesh(admin, { members: 2 });
    const revoked = await TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id });
    const bystander = await TestPeer.connect(broker.wsUrl, { identity: members[1]!.identity, meshId: mesh.id });
    await sql`UPDATE members SET revoked_at = now() WHERE id = ${members[0]!.id}`;
    const closed = await Promise.race([revoked.closed, Bun.sleep(10_000).then(() => null)]);
    expect(closed).toEqual({ code: 4002, reason: "revoked" });
    expect(bystander.isOpen).toBe(true);
    await bystander.close();
  });

  test("a presence ended without a successor is left to the lease check, not closed as replaced", async () => {
    const { mesh, members } = await setupMesh(admin, { members: 1 });
    const peer = await TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id });
    await sql`UPDATE presences SET disconnected_at = now() WHERE id = ${String(peer.helloAck!.presenceId)}`;
    // Two catch-up rounds.
    await Bun.sleep(5_000);
    expect(peer.isOpen).toBe(true);
    await peer.close();
  });
});
