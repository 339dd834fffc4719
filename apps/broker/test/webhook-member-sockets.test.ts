// PROTOCOL.md §8: a webhook member counts as idle and may still open sockets
// (to send, to list peers); its deliveries go only to the webhook, whatever
// status its socket sets. Against a real broker and a real HTTP receiver.
import { afterEach, describe, expect, test } from "bun:test";
import type { PushBatch } from "@switchboard/protocol";
import { PeerPool, setupMesh, useTestBroker, WebhookReceiver, type SetupMember } from "@switchboard/testkit";
import { str } from "./support/messaging.ts";

const SECRET = "webhook-secret-0123456789";

const pool = new PeerPool();
const receivers: WebhookReceiver[] = [];
afterEach(async () => {
  await pool.closeAll();
  await Promise.all(receivers.splice(0).map((r) => r.stop()));
});

const idsAt = (r: WebhookReceiver): string[] => r.requests.flatMap((req) => (JSON.parse(req.body) as PushBatch).messages.map((m) => m.messageId));

describe("a webhook member with a socket", () => {
  const broker = useTestBroker({ WEBHOOK_ALLOW_PRIVATE: "true" });

  async function webhookMesh() {
    const r = await WebhookReceiver.start();
    receivers.push(r);
    const setup = await setupMesh(broker.admin, { members: 2 });
    const [sender, hook] = setup.members as [SetupMember, SetupMember];
    await broker.admin.setWebhook(setup.mesh.id, hook.id, `${r.url}/events`, SECRET);
    const senderPeer = await pool.connect(broker.wsUrl, sender, setup.mesh.id);
    const hookPeer = await pool.connect(broker.wsUrl, hook, setup.mesh.id);
    return { ...setup, r, sender, hook, senderPeer, hookPeer };
  }

  test("sends and lists peers from its socket", async () => {
    const { sender, hook, senderPeer, hookPeer } = await webhookMesh();
    const ack = await hookPeer.send(sender.pubkey);
    expect(ack).toMatchObject({ type: "ack", recipients: 1 });
    const [push] = await senderPeer.waitForPushes(1);
    expect(push).toMatchObject({ messageId: str(ack.messageId), senderPubkey: hook.pubkey });
    const peers = await hookPeer.request({ type: "list_peers" });
    expect(peers.type).toBe("peers");
  });

  test("counts as idle: with its socket in dnd, next and low messages still go to the webhook", async () => {
    const { r, hook, senderPeer, hookPeer } = await webhookMesh();
    expect(await hookPeer.request({ type: "set_status", status: "dnd" })).toMatchObject({ type: "status", status: "dnd" });
    const ids = [];
    for (const priority of ["low", "next", "now"] as const) ids.push(str((await senderPeer.send(hook.pubkey, { priority })).messageId));
    await r.waitFor((reqs) => reqs.length > 0 && idsAt(r).length >= 3, 15_000, "all three at the webhook");
    expect(idsAt(r)).toEqual(ids);
    expect(hookPeer.pushes()).toEqual([]);
  });

  test("a webhook of one mesh's member leaves the ephemeral sends of another mesh alone; its own member gets none on its socket", async () => {
    const { sender: hookMeshSender, hook, senderPeer: hookMeshPeer, hookPeer } = await webhookMesh();
    const other = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = other.members as [SetupMember, SetupMember];
    const aPeer = await pool.connect(broker.wsUrl, a, other.mesh.id);
    const bPeer = await pool.connect(broker.wsUrl, b, other.mesh.id);
    const typing = await aPeer.send(b.pubkey, { ephemeral: true, ciphertext: "typing" });
    expect(typing).toMatchObject({ type: "ack", queued: false, recipients: 1 });
    await bPeer.nextFrame((f) => f.type === "push" && f.messageId === typing.messageId);
    // In the webhook's own mesh: its member is no socket recipient, the sender still is one.
    expect(await hookMeshPeer.send(hook.pubkey, { ephemeral: true, ciphertext: "typing" })).toMatchObject({ recipients: 0 });
    const back = await hookPeer.send(hookMeshSender.pubkey, { ephemeral: true, ciphertext: "typing" });
    expect(back).toMatchObject({ recipients: 1 });
    await hookMeshPeer.nextFrame((f) => f.type === "push" && f.messageId === back.messageId);
    expect(hookPeer.pushes()).toEqual([]);
  });
});
