// A member's sends are limited by what they cost, not only by their count:
// SEND_RECIPIENTS_RATE_LIMIT_PER_MIN bounds the recipients its accepted
// sends reach in a minute. Without it one member sending `*` in a mesh of
// many members wrote SEND_RATE_LIMIT_PER_MIN times the mesh's size in
// deliveries every minute, the same as sending alone to each of them.
import { afterEach, describe, expect, test } from "bun:test";
import { PeerPool, setupMesh, useTestBroker, type SetupMember } from "@switchboard/testkit";
import { sendFrame, sendMany } from "./support/messaging.ts";

const pool = new PeerPool();
afterEach(() => pool.closeAll());

describe("recipients of a member's sends (SEND_RECIPIENTS_RATE_LIMIT_PER_MIN=10)", () => {
  const broker = useTestBroker({ SEND_RECIPIENTS_RATE_LIMIT_PER_MIN: "10" });

  test("sends to * in a mesh of five: three reach 12 recipients, then every send of that member is rate_limited and stores nothing; another member still sends", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 5 });
    const [loud, quiet, ...rest] = members as [SetupMember, SetupMember, ...SetupMember[]];
    const sender = await pool.connect(broker.wsUrl, loud, mesh.id);
    // One at a time: each is counted once committed, before the next is checked.
    for (let i = 0; i < 3; i++) expect(await sender.send("*")).toMatchObject({ type: "ack", recipients: 4 });
    const refused = await sendMany(sender, [sendFrame("*", { id: "over-1" }), sendFrame(quiet.pubkey, { id: "over-2" })]);
    expect(refused).toEqual([
      expect.objectContaining({ type: "error", code: "rate_limited", id: "over-1" }),
      expect.objectContaining({ type: "error", code: "rate_limited", id: "over-2" }),
    ]);
    expect(String(refused[0]!.message)).toContain("10 recipients");

    const receiver = await pool.connect(broker.wsUrl, quiet, mesh.id);
    const other = await pool.connect(broker.wsUrl, rest[0]!, mesh.id);
    expect(await other.send(quiet.pubkey)).toMatchObject({ type: "ack", recipients: 1 });
    // Queued before the receiver connected, the refused ones would come before the other member's message.
    const pushes = await receiver.waitForPushes(4);
    const marker = pushes.findIndex((p) => p.senderPubkey === rest[0]!.pubkey);
    expect(marker).toBeGreaterThanOrEqual(0);
    expect(receiver.pushes().filter((p) => p.senderPubkey === loud.pubkey)).toHaveLength(3);
  });
});
