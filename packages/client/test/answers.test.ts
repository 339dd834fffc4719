// Who answers a request, and which key opens what. A message's replyTo is the
// sender's to choose (and, in the clear, so is who it says sent it): a
// direct request takes a reply from its target alone, one that went sealed a
// sealed reply alone; what else names it is an ordinary message.
import { describe, expect, test } from "bun:test";
import { generateKeypair } from "@switchboard/protocol";
import { setupMesh, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import { associatedData, directKey, seal } from "../src/envelope.ts";
import { KeyRing } from "../src/keys.ts";
import { SwitchboardError, type Message } from "../src/index.ts";
import { collect, recordingWebSocket, testClients, type RawFrame } from "./support.ts";

const broker = useTestBroker();
const { connect } = testClients(() => broker.wsUrl);

/** The messageId of the request `asker` sends next, from the frames it received (its send's ack). */
async function requestIdIn(frames: RawFrame[]): Promise<string> {
  const ack = await waitUntil(() => frames.find((f) => f.type === "ack" && typeof f.messageId === "string"), 10_000, "the request's ack");
  return String(ack.messageId);
}

describe("who answers a request", () => {
  test("a message from another member naming a direct request is no reply to it: the target's is", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob", "carol"] });
    const [alice, bob, carol] = members as [SetupMember, SetupMember, SetupMember];
    const frames: RawFrame[] = [];
    const a = await connect(mesh.id, alice, { WebSocket: recordingWebSocket(frames) });
    const got = collect(a);
    const b = await connect(mesh.id, bob);
    const c = await connect(mesh.id, carol);
    const asked = new Promise<Message>((resolve) => b.on("message", resolve));

    const answer = a.request(bob.pubkey, { q: "deploy?" }, { timeoutMs: 20_000 });
    const requestId = await requestIdIn(frames);
    // Sealed, by a member who holds a key with alice, yet not the one asked.
    await c.send(alice.pubkey, { a: "yes, from carol" }, { replyTo: requestId });
    await waitUntil(() => got.messages.length >= 1, 10_000, "carol's message");
    expect(got.messages[0]).toMatchObject({ senderPubkey: carol.pubkey, replyTo: requestId, encrypted: true });

    await b.reply(await asked, { a: "yes, from bob" });
    expect(await answer).toMatchObject({ senderPubkey: bob.pubkey, replyTo: requestId, payload: { a: "yes, from bob" } });
  });

  test("a reply in the clear does not answer a request that went sealed, even from its target", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const frames: RawFrame[] = [];
    const a = await connect(mesh.id, alice, { WebSocket: recordingWebSocket(frames) });
    const got = collect(a);
    const b = await connect(mesh.id, bob);
    const asked = new Promise<Message>((resolve) => b.on("message", resolve));

    const answer = a.request(bob.pubkey, { q: "the password?" }, { timeoutMs: 20_000 });
    const requestId = await requestIdIn(frames);
    // Anyone on the way could have written this one.
    await b.send(alice.pubkey, { a: "in the clear" }, { replyTo: requestId, encrypt: false });
    await waitUntil(() => got.messages.length >= 1, 10_000, "the plain message");
    expect(got.messages[0]).toMatchObject({ senderPubkey: bob.pubkey, replyTo: requestId, encrypted: false });

    await b.reply(await asked, { a: "sealed" });
    expect(await answer).toMatchObject({ encrypted: true, payload: { a: "sealed" } });
  });

  test("a request that went in the clear (a tag without a key) takes a reply from any member, in the clear", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"], tags: { bob: ["oncall"] } });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const a = await connect(mesh.id, alice);
    const b = await connect(mesh.id, bob);
    b.on("message", (m) => void b.reply(m, { a: "here" }));
    expect(await a.request("tag:oncall", { q: "anyone?" }, { timeoutMs: 20_000 })).toMatchObject({
      senderPubkey: bob.pubkey,
      encrypted: false,
      payload: { a: "here" },
    });
  });
});

describe("which key opens what", () => {
  test("a channel message sealed with the mesh-wide key opens for a member who also holds the channel's", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const meshWide = "3c".repeat(32);
    const a = await connect(mesh.id, alice, { channelKeys: { "*": meshWide, "#ops": "5a".repeat(32) } });
    const b = await connect(mesh.id, bob, { channelKeys: { "*": meshWide } });
    await a.join("#ops");
    await b.join("#ops");
    const got = collect(a);
    const unreadable: unknown[] = [];
    a.on("unreadable", (m) => unreadable.push(m));
    await b.send("#ops", { text: "sealed with *" });
    await waitUntil(() => got.messages.length + unreadable.length >= 1, 10_000, "bob's channel message");
    expect(unreadable).toEqual([]);
    expect(got.messages[0]).toMatchObject({ senderPubkey: bob.pubkey, targetSpec: "#ops", encrypted: true, payload: { text: "sealed with *" } });
  });

  test("a direct message to another key does not open, though sent by this one", async () => {
    const [alice, bob] = await Promise.all([generateKeypair(), generateKeypair()]);
    const toBob = seal({ text: "for bob" }, directKey(alice.secretKey, alice.publicKey, bob.publicKey), associatedData(alice.publicKey, bob.publicKey));
    const ring = new KeyRing(alice.secretKey, alice.publicKey);
    expect(() => ring.openFrom(alice.publicKey, bob.publicKey, toBob)).toThrow(SwitchboardError);
    // Bob opens it, and alice one she sent herself.
    expect(new KeyRing(bob.secretKey, bob.publicKey).openFrom(alice.publicKey, bob.publicKey, toBob)).toEqual({ text: "for bob" });
    const toSelf = seal({ text: "a note" }, directKey(alice.secretKey, alice.publicKey, alice.publicKey), associatedData(alice.publicKey, alice.publicKey));
    expect(ring.openFrom(alice.publicKey, alice.publicKey, toSelf)).toEqual({ text: "a note" });
  });
});
