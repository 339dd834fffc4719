// An ephemeral send reaches recipients whose sockets are on another instance
// (PROTOCOL.md §1: "connected and able to receive now", whichever instance
// holds them): the sending instance writes it, for that instance, into the
// unlogged relay table and names the row in a NOTIFY; that instance takes the
// row (deleting it) and pushes it. Rows nobody takes are pruned within
// seconds. On two instances sharing a Postgres server.
import { describe, expect, test } from "bun:test";
import {
  backendKind,
  pushesBeforeMarker,
  setupMesh,
  TestPeer,
  waitUntil,
  type SetupMember,
  type TestBroker,
} from "@switchboard/testkit";
import { str } from "./support/messaging.ts";
import { usePairWithDatabase } from "./support/pair-database.ts";
import { SHORT_INSTANCE_LEASE, whileOneIsStopped } from "./support/stopped-instance.ts";

describe.skipIf(backendKind !== "postgres")("ephemeral sends to recipients on another instance (needs DATABASE_URL)", () => {
  const pair = usePairWithDatabase({ HOUSEKEEPING_INTERVAL_MS: "200" });
  const { peers } = pair;

  async function connect(broker: TestBroker, member: SetupMember, meshId: string): Promise<TestPeer> {
    const peer = await TestPeer.connect(broker.wsUrl, { identity: member.identity, meshId });
    peers.push(peer);
    return peer;
  }

  async function relayRows(): Promise<number> {
    const [row] = await pair.sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM ephemeral_relay`;
    return row?.n ?? -1;
  }

  test("to a pubkey: the peer on the other instance gets the push, marked ephemeral, and no relay row is left", async () => {
    const { mesh, members } = await setupMesh(pair.a.admin, { members: ["sender", "recipient"] });
    const [senderM, recipientM] = members as [SetupMember, SetupMember];
    const sender = await connect(pair.a, senderM, mesh.id);
    const recipient = await connect(pair.b, recipientM, mesh.id);

    const ack = await sender.send(recipientM.pubkey, { ephemeral: true, ciphertext: "typing", nonce: "n-1" });
    expect(ack).toMatchObject({ type: "ack", queued: false, recipients: 1 });
    const push = await recipient.nextFrame((f) => f.type === "push" && f.messageId === ack.messageId);
    expect(push).toMatchObject({
      messageId: ack.messageId,
      meshId: mesh.id,
      senderPubkey: senderM.pubkey,
      targetSpec: recipientM.pubkey,
      priority: "next",
      nonce: "n-1",
      ciphertext: "typing",
      replyTo: null,
      attempt: 1,
      ephemeral: true,
    });
    expect(Math.abs(Date.parse(str(push.createdAt)) - Date.now())).toBeLessThan(60_000);
    // Taken by the instance that pushed it: the row went before the push did.
    expect(await relayRows()).toBe(0);
    // Nothing was stored, and nothing comes again.
    const [stored] = await pair.sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM messages WHERE id = ${str(ack.messageId)}`;
    expect(stored?.n).toBe(0);
    expect(await pushesBeforeMarker(sender, recipient)).toEqual([push]);
  });

  test("to a #channel: members on both instances get one push each, a busy one none", async () => {
    const { mesh, members } = await setupMesh(pair.a.admin, { members: ["sender", "here", "there", "both", "busy"] });
    const [senderM, hereM, thereM, bothM, busyM] = members as [SetupMember, SetupMember, SetupMember, SetupMember, SetupMember];
    const sender = await connect(pair.a, senderM, mesh.id);
    const here = await connect(pair.a, hereM, mesh.id);
    const there = await connect(pair.b, thereM, mesh.id);
    const bothOnA = await connect(pair.a, bothM, mesh.id);
    const bothOnB = await connect(pair.b, bothM, mesh.id);
    const busy = await connect(pair.b, busyM, mesh.id);
    for (const p of [sender, here, there, bothOnA, busy]) {
      expect(await p.request({ type: "join", channel: "#room" })).toMatchObject({ type: "ack" });
    }
    expect(await busy.request({ type: "set_status", status: "working" })).toMatchObject({ status: "working" });

    const ack = await sender.send("#room", { ephemeral: true, ciphertext: "typing" });
    // here and both on this instance, there on the other; busy takes no `next` now.
    expect(ack).toMatchObject({ type: "ack", queued: false, recipients: 3 });
    const isIt = (f: { type?: unknown; messageId?: unknown }) => f.type === "push" && f.messageId === ack.messageId;
    for (const p of [here, there]) {
      expect(await p.nextFrame(isIt)).toMatchObject({ targetSpec: "#room", ciphertext: "typing", ephemeral: true });
    }
    await waitUntil(() => [bothOnA, bothOnB].some((p) => p.pushes().some(isIt)), 10_000, "the member on both instances gets it");
    expect(await relayRows()).toBe(0);
    // One push per member: markers through the other instance's sockets show nothing more came there.
    expect((await pushesBeforeMarker(sender, there)).filter(isIt)).toHaveLength(1);
    expect((await pushesBeforeMarker(sender, busy)).filter(isIt)).toEqual([]);
    expect([...bothOnA.pushes(), ...bothOnB.pushes()].filter(isIt)).toHaveLength(1);
  });

  test("the relay table is unlogged, and a row no instance takes is pruned within seconds", async () => {
    const [table] = await pair.sql<Array<{ persistence: string }>>`
      SELECT relpersistence AS persistence FROM pg_class WHERE relname = 'ephemeral_relay' AND relkind = 'r'`;
    expect(table?.persistence).toBe("u");
    const messageId = crypto.randomUUID();
    // Addressed to an instance that is gone: its notice found no listener.
    await pair.sql`
      INSERT INTO ephemeral_relay (message_id, instance_id, mesh_id, sender_pubkey, target_spec, priority, nonce, ciphertext,
                                   sent_at, created_at, recipients)
      VALUES (${messageId}, 'gone', ${crypto.randomUUID()}, ${"a".repeat(64)}, ${"b".repeat(64)}, 'next', 'n', 'c',
              now() - interval '1 minute', now() - interval '1 minute', '[]')`;
    await waitUntil(
      async () => (await pair.sql`SELECT 1 FROM ephemeral_relay WHERE message_id = ${messageId}`).length === 0,
      20_000,
      "the untaken row is pruned",
    );
  });
});

describe.skipIf(backendKind !== "postgres")("an ephemeral send to a recipient on a live instance and on one that stopped (needs DATABASE_URL)", () => {
  const pair = usePairWithDatabase(SHORT_INSTANCE_LEASE);

  test("goes to the presence on the instance that still renews its lease, not to the one on the stopped instance", async () => {
    await whileOneIsStopped(pair, async (sender, recipient, onLive) => {
      const ack = await sender.send(recipient.pubkey, { ephemeral: true, ciphertext: "typing" });
      expect(ack).toMatchObject({ type: "ack", queued: false, recipients: 1 });
      await onLive.nextFrame((f) => f.type === "push" && f.messageId === ack.messageId, 5_000);
    });
  });
});
