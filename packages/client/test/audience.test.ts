// A hello names the broker it is for (its audience). An endpoint the SDK is
// pointed at could otherwise pass the member's signed hello on to a broker
// of the same mesh within the clock window, and take the member's queued
// messages there. A broker with HELLO_AUDIENCES admits only hellos signed
// for one of its names.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { freePort, PeerError, setupMesh, TestBroker, TestPeer, waitUntil, type SetupMember } from "@switchboard/testkit";
import { SwitchboardClient, type Message } from "../src/index.ts";
import { testClients } from "./support.ts";

/** A WebSocket endpoint on loopback that passes every frame on to `target` and back: what a hostile one would do with a hello. */
function startRelay(target: string): { url: string; hellos: () => number; stop: () => void } {
  let hellos = 0;
  const server = Bun.serve<{ up: WebSocket | null; queued: string[] }>({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request, srv) {
      return srv.upgrade(request, { data: { up: null, queued: [] } }) ? undefined : new Response("upgrade", { status: 426 });
    },
    websocket: {
      open(ws) {
        const up = new WebSocket(target);
        ws.data.up = up;
        up.onopen = () => ws.data.queued.splice(0).forEach((frame) => up.send(frame));
        up.onmessage = (event) => ws.send(String(event.data));
        // 1005 and 1006 cannot be sent: the closing side keeps the rest.
        up.onclose = (event) => ws.close(event.code === 1005 || event.code === 1006 ? 1011 : event.code, event.reason);
      },
      message(ws, frame) {
        const text = String(frame);
        if (text.includes('"hello"')) hellos++;
        const up = ws.data.up;
        if (up !== null && up.readyState === WebSocket.OPEN) up.send(text);
        else ws.data.queued.push(text);
      },
      close(ws) {
        ws.data.up?.close();
      },
    },
  });
  return { url: `ws://127.0.0.1:${server.port}/ws`, hellos: () => hellos, stop: () => void server.stop(true) };
}

// One broker that knows its names, one that predates them (any audience, or none).
let named: TestBroker;
let open: TestBroker;
let port = 0;
const relays: Array<{ stop: () => void }> = [];
beforeAll(async () => {
  port = await freePort();
  [named, open] = await Promise.all([
    TestBroker.start({ BROKER_PORT: String(port), HELLO_AUDIENCES: `switchboard.test, 127.0.0.1:${port}` }),
    TestBroker.start(),
  ]);
});
afterAll(async () => {
  for (const relay of relays) relay.stop();
  await Promise.all([named?.dispose(), open?.dispose()]);
});

const { connect, adopt } = testClients(() => named.wsUrl);

function relayTo(broker: TestBroker): { url: string; hellos: () => number } {
  const relay = startRelay(broker.wsUrl);
  relays.push(relay);
  return relay;
}

describe("a broker with HELLO_AUDIENCES", () => {
  test("the SDK signs its hello for the URL's host, and is admitted by a broker of that name", async () => {
    const { mesh, members } = await setupMesh(named.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const a = await connect(mesh.id, alice);
    const b = await connect(mesh.id, bob);
    const got = new Promise<Message>((resolve) => b.on("message", resolve));
    await a.send(bob.pubkey, { hi: 1 });
    expect(await got).toMatchObject({ senderPubkey: alice.pubkey, payload: { hi: 1 } });
  });

  test("a hello passed on by the endpoint it was sent to is refused, and the member's queued message stays for the member", async () => {
    const { mesh, members } = await setupMesh(named.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const b = await connect(mesh.id, bob);
    const sent = await b.send(alice.pubkey, { queued: true });

    const relay = relayTo(named);
    const attempt = SwitchboardClient.connect({ url: relay.url, meshId: mesh.id, secretKey: alice.identity.secretKey, reconnect: false });
    await expect(attempt).rejects.toMatchObject({
      code: "unauthorized",
      message: expect.stringContaining(`signed for 127.0.0.1:${new URL(relay.url).port}, which is not one of this broker's names`),
    });
    expect(relay.hellos()).toBe(1);

    const a = await connect(mesh.id, alice);
    const got = new Promise<Message>((resolve) => a.on("message", resolve));
    expect(await got).toMatchObject({ messageId: sent.messageId, payload: { queued: true } });
  });

  test("a client dialling the broker by another name signs for the name it is given", async () => {
    const { mesh, members } = await setupMesh(named.admin, { members: ["alice"] });
    const [alice] = members as [SetupMember];
    const relay = relayTo(named);
    const client = adopt(
      await SwitchboardClient.connect({ url: relay.url, meshId: mesh.id, secretKey: alice.identity.secretKey, audience: "Switchboard.TEST", reconnect: false }),
    );
    expect(client.presenceId).toEqual(expect.any(String));
  });

  test("a hello that names no broker, or one it was not signed for, is refused", async () => {
    const { mesh, members } = await setupMesh(named.admin, { members: ["alice"] });
    const [alice] = members as [SetupMember];
    const base = { identity: alice.identity, meshId: mesh.id };
    const refusal = (options: Omit<Parameters<typeof TestPeer.connect>[1], keyof typeof base>) =>
      TestPeer.connect(named.wsUrl, { ...base, ...options }).then(
        async (peer) => {
          await peer.close();
          return null;
        },
        (error: unknown) => (error instanceof PeerError ? { code: error.code, message: error.frame?.message } : error),
      );

    // What an SDK from before the audience sends.
    expect(await refusal({})).toMatchObject({ code: "unauthorized", message: expect.stringContaining("this one names none") });
    // Signed for one name, shown as another.
    expect(await refusal({ audience: "elsewhere.test", helloOverrides: { audience: "switchboard.test" } })).toMatchObject({
      code: "bad_signature",
      message: "the audience signature does not verify for this pubkey",
    });
    expect(await refusal({ audience: "switchboard.test", helloOverrides: { audienceSignature: undefined } })).toMatchObject({ code: "malformed" });
    expect(await refusal({ audience: "switchboard.test", helloOverrides: { audience: "Switchboard.test" } })).toMatchObject({ code: "malformed" });
    expect(await refusal({ audience: "switchboard.test" })).toBeNull();
  });
});

describe("a broker without HELLO_AUDIENCES", () => {
  test("admits a hello for any name, or none: so a hello passed on gets in, which the setting stops", async () => {
    const { mesh, members } = await setupMesh(open.admin, { members: ["alice"] });
    const [alice] = members as [SetupMember];
    const old = await TestPeer.connect(open.wsUrl, { identity: alice.identity, meshId: mesh.id });
    await old.close();

    const relay = relayTo(open);
    const client = adopt(await SwitchboardClient.connect({ url: relay.url, meshId: mesh.id, secretKey: alice.identity.secretKey, reconnect: false }));
    await waitUntil(async () => (await open.admin.peers(mesh.slug)).length === 1 || undefined, 10_000, "the relayed presence");
    expect(relay.hellos()).toBe(1);
    await client.close();
  });

  // Both signatures are checked, and the replay guard keys on the first: were
  // the second checked alone and recorded, the same hello stripped of its
  // audience would be a new one, checked by its first signature.
  test("a hello used once is refused again as a replay, with its audience or stripped of it, and its first signature must verify", async () => {
    const { mesh, members } = await setupMesh(open.admin, { members: ["alice"] });
    const [alice] = members as [SetupMember];
    const signed = { identity: alice.identity, meshId: mesh.id, audience: "switchboard.test", sessionId: "s-1", timestamp: Date.now() };
    const attempt = (overrides: Record<string, unknown>) =>
      TestPeer.connect(open.wsUrl, { ...signed, helloOverrides: overrides }).then(
        async (peer) => {
          await peer.close();
          return "admitted";
        },
        (error: unknown) => (error instanceof PeerError ? error.code : error),
      );
    expect(await attempt({ signature: "00".repeat(64) })).toBe("bad_signature");
    expect(await attempt({})).toBe("admitted");
    expect(await attempt({ audience: undefined, audienceSignature: undefined })).toBe("replayed");
    expect(await attempt({})).toBe("replayed");
  });
});
