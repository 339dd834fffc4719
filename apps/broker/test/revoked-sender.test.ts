// A revocation committed elsewhere (another instance, whose notification has
// not arrived yet) must not let the revoked member's sends through: the
// statement that writes a send refuses a revoked sender. Needs a Postgres
// server: the revocation is written by a second connection while the broker
// runs, which the embedded database (one process) does not allow.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  AdminClient,
  backendKind,
  freshBackend,
  setupMesh,
  spawnBroker,
  TestPeer,
  type BrokerProcess,
  type SetupMember,
  type TestBackend,
} from "@switchboard/testkit";
import { queryPostgres } from "./support/messaging.ts";

const ADMIN_TOKEN = "revoked-sender-admin-token-0123";

describe.skipIf(backendKind !== "postgres")("a sender revoked by another instance", () => {
  let backend: TestBackend;
  let broker: BrokerProcess;
  let admin: AdminClient;
  beforeAll(async () => {
    backend = await freshBackend();
    // The catch-up that would close its socket is far away: only the send statement stands in the way.
    broker = await spawnBroker({ ...backend.env, ADMIN_TOKEN, CATCH_UP_INTERVAL_MS: "600000" });
    admin = new AdminClient(broker.url, ADMIN_TOKEN);
  });
  afterAll(async () => {
    await broker?.stop();
    await backend?.dispose();
  });

  test("its sends after the revocation's commit are refused as forbidden and nothing is stored", async () => {
    const { mesh, members } = await setupMesh(admin, { members: 2 });
    const [sender, recipient] = members as [SetupMember, SetupMember];
    const peer = await TestPeer.connect(broker.wsUrl, { identity: sender.identity, meshId: mesh.id });
    expect((await peer.send(recipient.pubkey, { id: "before" })).type).toBe("ack");

    // What another instance's DELETE …/members/:member commits, without its notification.
    await queryPostgres(backend, (sql) => sql`UPDATE members SET revoked_at = now() WHERE id = ${sender.id}`);

    const after = await Promise.all([1, 2, 3].map((i) => peer.send(recipient.pubkey, { id: `after-${i}` })));
    expect(after.map((f) => [f.type, f.code, f.id])).toEqual([
      ["error", "forbidden", "after-1"],
      ["error", "forbidden", "after-2"],
      ["error", "forbidden", "after-3"],
    ]);
    const stored = await queryPostgres(backend, (sql) =>
      sql<Array<{ clientId: string }>>`SELECT client_id AS "clientId" FROM messages WHERE sender_member_id = ${sender.id}`,
    );
    expect(stored?.map((r) => r.clientId)).toEqual(["before"]);
    await peer.close();
  });
});
