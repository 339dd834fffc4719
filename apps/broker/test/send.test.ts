// PROTOCOL.md §1 "send" and "push" against a real broker: recipients of each
// target kind, the ack, idempotency, ephemeral and expiring messages, and
// every send error. DESIGN.md invariants 2 and 3 (ack after commit; a retried
// id never makes a second message).
import { describe, expect, test } from "bun:test";
import {
  backendKind,
  newIdentity,
  pushesBeforeMarker,
  setupMesh,
  TestPeer,
  useTestBroker,
  type Frame,
  type SetupMember,
  type SetupMeshResult,
} from "@switchboard/testkit";
import { randomBytes } from "node:crypto";
import { deltas, ISO, peersOfEachTest, queryPostgres, scrape, sendFrame, sendMany, str, UUID } from "./support/messaging.ts";

const MAX_MESSAGE_BYTES = 4096;

const { connect } = peersOfEachTest();

/** A ping round trip: the socket is still open and the broker still answers it. */
async function expectAlive(peer: TestPeer): Promise<void> {
  expect(peer.isOpen).toBe(true);
  expect((await peer.request({ type: "ping" })).type).toBe("pong");
}

const hex = (bytes: number) => randomBytes(bytes).toString("hex");

describe("send and push", () => {
  const broker = useTestBroker({ MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES) });

  const mesh = (members: number | string[], tags?: Record<string, string[]>): Promise<SetupMeshResult> =>
    setupMesh(broker.admin, { members, tags });

  /** Messages stored for this sender, on Postgres; null on the embedded backend. */
  const storedBy = async (senderId: string): Promise<number | null> => {
    const rows = await queryPostgres(broker.backend, (sql) => sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM messages WHERE sender_member_id = ${senderId}`);
    return rows === null ? null : rows[0]!.n;
  };

  test("a direct send is acked with the contract's fields and pushed with every field unchanged", async () => {
    const { mesh: m, members } = await mesh(2);
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    const recipient = await connect(broker, m.id, b);

    const first = await sender.send(b.pubkey, { id: "first" });
    expect(first.type).toBe("ack");
    await recipient.waitForPushes(1);

    // Bytes a careless broker would re-encode: escapes, non-ASCII, astral plane, padding, whitespace.
    const nonce = "n0nce/+==\u00e9\u{1F600}\"\\\t ";
    const ciphertext = `AAEC/+==\n\u0001\u00ff\u{10FFFF} ${"x".repeat(300)} \u2028"\\`;
    const reqId = "req-direct-1";
    const ack = await sender.request({
      type: "send",
      reqId,
      targetSpec: b.pubkey,
      nonce,
      ciphertext,
      id: "client-id-1",
      replyTo: str(first.messageId),
    });
    expect(ack).toMatchObject({ type: "ack", reqId, id: "client-id-1", queued: true, recipients: 1 });
    expect(str(ack.messageId)).toMatch(UUID);
    expect(ack.messageId).not.toBe(first.messageId);
    expect(ack.duplicate).toBeUndefined();

    // Ack means committed: the message and its delivery are in the database when the ack arrives.
    const rows = await queryPostgres(broker.backend, (sql) => sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM deliveries d JOIN messages m ON m.id = d.message_id
      WHERE m.id = ${str(ack.messageId)} AND d.recipient_member_id = ${b.id}`);
    if (rows !== null) expect(rows[0]!.n).toBe(1);

    const push = await recipient.nextFrame((f) => f.type === "push" && f.messageId === ack.messageId);
    expect(push).toMatchObject({
      type: "push",
      messageId: ack.messageId,
      meshId: m.id,
      senderPubkey: a.pubkey,
      targetSpec: b.pubkey,
      priority: "next",
      nonce,
      ciphertext,
      replyTo: first.messageId,
      attempt: 1,
    });
    expect(str(push.createdAt)).toMatch(ISO);
    // Only an ephemeral send's push is marked.
    expect(push).not.toHaveProperty("ephemeral");
    expect(Math.abs(Date.parse(str(push.createdAt)) - Date.now())).toBeLessThan(60_000);
    // A push without replyTo carries null, not a missing field.
    const plain = await sender.send(b.pubkey);
    const next = await recipient.nextFrame((f) => f.type === "push" && f.messageId === plain.messageId);
    expect(next.replyTo).toBeNull();
    expect(await pushesBeforeMarker(recipient, sender)).toEqual([]);
  });

  test("`*` reaches every other non-revoked member, offline ones on hello, never the sender", async () => {
    const { mesh: m, members } = await mesh(["sender", "online-1", "online-2", "offline", "revoked"]);
    const [a, on1, on2, off, revoked] = members as [SetupMember, SetupMember, SetupMember, SetupMember, SetupMember];
    await broker.admin.revokeMember(m.id, revoked.id);
    const sender = await connect(broker, m.id, a);
    const r1 = await connect(broker, m.id, on1);
    const r2 = await connect(broker, m.id, on2);

    const ack = await sender.send("*", { id: "bcast" });
    expect(ack).toMatchObject({ type: "ack", id: "bcast", queued: true, recipients: 3 });
    for (const r of [r1, r2]) {
      const [push] = await r.waitForPushes(1);
      expect(push).toMatchObject({ messageId: ack.messageId, targetSpec: "*", senderPubkey: a.pubkey, attempt: 1 });
    }

    const late = await connect(broker, m.id, off);
    const [push] = await late.waitForPushes(1);
    expect(push).toMatchObject({ messageId: ack.messageId, targetSpec: "*", senderPubkey: a.pubkey });

    expect(await pushesBeforeMarker(r1, sender)).toEqual([]);
    for (const r of [r1, r2, late]) expect(await pushesBeforeMarker(sender, r)).toHaveLength(1);
  });

  test("#channel reaches the members that joined it, offline ones on hello, and no one else", async () => {
    const { mesh: m, members } = await mesh(["sender", "joined", "joined-offline", "outsider"]);
    const [a, j1, j2, out] = members as [SetupMember, SetupMember, SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    const joined = await connect(broker, m.id, j1);
    expect(await joined.request({ type: "join", channel: "#ops" })).toMatchObject({ type: "ack" });
    // Membership belongs to the member, not the socket: it outlives this connection.
    const leaver = await connect(broker, m.id, j2);
    expect(await leaver.request({ type: "join", channel: "#ops" })).toMatchObject({ type: "ack" });
    await leaver.close();
    const outsider = await connect(broker, m.id, out);

    const ack = await sender.send("#ops");
    expect(ack).toMatchObject({ type: "ack", queued: true, recipients: 2 });
    const [push] = await joined.waitForPushes(1);
    expect(push).toMatchObject({ messageId: ack.messageId, targetSpec: "#ops" });
    const back = await connect(broker, m.id, j2);
    expect((await back.waitForPushes(1))[0]).toMatchObject({ messageId: ack.messageId, targetSpec: "#ops" });

    expect(await pushesBeforeMarker(sender, outsider)).toEqual([]);
    expect(await pushesBeforeMarker(joined, sender)).toEqual([]);
  });

  test("tag:name reaches the members carrying the tag given at enrolment", async () => {
    const { mesh: m, members } = await mesh(["sender", "rev-1", "rev-2", "other"], {
      "rev-1": ["reviewer"],
      "rev-2": ["infra", "reviewer"],
      other: ["reviewers", "infra"],
    });
    const [a, r1m, r2m, om] = members as [SetupMember, SetupMember, SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    const r1 = await connect(broker, m.id, r1m);
    const other = await connect(broker, m.id, om);

    const ack = await sender.send("tag:reviewer");
    expect(ack).toMatchObject({ type: "ack", queued: true, recipients: 2 });
    expect((await r1.waitForPushes(1))[0]).toMatchObject({ messageId: ack.messageId, targetSpec: "tag:reviewer" });
    const r2 = await connect(broker, m.id, r2m);
    expect((await r2.waitForPushes(1))[0]).toMatchObject({ messageId: ack.messageId });

    const infra = await sender.send("tag:infra");
    expect(infra).toMatchObject({ type: "ack", recipients: 2 });
    await other.nextFrame((f) => f.type === "push" && f.messageId === infra.messageId);
    expect((await pushesBeforeMarker(sender, other)).map((p) => p.messageId)).toEqual([infra.messageId]);
    expect(await pushesBeforeMarker(sender, r1)).toHaveLength(1);
  });

  test("a channel whose only member was revoked is unknown, as that member's pubkey is", async () => {
    const { mesh: m, members } = await mesh(2);
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    const joiner = await connect(broker, m.id, b);
    expect(await joiner.request({ type: "join", channel: "#left-behind" })).toMatchObject({ type: "ack", joined: true });
    expect(await sender.send("#left-behind")).toMatchObject({ type: "ack", recipients: 1 });
    await broker.admin.revokeMember(m.id, b.id);
    for (const target of ["#left-behind", b.pubkey]) {
      expect(await sender.send(target)).toMatchObject({ type: "error", code: "unknown_target" });
    }
  });

  for (const kind of ["direct pubkey", "channel"] as const) {
    test(`an unknown ${kind} is refused with unknown_target and nothing is stored`, async () => {
      const { mesh: m, members } = await mesh(3);
      const [a, b, c] = members as [SetupMember, SetupMember, SetupMember];
      const sender = await connect(broker, m.id, a);
      const recipient = await connect(broker, m.id, b);
      // A member of another mesh is as unknown here as a key nobody holds.
      const { members: elsewhere } = await mesh(1);
      const targets = kind === "channel" ? ["#nobody-here"] : [hex(32), elsewhere[0]!.pubkey];

      for (const [i, target] of targets.entries()) {
        const id = `unknown-${i}`;
        const answer = await sender.send(target, { id });
        expect(answer).toMatchObject({ type: "error", code: "unknown_target", id });
        expect(typeof answer.message).toBe("string");
        const stored = await storedBy(a.id);
        if (stored !== null) expect(stored).toBe(i);
        // Had the refused send been stored, its id would now answer as a duplicate.
        const retry = await sender.send(b.pubkey, { id });
        expect(retry).toMatchObject({ type: "ack", id, queued: true, recipients: 1 });
        expect(retry.duplicate).toBeUndefined();
        await recipient.nextFrame((f) => f.type === "push" && f.messageId === retry.messageId);
      }
      expect(await sender.send("*")).toMatchObject({ type: "ack", recipients: 2 });
      const late = await connect(broker, m.id, c);
      await late.waitForPushes(1);
      expect(await pushesBeforeMarker(sender, late)).toHaveLength(1);
      expect(await pushesBeforeMarker(sender, recipient)).toHaveLength(targets.length + 1);
      expect(sender.isOpen).toBe(true);
    });
  }

  test("the same id sent twice (after a reconnect) gives the first messageId with duplicate:true, one message", async () => {
    const { mesh: m, members } = await mesh(2);
    const [a, b] = members as [SetupMember, SetupMember];
    const recipient = await connect(broker, m.id, b);
    const first = await connect(broker, m.id, a);
    const ack1 = await first.send(b.pubkey, { id: "retry-me", ciphertext: "first body" });
    expect(ack1).toMatchObject({ type: "ack", id: "retry-me", queued: true, recipients: 1 });
    expect(ack1.duplicate).toBeUndefined();
    await first.close();

    const again = await connect(broker, m.id, a);
    const ack2 = await again.send(b.pubkey, { id: "retry-me", ciphertext: "second body" });
    expect(ack2).toMatchObject({
      type: "ack",
      id: "retry-me",
      messageId: ack1.messageId,
      queued: true,
      recipients: 1,
      duplicate: true,
    });
    // Same connection, same id once more.
    expect(await again.send(b.pubkey, { id: "retry-me" })).toMatchObject({ messageId: ack1.messageId, duplicate: true });
    // Another id is another message.
    const other = await again.send(b.pubkey, { id: "retry-me-2" });
    expect(other.messageId).not.toBe(ack1.messageId);

    const stored = await storedBy(a.id);
    if (stored !== null) expect(stored).toBe(2);
    await recipient.waitForPushes(2);
    const pushes = await pushesBeforeMarker(again, recipient);
    expect(pushes.map((p) => p.messageId)).toEqual([ack1.messageId, other.messageId]);
    expect(pushes[0]!.ciphertext).toBe("first body");
  });

  test("a retried id is answered as its first copy after its target was revoked, or with another target: duplicate, never unknown_target", async () => {
    const { mesh: m, members } = await mesh(3);
    const [a, b, c] = members as [SetupMember, SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    const joiner = await connect(broker, m.id, b);
    expect(await joiner.request({ type: "join", channel: "#gone-soon" })).toMatchObject({ type: "ack", joined: true });
    const direct = await sender.send(b.pubkey, { id: "to-b" });
    const channel = await sender.send("#gone-soon", { id: "to-channel" });
    expect([direct, channel]).toMatchObject([
      { type: "ack", recipients: 1 },
      { type: "ack", recipients: 1 },
    ]);
    await broker.admin.revokeMember(m.id, b.id);

    // The SDK writes an unanswered send again after a reconnect; whether its target is still there is beside the point.
    const again = await connect(broker, m.id, a);
    expect(await again.send(b.pubkey, { id: "to-b" })).toMatchObject({ type: "ack", id: "to-b", messageId: direct.messageId, duplicate: true });
    expect(await again.send("#gone-soon", { id: "to-channel" })).toMatchObject({ type: "ack", id: "to-channel", messageId: channel.messageId, duplicate: true });
    // The body is not compared: a target nobody holds under a stored id is that id's first copy too.
    expect(await again.send(hex(32), { id: "to-b" })).toMatchObject({ type: "ack", messageId: direct.messageId, duplicate: true });
    // A new id to the revoked member is refused as before, and stores nothing.
    expect(await again.send(b.pubkey, { id: "to-b-new" })).toMatchObject({ type: "error", code: "unknown_target", id: "to-b-new" });
    const stored = await storedBy(a.id);
    if (stored !== null) expect(stored).toBe(2);
    expect(await again.send(c.pubkey, { id: "to-c" })).toMatchObject({ type: "ack", recipients: 1 });
  });

  test("the same id from two presences of one sender at the same moment makes one message", async () => {
    const { mesh: m, members } = await mesh(2);
    const [a, b] = members as [SetupMember, SetupMember];
    const recipient = await connect(broker, m.id, b);
    const s1 = await connect(broker, m.id, a);
    const s2 = await connect(broker, m.id, a);
    for (let round = 0; round < 10; round++) {
      const id = `race-${round}`;
      const [x, y] = await Promise.all([s1.send(b.pubkey, { id }), s2.send(b.pubkey, { id })]);
      expect(x).toMatchObject({ type: "ack", id, recipients: 1 });
      expect(y).toMatchObject({ type: "ack", id, recipients: 1 });
      expect(x.messageId).toBe(y.messageId);
      expect([x.duplicate, y.duplicate].filter((d) => d === true)).toHaveLength(1);
    }
    await recipient.waitForPushes(10);
    const pushes = await pushesBeforeMarker(s1, recipient);
    expect(new Set(pushes.map((p) => p.messageId)).size).toBe(10);
    expect(pushes).toHaveLength(10);
  });

  test("a retry written in the same batch as its first copy is answered as that copy: its messageId and its recipients", async () => {
    const { mesh: m, members } = await mesh(4);
    const [a, b, c, d] = members as [SetupMember, SetupMember, SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    for (const member of [b, c, d]) await connect(broker, m.id, member);
    // Sends written while the first ones' statement runs go out together in the next.
    const warmUp = Array.from({ length: 20 }, (_, i) => sendFrame(b.pubkey, { id: `warm-${i}` }));
    const acks = await sendMany(sender, [...warmUp, sendFrame("*", { id: "same-batch" }), sendFrame(c.pubkey, { id: "same-batch" })]);
    const [first, retry] = acks.slice(-2);
    expect(first).toMatchObject({ type: "ack", id: "same-batch", recipients: 3 });
    expect(retry).toMatchObject({ type: "ack", id: "same-batch", messageId: first!.messageId, recipients: 3, duplicate: true });
    // A retry in a later batch says the same.
    expect(await sender.send(c.pubkey, { id: "same-batch" })).toMatchObject({ messageId: first!.messageId, recipients: 3, duplicate: true });
  });

  test("priority defaults to next; a given priority is kept", async () => {
    const { mesh: m, members } = await mesh(2);
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    const recipient = await connect(broker, m.id, b);
    const acks = await sendMany(sender, [
      sendFrame(b.pubkey),
      sendFrame(b.pubkey, { priority: "now" }),
      sendFrame(b.pubkey, { priority: "low" }),
      sendFrame(b.pubkey, { priority: "next" }),
    ]);
    const pushes = await recipient.waitForPushes(4);
    const byId = new Map(pushes.map((p) => [p.messageId, p.priority]));
    expect(acks.map((ack) => byId.get(ack.messageId))).toEqual(["next", "now", "low", "next"]);
  });

  test("ephemeral: acked queued:false, pushed to a connected idle recipient only, never stored", async () => {
    const { mesh: m, members } = await mesh(["sender", "idle", "busy", "offline"]);
    const [a, idleM, busyM, offM] = members as [SetupMember, SetupMember, SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    const idle = await connect(broker, m.id, idleM);
    const busy = await connect(broker, m.id, busyM);
    expect(await busy.request({ type: "set_status", status: "working" })).toMatchObject({ status: "working" });

    const ack = await sender.send("*", { ephemeral: true, id: "eph-1", ciphertext: "fleeting" });
    expect(ack).toMatchObject({ type: "ack", id: "eph-1", queued: false });
    expect(str(ack.messageId)).toMatch(UUID);
    const [push] = await idle.waitForPushes(1);
    expect(push).toMatchObject({
      type: "push",
      messageId: ack.messageId,
      meshId: m.id,
      senderPubkey: a.pubkey,
      targetSpec: "*",
      priority: "next",
      ciphertext: "fleeting",
      attempt: 1,
      ephemeral: true,
    });
    idle.ack([str(ack.messageId)]);

    const direct = await sender.send(offM.pubkey, { ephemeral: true });
    expect(direct).toMatchObject({ type: "ack", queued: false });

    // Neither a later connect nor becoming idle brings an ephemeral message back.
    const late = await connect(broker, m.id, offM);
    expect(await busy.request({ type: "set_status", status: "idle" })).toMatchObject({ status: "idle" });
    const stored = await storedBy(a.id);
    if (stored !== null) expect(stored).toBe(0);
    expect(await pushesBeforeMarker(sender, late)).toEqual([]);
    expect(await pushesBeforeMarker(sender, busy)).toEqual([]);
    expect(await pushesBeforeMarker(sender, idle)).toHaveLength(1);
    expect(await pushesBeforeMarker(idle, sender)).toEqual([]);
  });

  test("a message whose ttlSeconds ran out is not delivered to a member connecting later", async () => {
    const { mesh: m, members } = await mesh(2);
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    const expiring = await sender.send(b.pubkey, { ttlSeconds: 1, ciphertext: "gone" });
    expect(expiring).toMatchObject({ type: "ack", queued: true, recipients: 1 });
    const lasting = await sender.send(b.pubkey, { ttlSeconds: 3600, ciphertext: "kept" });
    // Past the 1 s lifetime, counted from its commit before the ack.
    await Bun.sleep(1_500);

    const recipient = await connect(broker, m.id, b);
    await recipient.nextFrame((f) => f.type === "push" && f.messageId === lasting.messageId);
    expect((await pushesBeforeMarker(sender, recipient)).map((p) => p.ciphertext)).toEqual(["kept"]);
  });

  test("too_large: a frame under MAX_MESSAGE_BYTES with no room left for the push; the socket stays open", async () => {
    const { mesh: m, members } = await mesh(2);
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    const recipient = await connect(broker, m.id, b);
    const frame = { type: "send", targetSpec: b.pubkey, nonce: "n", ciphertext: "A".repeat(3_800), id: "big" };
    expect(Buffer.byteLength(JSON.stringify({ ...frame, reqId: "r-0123456789abcdef0123456789abcdef0123" }))).toBeLessThan(
      MAX_MESSAGE_BYTES,
    );
    const answer = await sender.request(frame);
    expect(answer).toMatchObject({ type: "error", code: "too_large", id: "big" });
    await expectAlive(sender);
    // A message of ordinary size on the same socket goes through.
    const ok = await sender.send(b.pubkey, { ciphertext: "B".repeat(1_000) });
    expect(ok).toMatchObject({ type: "ack", recipients: 1 });
    await recipient.waitForPushes(1);
    expect(await pushesBeforeMarker(sender, recipient)).toHaveLength(1);

    // A frame over MAX_MESSAGE_BYTES ends the connection with 1009.
    const huge = await connect(broker, m.id, a);
    huge.sendFrame({ ...frame, ciphertext: "A".repeat(MAX_MESSAGE_BYTES) });
    expect((await huge.closed).code).toBe(1009);
  });

  test("too_large counts nonce, ciphertext and target as the push's JSON carries them, escapes included", async () => {
    const { mesh: m, members } = await mesh(2);
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    const recipient = await connect(broker, m.id, b);
    // 586 control characters (6 bytes each in JSON) and a quote (2): with "x",
    // the nonce and the target, exactly what a push has room for, though far
    // fewer bytes before escaping.
    const room = MAX_MESSAGE_BYTES - 512 - "n".length - b.pubkey.length;
    const fits = `${"\u0001".repeat(586)}"x`;
    expect(Buffer.byteLength(JSON.stringify(fits)) - 2).toBe(room);
    const frame = { type: "send", targetSpec: b.pubkey, nonce: "n", ciphertext: fits, id: "fits" };

    const ack = await sender.request(frame);
    expect(ack).toMatchObject({ type: "ack", recipients: 1 });
    const [push] = await recipient.waitForPushes(1);
    expect(push).toMatchObject({ messageId: ack.messageId, ciphertext: fits });
    expect(Buffer.byteLength(JSON.stringify(push))).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    recipient.ack([str(ack.messageId)]);

    // One byte more would not fit the push, though its send frame is well under MAX_MESSAGE_BYTES.
    const over = { ...frame, ciphertext: `${fits}x`, id: "over" };
    expect(Buffer.byteLength(JSON.stringify(over))).toBeLessThan(MAX_MESSAGE_BYTES - 100);
    expect(await sender.request(over)).toMatchObject({ type: "error", code: "too_large", id: "over" });
    await expectAlive(sender);
    expect((await pushesBeforeMarker(sender, recipient)).map((p) => p.messageId)).toEqual([ack.messageId]);
  });

  test("invalid sends get invalid with the send's id, and the socket stays open", async () => {
    const { mesh: m, members } = await mesh(2);
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    const recipient = await connect(broker, m.id, b);
    const bad: Frame[] = [
      { type: "send", targetSpec: b.pubkey, nonce: "n", id: "no-ciphertext" },
      { type: "send", targetSpec: "someone", nonce: "n", ciphertext: "c", id: "bad-target" },
      { type: "send", targetSpec: b.pubkey.toUpperCase(), nonce: "n", ciphertext: "c", id: "upper-key" },
      { type: "send", targetSpec: "#", nonce: "n", ciphertext: "c", id: "empty-channel" },
      { type: "send", targetSpec: b.pubkey, priority: "urgent", nonce: "n", ciphertext: "c", id: "bad-priority" },
      { type: "send", targetSpec: b.pubkey, ciphertext: "c", id: "no-nonce" },
      { type: "send", targetSpec: b.pubkey, nonce: "n", ciphertext: "c", ttlSeconds: -1, id: "bad-ttl" },
    ];
    for (const frame of bad) {
      const answer = await sender.request(frame);
      expect(answer).toMatchObject({ type: "error", code: "invalid", id: frame.id });
      expect(typeof answer.message).toBe("string");
      expect(sender.isOpen).toBe(true);
    }
    await expectAlive(sender);
    const ok = await sender.send(b.pubkey, { id: "fine" });
    expect(ok).toMatchObject({ type: "ack", id: "fine", recipients: 1 });
    await recipient.waitForPushes(1);
    expect((await pushesBeforeMarker(sender, recipient)).map((p) => p.messageId)).toEqual([ok.messageId]);
  });

  test("nonce, ciphertext or id that Postgres text cannot hold is invalid, and spoils no other sender's send", async () => {
    const { mesh: m, members } = await mesh(4);
    const [x, y, z, r] = members as [SetupMember, SetupMember, SetupMember, SetupMember];
    const [px, py, pz] = await Promise.all([x, y, z].map((s) => connect(broker, m.id, s)));
    const recipient = await connect(broker, m.id, r, { autoAck: true });
    const poison = [{ ciphertext: "a\u0000b" }, { nonce: "\u0000" }, { id: "id\u0000" }, { ciphertext: "\ud800" }];
    // Three senders at once, so their sends share group commits with the bad ones.
    const [rx, ry, rz] = await Promise.all([
      sendMany(px!, Array.from({ length: 40 }, () => sendFrame(r.pubkey))),
      sendMany(
        py!,
        Array.from({ length: 40 }, (_, i) => sendFrame(r.pubkey, { id: `p${i}`, ...poison[i % poison.length] })),
      ),
      sendMany(pz!, Array.from({ length: 40 }, () => sendFrame(r.pubkey))),
    ]);
    expect([...rx!, ...rz!].map((a) => a.code ?? a.type)).toEqual(Array<string>(80).fill("ack"));
    expect(ry!.map((a) => a.code)).toEqual(Array<string>(40).fill("invalid"));
    await recipient.waitForPushes(80, 30_000);
    expect(await pushesBeforeMarker(px!, recipient)).toHaveLength(80);
  });

  // The broker forwards nonce and ciphertext unchanged: a byte read as U+FFFD would be stored as that character instead.
  test("a binary frame is read as UTF-8 text; one whose bytes are not UTF-8 is invalid and stores nothing, the socket open", async () => {
    const { mesh: m, members } = await mesh(2);
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    const recipient = await connect(broker, m.id, b);
    const bytesOf = (frame: object) => new TextEncoder().encode(JSON.stringify(frame));
    const text = JSON.stringify(sendFrame(b.pubkey, { reqId: "bad-bytes", id: "bad-bytes", ciphertext: "a_b" }));
    const spoiled = new TextEncoder().encode(text);
    // The frame is ASCII up to there: the character's index is its byte's.
    spoiled[text.indexOf("a_b") + 1] = 0xff;
    sender.sendBinary(spoiled);
    // Unread, it has no reqId to echo.
    expect(await sender.nextFrame((f) => f.type === "error")).toEqual({ type: "error", code: "invalid", message: "the frame is not text in UTF-8" });
    sender.sendBinary(bytesOf(sendFrame(b.pubkey, { reqId: "good-bytes", ciphertext: "é" })));
    expect(await sender.nextFrame((f) => f.reqId === "good-bytes")).toMatchObject({ type: "ack" });
    const [push] = await recipient.waitForPushes(1);
    expect(push?.ciphertext).toBe("é");
    expect(await storedBy(a.id)).toBe(backendKind === "postgres" ? 1 : null);
  });

  test.skipIf(backendKind !== "postgres")("a batch the database refuses is written again a send at a time, in the sender's order", async () => {
    const { mesh: m, members } = await mesh(2);
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    const recipient = await connect(broker, m.id, b);
    // Statements of more than one message fail; each single one takes a random 0–20 ms.
    await queryPostgres(broker.backend, (sql) => sql.unsafe(`
      CREATE FUNCTION one_message_at_a_time() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF (SELECT count(*) FROM inserted) > 1 THEN RAISE EXCEPTION 'injected: batch refused'; END IF;
        PERFORM pg_sleep(random() * 0.02);
        RETURN NULL;
      END $$;
      CREATE TRIGGER one_message_at_a_time AFTER INSERT ON messages REFERENCING NEW TABLE AS inserted
        FOR EACH STATEMENT EXECUTE FUNCTION one_message_at_a_time();`));
    try {
      // Pipelined: the first is written alone, the rest queue behind it and fail as a batch.
      const frames = Array.from({ length: 30 }, (_, i) => sendFrame(b.pubkey, { ciphertext: `m${i}` }));
      const replies = await sendMany(sender, frames);
      expect(replies.map((r) => r.type)).toEqual(frames.map(() => "ack"));
      const pushes = await recipient.waitForPushes(30);
      expect(pushes.map((p) => p.ciphertext)).toEqual(frames.map((f) => f.ciphertext));
    } finally {
      await queryPostgres(broker.backend, (sql) => sql.unsafe(`
        DROP TRIGGER one_message_at_a_time ON messages; DROP FUNCTION one_message_at_a_time();`));
    }
  });

  test("an observer may connect but not send: forbidden, nothing delivered", async () => {
    const { mesh: m, members } = await mesh(2);
    const [recipientMember, markerMember] = members as [SetupMember, SetupMember];
    const identity = await newIdentity();
    const added = await broker.admin.addMember(m.id, { pubkey: identity.publicKey, displayName: "watcher", role: "observer" });
    const watcher = { id: added.id, displayName: "watcher", pubkey: identity.publicKey, identity };
    const observer = await connect(broker, m.id, watcher);
    const recipient = await connect(broker, m.id, recipientMember);

    for (const target of [recipientMember.pubkey, "*"]) {
      const answer = await observer.send(target, { id: `obs-${target.length}` });
      expect(answer).toMatchObject({ type: "error", code: "forbidden", id: `obs-${target.length}` });
    }
    await expectAlive(observer);
    expect(await pushesBeforeMarker(await connect(broker, m.id, markerMember), recipient)).toEqual([]);
  });

  test("metrics count routed messages by priority and rejected sends by reason", async () => {
    const { mesh: m, members } = await mesh(2);
    const [a, b] = members as [SetupMember, SetupMember];
    const identity = await newIdentity();
    const added = await broker.admin.addMember(m.id, { pubkey: identity.publicKey, displayName: "obs", role: "observer" });
    const sender = await connect(broker, m.id, a);
    await connect(broker, m.id, b);
    const observer = await connect(broker, m.id, { id: added.id, displayName: "obs", pubkey: identity.publicKey, identity });

    const keys = [
      "broker_messages_routed_total{priority=now}",
      "broker_messages_routed_total{priority=next}",
      "broker_messages_routed_total{priority=low}",
      "broker_messages_rejected_total{reason=invalid}",
      "broker_messages_rejected_total{reason=too_large}",
      "broker_messages_rejected_total{reason=unknown_target}",
      "broker_messages_rejected_total{reason=forbidden}",
      "broker_messages_rejected_total{reason=rate_limited}",
    ];
    const before = await scrape(broker.url);
    for (const k of keys) expect(before.has(k)).toBe(true);

    const replies = await sendMany(sender, [
      sendFrame(b.pubkey, { priority: "now" }),
      sendFrame(b.pubkey, { priority: "now" }),
      sendFrame(b.pubkey),
      sendFrame(b.pubkey, { priority: "low" }),
      sendFrame(b.pubkey, { priority: "low" }),
      sendFrame(b.pubkey, { priority: "low" }),
      sendFrame(b.pubkey, { ephemeral: true }),
      { type: "send", targetSpec: b.pubkey, nonce: "n" },
      sendFrame(b.pubkey, { ciphertext: "A".repeat(3_800) }),
      sendFrame(hex(32)),
      sendFrame("#no-such-channel"),
    ]);
    expect(replies.map((r) => r.code ?? r.type)).toEqual([
      ...Array<string>(7).fill("ack"),
      "invalid",
      "too_large",
      "unknown_target",
      "unknown_target",
    ]);
    expect((await observer.send(b.pubkey)).code).toBe("forbidden");

    const after = await scrape(broker.url);
    expect(deltas(before, after, keys)).toEqual({
      "broker_messages_routed_total{priority=now}": 2,
      "broker_messages_routed_total{priority=next}": 2,
      "broker_messages_routed_total{priority=low}": 3,
      "broker_messages_rejected_total{reason=invalid}": 1,
      "broker_messages_rejected_total{reason=too_large}": 1,
      "broker_messages_rejected_total{reason=unknown_target}": 2,
      "broker_messages_rejected_total{reason=forbidden}": 1,
      "broker_messages_rejected_total{reason=rate_limited}": 0,
    });
  });

  test("metrics: each batch of sends is observed with its size and its time", async () => {
    const { mesh: m, members } = await mesh(2);
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    await connect(broker, m.id, b);
    const keys = ["broker_send_batch_size_sum", "broker_send_batch_size_count", "broker_send_batch_seconds_count", "broker_send_batch_seconds_sum"];
    const before = await scrape(broker.url);
    for (const k of keys) expect(before.has(k)).toBe(true);

    const replies = await sendMany(sender, [
      ...Array.from({ length: 12 }, () => sendFrame(b.pubkey)),
      sendFrame(b.pubkey, { ephemeral: true }),
      { type: "send", targetSpec: b.pubkey, nonce: "n" },
      sendFrame(hex(32)),
    ]);
    expect(replies.map((r) => r.code ?? r.type)).toEqual([...Array<string>(13).fill("ack"), "invalid", "unknown_target"]);

    // The statement routes: a pubkey outside the mesh is in its batch; an
    // ephemeral send and a frame refused before routing are not.
    const d = deltas(before, await scrape(broker.url), keys);
    expect(d.broker_send_batch_size_sum).toBe(13);
    expect(d.broker_send_batch_size_count).toBeGreaterThanOrEqual(1);
    expect(d.broker_send_batch_size_count).toBeLessThanOrEqual(13);
    expect(d.broker_send_batch_seconds_count).toBe(d.broker_send_batch_size_count!);
    expect(d.broker_send_batch_seconds_sum).toBeGreaterThan(0);
  });
});

describe("send rate limit", () => {
  const broker = useTestBroker({ SEND_RATE_LIMIT_PER_MIN: "5" });

  test("SEND_RATE_LIMIT_PER_MIN=5: the 6th send in a minute is rate_limited, per member, socket open", async () => {
    const { mesh: m, members } = await setupMesh(broker.admin, { members: 3 });
    const [a, b, c] = members as [SetupMember, SetupMember, SetupMember];
    const sender = await connect(broker, m.id, a);
    const recipient = await connect(broker, m.id, b);
    const other = await connect(broker, m.id, c);
    const before = await scrape(broker.url);
    // Keep the burst inside one clock minute, so the count of the minute before plays no part.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 55_000) await Bun.sleep(60_000 - intoMinute + 100);
    const replies = await sendMany(
      sender,
      Array.from({ length: 7 }, (_, i) => sendFrame(b.pubkey, { id: `rl-${i}` })),
    );
    expect(replies.map((r) => r.type)).toEqual(["ack", "ack", "ack", "ack", "ack", "error", "error"]);
    expect(replies[5]).toMatchObject({ type: "error", code: "rate_limited", id: "rl-5" });
    await expectAlive(sender);
    // The limit is per member: another member still sends.
    expect(await other.send(b.pubkey)).toMatchObject({ type: "ack", recipients: 1 });

    await recipient.waitForPushes(6);
    expect(await pushesBeforeMarker(other, recipient)).toHaveLength(6);
    const after = await scrape(broker.url);
    expect(deltas(before, after, ["broker_messages_rejected_total{reason=rate_limited}"])).toEqual({
      "broker_messages_rejected_total{reason=rate_limited}": 2,
    });
  });
});
