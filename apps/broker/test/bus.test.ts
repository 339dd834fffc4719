// Between instances, news of work travels by NOTIFY alone: with the catch-up
// sweep far away, a message sent on one instance still reaches a recipient
// on another at once, whether the send named it directly or by broadcast to
// more members than one notification lists by id.
import { afterEach, describe, expect, test } from "bun:test";
import { backendKind, PeerPool, setupMesh, useTestBrokerPair, type SetupMember } from "@switchboard/testkit";

const pool = new PeerPool();
afterEach(() => pool.closeAll());

describe.skipIf(backendKind !== "postgres")("notifications between instances (CATCH_UP_INTERVAL_MS=600000)", () => {
  const pair = useTestBrokerPair({ CATCH_UP_INTERVAL_MS: "600000", MAX_CONNECTIONS_PER_MESH: "1000" });

  test("a direct message sent on A is pushed to its recipient on B", async () => {
    const { a, b } = pair;
    const { mesh, members } = await setupMesh(a.admin, { members: 2 });
    const [sender, recipient] = members as [SetupMember, SetupMember];
    const on = await pool.connect(b.wsUrl, recipient, mesh.id);
    const from = await pool.connect(a.wsUrl, sender, mesh.id);
    const ack = await from.send(recipient.pubkey);
    const [push] = await on.waitForPushes(1, 10_000);
    expect(push?.messageId).toBe(ack.messageId);
  });

  test("a broadcast to 160 members on B (more than one notification lists by id) reaches every one", async () => {
    const { a, b } = pair;
    const { mesh, members } = await setupMesh(a.admin, { members: 161 });
    const [sender, ...rest] = members as [SetupMember, ...SetupMember[]];
    const peers = await Promise.all(rest.map((m) => pool.connect(b.wsUrl, m, mesh.id)));
    const from = await pool.connect(a.wsUrl, sender, mesh.id);
    const ack = await from.send("*");
    expect(ack.recipients).toBe(160);
    const pushes = await Promise.all(peers.map((p) => p.waitForPushes(1, 20_000)));
    expect(pushes.map((p) => p[0]?.messageId)).toEqual(peers.map(() => ack.messageId));
  });
});
