// A revocation committed elsewhere (another instance, whose notification has
// not arrived yet) must not let the revoked member's sends through: the
// statement that writes a send refuses a revoked sender. And a send in flight
// to a member as it is revoked leaves it nothing owed. Needs a Postgres
// server: the revocation is written by a second connection while the broker
// runs, which the embedded database (one process) does not allow.
import { describe, expect, test } from "bun:test";
import {
  backendKind,
  holdOnInsert,
  setupMesh,
  someoneHeld,
  TestPeer,
  useTestBroker,
  waitUntil,
  type SetupMember,
} from "@switchboard/testkit";
import { queryPostgres } from "./support/messaging.ts";

describe.skipIf(backendKind !== "postgres")("a sender revoked by another instance", () => {
  // The catch-up that would close its socket is far away: only the send statement stands in the way.
  const broker = useTestBroker({ CATCH_UP_INTERVAL_MS: "600000" });

  test("its sends after the revocation's commit are refused as forbidden and nothing is stored", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [sender, recipient] = members as [SetupMember, SetupMember];
    const peer = await TestPeer.connect(broker.wsUrl, { identity: sender.identity, meshId: mesh.id });
    expect((await peer.send(recipient.pubkey, { id: "before" })).type).toBe("ack");

    // What another instance's DELETE …/members/:member commits, without its notification.
    await queryPostgres(broker.backend, (sql) => sql`UPDATE members SET revoked_at = now() WHERE id = ${sender.id}`);

    const after = await Promise.all([1, 2, 3].map((i) => peer.send(recipient.pubkey, { id: `after-${i}` })));
    expect(after.map((f) => [f.type, f.code, f.id])).toEqual([
      ["error", "forbidden", "after-1"],
      ["error", "forbidden", "after-2"],
      ["error", "forbidden", "after-3"],
    ]);
    const stored = await queryPostgres(broker.backend, (sql) =>
      sql<Array<{ clientId: string }>>`SELECT client_id AS "clientId" FROM messages WHERE sender_member_id = ${sender.id}`,
    );
    expect(stored?.map((r) => r.clientId)).toEqual(["before"]);
    await peer.close();
  });
});

describe.skipIf(backendKind !== "postgres")("a recipient revoked while a send to it is in flight", () => {
  const broker = useTestBroker({ HOUSEKEEPING_INTERVAL_MS: "200" });

  test("the delivery that send writes after the revocation dropped the others is dropped too", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [sender, recipient] = members as [SetupMember, SetupMember];
    const peer = await TestPeer.connect(broker.wsUrl, { identity: sender.identity, meshId: mesh.id });
    const url = broker.backend.databaseUrl!;
    // The send statement has routed to the recipient and is held before it
    // writes the delivery, until the revocation is done.
    const hold = await holdOnInsert(url, { messageCiphertext: "in-flight" });
    let sending: ReturnType<typeof peer.send> | undefined;
    try {
      sending = peer.send(recipient.pubkey, { ciphertext: "in-flight" });
      await waitUntil(() => someoneHeld(url), 10_000, "the send statement in flight");
      await broker.admin.revokeMember(mesh.id, recipient.id);
    } finally {
      await hold.release();
    }
    expect((await sending).type).toBe("ack");
    const owed = () =>
      queryPostgres(broker.backend, (sql) =>
        sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM deliveries WHERE recipient_member_id = ${recipient.id} AND state IN ('queued', 'leased')`,
      );
    await waitUntil(async () => (await owed())?.[0]?.n === 0 || undefined, 10_000, "the revoked recipient's delivery dropped");
    await peer.close();
  });
});
