// A send whose answer a dropped socket lost is written again after the
// reconnect, and the broker recognizes its id — for as long as it remembers
// the id. Past that window (DELIVERED_RETENTION_SECONDS, told in hello_ack)
// a second write could store it twice, so the SDK fails it instead.
import { describe, expect, test } from "bun:test";
import { setupMesh, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import { HttpSender, SwitchboardError } from "../src/index.ts";
import { collect, controllableWebSocket, recordingWebSocket, testClients, type RawFrame } from "./support.ts";

const RETENTION_SECONDS = 3;
// Housekeeping often, so a settled message is pruned soon after the window.
const broker = useTestBroker({ DELIVERED_RETENTION_SECONDS: String(RETENTION_SECONDS), HOUSEKEEPING_INTERVAL_MS: "200" });
const { connect } = testClients(() => broker.wsUrl);

describe("a send written again after a reconnect", () => {
  test("past the window the broker remembers its id in, it is not written again: outcome_unknown, and one copy", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const control = controllableWebSocket();
    const a = await connect(mesh.id, alice, { WebSocket: control.WebSocket });
    const got = collect(await connect(mesh.id, bob));
    // The reconnect's hello waits until the broker has forgotten the send.
    let release = () => {};
    control.holdHellos = new Promise<void>((resolve) => {
      release = resolve;
    });
    const sending = a.send(bob.pubkey, { n: 1 }).then(
      () => null,
      (error: unknown) => error,
    );
    // Written, and the socket drops before its answer can come back.
    control.sockets.at(-1)!.close(3000, "test drop");
    await waitUntil(() => got.messages.length === 1, 10_000, "bob has the message");
    const stored = got.messages[0]!.messageId;
    // Acked by bob, then kept DELIVERED_RETENTION_SECONDS: gone once the prune has passed it.
    const sender = await HttpSender.create({ url: broker.url, token: await broker.admin.createApiToken(mesh.id, alice.id) });
    const pruned = () => sender.status(stored).then(
      () => false,
      (error: unknown) => (error instanceof SwitchboardError && error.code === "not_found") || Promise.reject(error),
    );
    await waitUntil(pruned, 30_000, "the message pruned");
    release();
    const failure = await sending;
    const marker = await a.send(bob.pubkey, { marker: true });
    await waitUntil(() => got.messages.some((m) => m.messageId === marker.messageId), 10_000, "the marker");
    expect(got.messages.filter((m) => JSON.stringify(m.payload) === '{"n":1}')).toHaveLength(1);
    expect(control.sent.filter((f) => f.type === "send" && f.id !== marker.id)).toHaveLength(1);
    expect(failure).toMatchObject({ code: "outcome_unknown", sendId: undefined });
  });

  test("the hello_ack tells the window, as DELIVERED_RETENTION_SECONDS", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
    const [alice] = members as [SetupMember];
    const frames: RawFrame[] = [];
    await connect(mesh.id, alice, { WebSocket: recordingWebSocket(frames) });
    expect(frames.find((f) => f.type === "hello_ack")).toMatchObject({ idRetentionSeconds: RETENTION_SECONDS });
  });
});
