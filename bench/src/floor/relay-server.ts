// The floor's relay: `bun bench/src/floor/relay-server.ts`. It does the
// socket work the broker does for a message and nothing else — no database,
// no validation beyond JSON: a signed hello is checked (both of its
// signatures, when it names its broker) and answered, a send
// becomes a push to each recipient and an ack to its sender, client acks are
// read and dropped. Prints {"event":"listening","port":N} once it listens.
import { helloAudienceSigningText, helloSigningText, verifyText } from "@switchboard/protocol";
import type { ServerWebSocket } from "bun";

interface Conn {
  mesh: string;
  pubkey: string;
}

type Socket = ServerWebSocket<Conn>;

/** mesh → pubkey → socket */
const meshes = new Map<string, Map<string, Socket>>();

/** A hello signed for its broker too carries a second signature, which the broker verifies as well. */
async function audienceVerifies(frame: Record<string, unknown>, mesh: string, pubkey: string, sessionId: string, timestamp: number): Promise<boolean> {
  const { audience, audienceSignature } = frame;
  if (audience === undefined && audienceSignature === undefined) return true;
  if (typeof audience !== "string" || typeof audienceSignature !== "string") return false;
  return verifyText(pubkey, audienceSignature, helloAudienceSigningText(audience, mesh, pubkey, sessionId, timestamp));
}

async function hello(ws: Socket, frame: Record<string, unknown>): Promise<void> {
  const [mesh, pubkey, sessionId, timestamp, signature] = [frame.meshId, frame.pubkey, frame.sessionId, frame.timestamp, frame.signature];
  const valid =
    typeof mesh === "string" && typeof pubkey === "string" && typeof sessionId === "string" &&
    typeof timestamp === "number" && typeof signature === "string" &&
    (await verifyText(pubkey, signature, helloSigningText(mesh, pubkey, sessionId, timestamp))) &&
    (await audienceVerifies(frame, mesh, pubkey, sessionId, timestamp));
  if (!valid) {
    ws.send(JSON.stringify({ type: "error", code: "bad_signature" }));
    ws.close(4001, "bad hello");
    return;
  }
  ws.data = { mesh, pubkey };
  let peers = meshes.get(mesh);
  if (!peers) meshes.set(mesh, (peers = new Map()));
  peers.set(pubkey, ws);
  ws.send(JSON.stringify({ type: "hello_ack", presenceId: crypto.randomUUID(), memberId: pubkey, meshId: mesh, status: "idle" }));
}

function send(ws: Socket, frame: Record<string, unknown>): void {
  const peers = meshes.get(ws.data.mesh);
  const target = String(frame.targetSpec);
  const recipients = target === "*" ? [...(peers?.values() ?? [])].filter((p) => p !== ws) : [peers?.get(target)].filter((p) => p !== undefined);
  const messageId = crypto.randomUUID();
  const push = JSON.stringify({
    type: "push",
    messageId,
    meshId: ws.data.mesh,
    senderPubkey: ws.data.pubkey,
    targetSpec: target,
    priority: frame.priority,
    nonce: frame.nonce,
    ciphertext: frame.ciphertext,
    createdAt: new Date().toISOString(),
    replyTo: null,
    attempt: 1,
  });
  for (const r of recipients) r.send(push);
  ws.send(JSON.stringify({ type: "ack", id: frame.id ?? null, messageId, queued: true, recipients: recipients.length }));
}

const server = Bun.serve<Conn>({
  hostname: "127.0.0.1",
  port: 0,
  fetch(req, srv) {
    return srv.upgrade(req, { data: { mesh: "", pubkey: "" } }) ? undefined : new Response("relay", { status: 426 });
  },
  websocket: {
    async message(ws, raw) {
      const frame = JSON.parse(String(raw)) as Record<string, unknown>;
      if (frame.type === "send" && ws.data.pubkey) send(ws, frame);
      else if (frame.type === "hello") await hello(ws, frame);
    },
    close(ws) {
      const peers = meshes.get(ws.data.mesh);
      if (peers?.get(ws.data.pubkey) === ws) peers.delete(ws.data.pubkey);
    },
  },
});

console.log(JSON.stringify({ event: "listening", port: server.port }));
