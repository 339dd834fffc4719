// TestPeer and AdminClient against small in-process fakes (no broker needed).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server, ServerWebSocket } from "bun";
import { helloSigningText, verifyText } from "@switchboard/protocol";
import { AdminClient, AdminError, setupMesh } from "../src/admin-client.ts";
import { type Frame, newIdentity, PeerError, TestPeer } from "../src/peer.ts";

interface FakeData {
  helloDone: boolean;
}

type FakeSocket = ServerWebSocket<FakeData>;

function reply(ws: FakeSocket, frame: Frame): void {
  ws.send(JSON.stringify(frame));
}

function refuse(ws: FakeSocket, code: string, reqId: unknown): void {
  reply(ws, { type: "error", code, message: code, ...(typeof reqId === "string" ? { reqId } : {}) });
  ws.close(1008, code);
}

// A fake broker: verifies hellos, answers ping (optionally delayed, with a decoy
// frame first), pushes two frames on {"type":"push_me"}, and reports client_acks
// back as {"type":"acked"}.
async function onMessage(ws: FakeSocket, message: string | Buffer): Promise<void> {
  let frame: Frame;
  try {
    frame = JSON.parse(String(message)) as Frame;
  } catch {
    return refuse(ws, "malformed", undefined);
  }
  if (!ws.data.helloDone) {
    if (frame.type !== "hello") return refuse(ws, "no_hello", frame.reqId);
    const { meshId, pubkey, sessionId, timestamp, signature } = frame;
    if (
      typeof meshId !== "string" ||
      typeof pubkey !== "string" ||
      typeof sessionId !== "string" ||
      typeof timestamp !== "number" ||
      typeof signature !== "string"
    ) {
      return refuse(ws, "malformed", frame.reqId);
    }
    if (!(await verifyText(pubkey, signature, helloSigningText(meshId, pubkey, sessionId, timestamp)))) {
      return refuse(ws, "bad_signature", frame.reqId);
    }
    ws.data.helloDone = true;
    return reply(ws, {
      type: "hello_ack",
      reqId: frame.reqId,
      presenceId: crypto.randomUUID(),
      memberId: crypto.randomUUID(),
      meshId,
      displayName: frame.displayName ?? "anon",
      status: "idle",
      serverTime: Date.now(),
    });
  }
  switch (frame.type) {
    case "ping": {
      const delay = typeof frame.delayMs === "number" ? frame.delayMs : 0;
      reply(ws, { type: "pong", reqId: "decoy", serverTime: 0 });
      setTimeout(() => reply(ws, { type: "pong", reqId: frame.reqId, serverTime: Date.now() }), delay);
      return;
    }
    case "push_me":
      for (let i = 1; i <= 2; i++) {
        reply(ws, {
          type: "push",
          messageId: crypto.randomUUID(),
          meshId: "fake",
          senderPubkey: "0".repeat(64),
          targetSpec: "*",
          priority: "next",
          nonce: `n${i}`,
          ciphertext: `c${i}`,
          createdAt: new Date().toISOString(),
          replyTo: null,
          attempt: 1,
        });
      }
      return;
    case "client_ack":
      return reply(ws, { type: "acked", messageIds: frame.messageIds });
    case "send":
      return reply(ws, { type: "ack", reqId: frame.reqId, id: frame.id ?? null, messageId: crypto.randomUUID(), queued: true, recipients: 1, echo: frame });
    default:
      return reply(ws, { type: "error", reqId: frame.reqId, code: "invalid", message: "unknown frame" });
  }
}

let server: Server<FakeData>;
let wsUrl: string;

beforeAll(() => {
  server = Bun.serve<FakeData>({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, srv) {
      if (srv.upgrade(req, { data: { helloDone: false } })) return undefined;
      return new Response("not here", { status: 404 });
    },
    websocket: {
      message(ws, message) {
        void onMessage(ws, message);
      },
    },
  });
  wsUrl = `ws://127.0.0.1:${server.port}/ws`;
});

afterAll(async () => {
  await server.stop(true);
});

describe("TestPeer", () => {
  test("connect sends a signed hello and resolves on hello_ack", async () => {
    const identity = await newIdentity();
    const peer = await TestPeer.connect(wsUrl, { identity, meshId: "m-test", displayName: "alice", pid: 42, cwd: "/tmp" });
    expect(peer.helloAck?.type).toBe("hello_ack");
    expect(peer.helloAck?.reqId).toBe(peer.helloFrame?.reqId);
    expect(peer.helloAck?.displayName).toBe("alice");
    expect(peer.helloFrame).toMatchObject({ type: "hello", pubkey: identity.publicKey, meshId: "m-test", pid: 42, cwd: "/tmp" });
    expect(peer.helloFrame?.sessionId).toBe(peer.sessionId);
    expect(peer.isOpen).toBe(true);
    expect(await peer.close()).toEqual({ code: 1000, reason: "" });
    expect(peer.closeInfo?.code).toBe(1000);
    expect(peer.isOpen).toBe(false);
  });

  test("a tampered hello is refused with bad_signature and close 1008", async () => {
    const identity = await newIdentity();
    const err = await TestPeer.connect(wsUrl, { identity, meshId: "m-test", helloOverrides: { meshId: "m-other" } }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PeerError);
    const pe = err as PeerError;
    expect(pe.code).toBe("bad_signature");
    expect(pe.closeCode).toBe(1008);
    expect(pe.closeReason).toBe("bad_signature");
    expect(pe.frame?.type).toBe("error");
  });

  test("hello: false leaves the first frame to the test", async () => {
    const peer = await TestPeer.connect(wsUrl, { identity: await newIdentity(), meshId: "m-test", hello: false });
    expect(peer.helloAck).toBeUndefined();
    peer.sendFrame({ type: "ping", reqId: "p1" });
    expect(await peer.nextFrame("error")).toMatchObject({ code: "no_hello", reqId: "p1" });
    expect(await peer.closed).toEqual({ code: 1008, reason: "no_hello" });

    const raw = await TestPeer.connect(wsUrl, { identity: await newIdentity(), meshId: "m-test", hello: false });
    raw.sendRaw("{not json");
    expect((await raw.nextFrame("error")).code).toBe("malformed");
    expect((await raw.closed).code).toBe(1008);
  });

  test("a hello frame can be replayed on a raw connection", async () => {
    const first = await TestPeer.connect(wsUrl, { identity: await newIdentity(), meshId: "m-test" });
    const second = await TestPeer.connect(wsUrl, { identity: first.identity, meshId: "m-test", hello: false });
    const answer = await second.request(first.helloFrame ?? {});
    expect(answer.type).toBe("hello_ack"); // the fake has no replay protection; the broker must refuse
    await Promise.all([first.close(), second.close()]);
  });

  test("request() matches replies by reqId", async () => {
    const peer = await TestPeer.connect(wsUrl, { identity: await newIdentity(), meshId: "m-test" });
    const slow = peer.request({ type: "ping", delayMs: 80 });
    const fast = peer.request({ type: "ping", reqId: "mine" });
    const [a, b] = await Promise.all([slow, fast]);
    expect(a.type).toBe("pong");
    expect(typeof a.reqId).toBe("string");
    expect(a.reqId).not.toBe("mine");
    expect(a.reqId).not.toBe("decoy");
    expect(b).toMatchObject({ type: "pong", reqId: "mine" });
    expect(peer.frames.indexOf(a)).toBeGreaterThan(peer.frames.indexOf(b));

    const ack = await peer.send("*", { id: "c1", priority: "now", ephemeral: true });
    expect(ack).toMatchObject({ type: "ack", id: "c1" });
    const sent = ack.echo as Frame;
    expect(sent).toMatchObject({ type: "send", targetSpec: "*", priority: "now", id: "c1", ephemeral: true });
    expect(String(sent.nonce)).toStartWith("n-");
    expect(Buffer.from(String(sent.ciphertext), "base64").toString()).toStartWith("message ");
    expect("ttlSeconds" in sent).toBe(false);

    expect((await peer.request({ type: "bogus" })).code).toBe("invalid");
    await peer.close();
  });

  test("waitForPushes, ack and autoAck", async () => {
    const manual = await TestPeer.connect(wsUrl, { identity: await newIdentity(), meshId: "m-test" });
    manual.sendFrame({ type: "push_me" });
    const pushes = await manual.waitForPushes(2);
    expect(pushes).toHaveLength(2);
    expect(pushes.map((p) => p.nonce)).toEqual(["n1", "n2"]);
    expect(manual.pushes()).toEqual(pushes);
    const ids = pushes.map((p) => String(p.messageId));
    manual.ack(ids);
    expect((await manual.nextFrame("acked")).messageIds).toEqual(ids);
    // waitForPushes counts all pushes so far; consumed pushes are skipped by nextFrame.
    manual.sendFrame({ type: "push_me" });
    expect(await manual.waitForPushes(4)).toHaveLength(4);
    await expect(manual.nextFrame("push", 50)).rejects.toThrow(/timed out after 50 ms waiting for a "push" frame/);
    await manual.close();

    const auto = await TestPeer.connect(wsUrl, { identity: await newIdentity(), meshId: "m-test", autoAck: true });
    auto.sendFrame({ type: "push_me" });
    const [p1, p2] = await auto.waitForPushes(2);
    const acked = [await auto.nextFrame("acked"), await auto.nextFrame("acked")];
    expect(acked.map((f) => f.messageIds)).toEqual([[p1?.messageId], [p2?.messageId]]);
    await auto.close();
  });

  test("nextFrame times out with the frames seen", async () => {
    const peer = await TestPeer.connect(wsUrl, { identity: await newIdentity(), meshId: "m-test" });
    const err = await peer.nextFrame((f) => f.type === "never", 100).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PeerError);
    const message = (err as PeerError).message;
    expect(message).toContain("timed out after 100 ms waiting for a frame matching the predicate");
    expect(message).toContain("1 frame(s) received");
    expect(message).toContain('"type":"hello_ack"');
    await peer.close();
    // Waiting on a closed connection fails at once rather than at the timeout.
    await expect(peer.nextFrame("never", 5_000)).rejects.toThrow(/connection closed \(1000/);
  });

  test("a connect to a closed port rejects", async () => {
    const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    const port = probe.port;
    await probe.stop(true);
    await expect(TestPeer.connect(`ws://127.0.0.1:${port}/ws`, { identity: await newIdentity(), meshId: "m" })).rejects.toThrow(
      /closed before opening/,
    );
  });

  test("nothing keeps the process alive after close", async () => {
    const script = `
      import { TestPeer, newIdentity } from ${JSON.stringify(`${import.meta.dir}/../src/peer.ts`)};
      const peer = await TestPeer.connect(${JSON.stringify(wsUrl)}, { identity: await newIdentity(), meshId: "m-test" });
      await peer.request({ type: "ping" });
      await peer.nextFrame("never", 30).catch(() => {});
      const pending = peer.nextFrame("never", 600_000).catch(() => {});
      await peer.close();
      await pending;
      const refused = await TestPeer.connect(${JSON.stringify(wsUrl)}, {
        identity: await newIdentity(), meshId: "m-test", helloOverrides: { sessionId: "other" },
      }).catch((e) => e.code);
      if (refused !== "bad_signature") throw new Error("expected bad_signature, got " + refused);
      console.log("done");
    `;
    // A wait left behind by close() would hold the process for its 10 minutes,
    // until this kill: the exit code tells, however slow the machine.
    const proc = Bun.spawn(["bun", "-e", script], { stdout: "pipe", stderr: "pipe" });
    const killer = setTimeout(() => proc.kill("SIGKILL"), 120_000);
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(killer);
    expect(err).toBe("");
    expect(out.trim()).toBe("done");
    expect(code).toBe(0);
  });
});

describe("AdminClient", () => {
  const requests: Array<{ method: string; path: string; auth: string | null; body: string }> = [];
  let admin: Server<undefined>;
  let baseUrl: string;

  beforeAll(() => {
    let n = 0;
    admin = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const url = new URL(req.url);
        const body = await req.text();
        const auth = req.headers.get("authorization");
        requests.push({ method: req.method, path: url.pathname, auth, body });
        if (auth !== "Bearer secret") {
          return Response.json({ error: { code: "unauthorized", message: "bad token" } }, { status: 401 });
        }
        let parsed: Record<string, unknown> = {};
        try {
          if (body) parsed = JSON.parse(body) as Record<string, unknown>;
        } catch {
          return Response.json({ error: { code: "invalid", message: "not JSON" } }, { status: 400 });
        }
        const parts = url.pathname.split("/").filter(Boolean);
        if (req.method === "POST" && url.pathname === "/v1/meshes") {
          if (parsed.slug === "taken") return Response.json({ error: { code: "conflict", message: "slug taken" } }, { status: 409 });
          return Response.json({ id: "mesh-id", slug: parsed.slug, name: parsed.name ?? parsed.slug }, { status: 201 });
        }
        if (req.method === "POST" && parts[3] === "members" && parts.length === 4) {
          n += 1;
          return Response.json({ id: `member-${n}`, pubkey: parsed.pubkey, displayName: parsed.displayName }, { status: 201 });
        }
        if (req.method === "DELETE" && parts[3] === "members") return new Response(null, { status: 204 });
        if (req.method === "POST" && parts[5] === "tokens") return Response.json({ token: "hook-token" }, { status: 201 });
        if (req.method === "GET" && parts[3] === "peers") return Response.json({ peers: [] });
        return Response.json({ error: { code: "not_found", message: "no route" } }, { status: 404 });
      },
    });
    baseUrl = `http://127.0.0.1:${admin.port}/`;
  });

  afterAll(async () => {
    await admin.stop(true);
  });

  test("typed calls send bearer auth and JSON, and throw on non-2xx", async () => {
    const client = new AdminClient(baseUrl, "secret");
    expect(await client.createMesh("m-abc", "ABC")).toEqual({ id: "mesh-id", slug: "m-abc", name: "ABC" });
    expect(requests.at(-1)).toMatchObject({ method: "POST", path: "/v1/meshes", auth: "Bearer secret" });
    await client.revokeMember("m-abc", "member 1");
    expect(requests.at(-1)).toMatchObject({ method: "DELETE", path: "/v1/meshes/m-abc/members/member%201" });
    expect(await client.createHookToken("m-abc", "x")).toBe("hook-token");
    expect(JSON.parse(requests.at(-1)?.body ?? "")).toEqual({ kind: "hook" });
    expect(await client.peers("m-abc")).toEqual([]);

    const err = await client.createMesh("taken").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdminError);
    expect((err as AdminError).status).toBe(409);
    expect((err as AdminError).message).toContain("409");
    expect((err as AdminError).message).toContain("slug taken");

    expect((await client.raw("GET", "/v1/meshes", undefined, null)).status).toBe(401);
    expect(requests.at(-1)?.auth).toBeNull();
    expect((await client.raw("GET", "/v1/meshes", undefined, "wrong")).status).toBe(401);
    expect((await client.raw("POST", "/v1/meshes", "{oops")).status).toBe(400);
    expect(requests.at(-1)?.body).toBe("{oops");
  });

  test("setupMesh creates a random-slug mesh and members with fresh identities and tags", async () => {
    const client = new AdminClient(baseUrl, "secret");
    const before = requests.length;
    const { mesh, members } = await setupMesh(client, { members: ["alice", "bob"], tags: { bob: ["ops"] } });
    expect(mesh.slug).toMatch(/^m-[0-9a-f]{10}$/);
    expect(members.map((m) => m.displayName)).toEqual(["alice", "bob"]);
    expect(members[0]?.identity.publicKey).toMatch(/^[0-9a-f]{64}$/);
    expect(members[0]?.identity.publicKey).not.toBe(members[1]?.identity.publicKey);
    const bodies = requests.slice(before + 1).map((r) => JSON.parse(r.body) as Record<string, unknown>);
    expect(bodies[0]).toEqual({ pubkey: members[0]?.pubkey, displayName: "alice" });
    expect(bodies[1]).toEqual({ pubkey: members[1]?.pubkey, displayName: "bob", tags: ["ops"] });

    const counted = await setupMesh(client, { members: 3 });
    expect(counted.members.map((m) => m.displayName)).toEqual(["member-1", "member-2", "member-3"]);
  });
});
