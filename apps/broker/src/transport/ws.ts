// The /ws endpoint: wire decoding and the frame dispatch. Frames of one
// connection are handled strictly in order: each is chained behind the
// previous one's promise, so a send right behind a hello waits for it.
import {
  CLOSE_CODES,
  helloFrame,
  sessionFrame,
  type ErrorFrame,
  type HelloErrorCode,
  type ServerFrame,
  type SessionFrame,
} from "@switchboard/protocol";
import type { ServerWebSocket, WebSocketHandler } from "bun";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { DeliveryPump } from "../services/delivery.ts";
import type { HelloService } from "../services/hello.ts";
import type { MeshService } from "../services/mesh.ts";
import type { Messaging } from "../services/messaging.ts";
import type { PresenceService } from "../services/presence.ts";
import type { LocalPresence, SessionRegistry } from "../services/sessions.ts";
import type { StatusService } from "../services/status.ts";

export interface SocketData {
  connectionId: string;
  chain: Promise<void>;
  /** Sends and acks still being committed; other frames wait for them. */
  pipeline: Set<Promise<void>>;
  helloTimer?: Timer;
  presence?: LocalPresence;
  closed: boolean;
}

type Socket = ServerWebSocket<SocketData>;

export interface WsDeps {
  log: Logger;
  metrics: Metrics;
  maxMessageBytes: number;
  helloTimeoutMs: number;
  instanceId: string;
  sessions: SessionRegistry;
  hello: HelloService;
  messaging: Messaging;
  pump: DeliveryPump;
  status: StatusService;
  mesh: MeshService;
  presence: PresenceService;
}

function issueText(error: { issues: Array<{ path: PropertyKey[]; message: string }> }): string {
  const issue = error.issues[0];
  if (!issue) return "invalid frame";
  return issue.path.length > 0 ? `${issue.path.map(String).join(".")}: ${issue.message}` : issue.message;
}

function decode(raw: string | Buffer): unknown {
  try {
    return JSON.parse(typeof raw === "string" ? raw : raw.toString("utf8"));
  } catch {
    return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

export function createWsHandler(deps: WsDeps) {
  const { log, metrics, sessions } = deps;
  const open = new Set<Socket>();
  let shuttingDown = false;

  const reply = (ws: Socket, frame: ServerFrame | Omit<ErrorFrame, "reqId">, reqId?: string) => {
    ws.send(JSON.stringify(reqId === undefined ? frame : { ...frame, reqId }));
  };

  const refuse = (ws: Socket, code: HelloErrorCode, message: string, reqId?: string) => {
    clearTimeout(ws.data.helloTimer);
    metrics.connectionsRejected.labels(code).inc();
    log.info({ connectionId: ws.data.connectionId, code }, "ws hello refused");
    reply(ws, { type: "error", code, message }, reqId);
    ws.close(CLOSE_CODES.policy, code);
  };

  async function handleHello(ws: Socket, parsed: unknown): Promise<void> {
    const reqId = isObject(parsed) && typeof parsed.reqId === "string" ? parsed.reqId.slice(0, 64) : undefined;
    if (!isObject(parsed)) return refuse(ws, "malformed", "the frame is not a JSON object");
    if (parsed.type !== "hello") return refuse(ws, "no_hello", "the first frame must be a hello", reqId);
    const frame = helloFrame.safeParse(parsed);
    if (!frame.success) return refuse(ws, "malformed", issueText(frame.error), reqId);

    const outcome = await deps.hello.admit(frame.data);
    if (!outcome.ok) return refuse(ws, outcome.code, outcome.message, reqId);
    clearTimeout(ws.data.helloTimer);
    const p = outcome.presence;
    if (ws.data.closed) {
      // The peer left while it was being admitted.
      await deps.presence.disconnect(p, "closed during hello");
      return;
    }
    const presence: LocalPresence = {
      presenceId: p.presenceId,
      memberId: p.memberId,
      meshId: p.meshId,
      pubkey: frame.data.pubkey,
      sessionId: frame.data.sessionId,
      displayName: p.displayName,
      role: p.role,
      socket: ws,
      inflight: new Map(),
      closed: false,
    };
    if (p.replaced) deps.presence.closeLocal(p.replaced.id, CLOSE_CODES.replaced, "replaced");
    sessions.add(presence);
    ws.data.presence = presence;
    metrics.connectionsTotal.inc();
    metrics.connectionsActive.inc();
    reply(
      ws,
      {
        type: "hello_ack",
        presenceId: p.presenceId,
        memberId: p.memberId,
        meshId: p.meshId,
        displayName: p.displayName,
        status: p.status,
        serverTime: Date.now(),
      },
      reqId,
    );
    log.info(
      { connectionId: ws.data.connectionId, presenceId: p.presenceId, memberId: p.memberId, meshId: p.meshId, sessionId: presence.sessionId },
      "ws hello",
    );
    deps.pump.wake([p.memberId]);
  }

  async function handleFrame(ws: Socket, presence: LocalPresence, frame: SessionFrame): Promise<void> {
    switch (frame.type) {
      case "send":
        return reply(ws, await deps.messaging.send(presence, frame), frame.reqId);
      case "client_ack":
        return deps.pump.ack(presence, frame.messageIds);
      case "set_status": {
        const result = await deps.status.apply(presence.presenceId, { status: frame.status, source: frame.source });
        if (!result) return reply(ws, { type: "error", code: "internal", message: "this presence has ended" }, frame.reqId);
        log.info(
          { presenceId: presence.presenceId, status: result.status, source: frame.source, applied: result.applied },
          "ws set_status",
        );
        return reply(ws, { type: "status", status: result.status, statusSource: result.statusSource }, frame.reqId);
      }
      case "join":
      case "leave": {
        const joined = frame.type === "join";
        await (joined ? deps.mesh.join : deps.mesh.leave).call(deps.mesh, presence.meshId, frame.channel, presence.memberId);
        return reply(ws, { type: "ack", channel: frame.channel, joined }, frame.reqId);
      }
      case "list_peers":
        return reply(ws, { type: "peers", peers: await deps.mesh.peers(presence.meshId) }, frame.reqId);
      case "ping":
        return reply(ws, { type: "pong", serverTime: Date.now() }, frame.reqId);
    }
  }

  async function handleSession(ws: Socket, presence: LocalPresence, parsed: unknown): Promise<void> {
    if (!isObject(parsed)) return reply(ws, { type: "error", code: "invalid", message: "the frame is not a JSON object" });
    const reqId = typeof parsed.reqId === "string" ? parsed.reqId.slice(0, 64) : undefined;
    const frame = sessionFrame.safeParse(parsed);
    if (!frame.success) {
      const message = parsed.type === "hello" ? "hello was already accepted on this connection" : issueText(frame.error);
      if (parsed.type === "send") metrics.messagesRejected.labels("invalid").inc();
      const id = parsed.type === "send" && typeof parsed.id === "string" ? { id: parsed.id } : {};
      return reply(ws, { type: "error", code: "invalid", message, ...id }, reqId);
    }
    const work = async () => {
      try {
        await handleFrame(ws, presence, frame.data);
      } catch (error) {
        log.error({ err: error, presenceId: presence.presenceId, frame: frame.data.type }, "frame failed");
        const id = frame.data.type === "send" && frame.data.id ? { id: frame.data.id } : {};
        reply(ws, { type: "error", code: "internal", message: "the broker could not handle this frame", ...id }, reqId);
      }
    };
    // Durable sends and acks enter their group commit in arrival order and
    // need not wait for the previous commit: the next frame may join the same
    // batch. Any other frame first waits for them, so its effects still come
    // after theirs.
    const pipelined = (frame.data.type === "send" && !frame.data.ephemeral) || frame.data.type === "client_ack";
    if (pipelined) {
      const pending = work();
      ws.data.pipeline.add(pending);
      void pending.finally(() => ws.data.pipeline.delete(pending));
      return;
    }
    await Promise.all(ws.data.pipeline);
    await work();
  }

  const handlers: WebSocketHandler<SocketData> = {
    maxPayloadLength: deps.maxMessageBytes,
    open(ws) {
      open.add(ws);
      ws.data.helloTimer = setTimeout(() => {
        if (!ws.data.presence && !ws.data.closed) refuse(ws, "hello_timeout", `no hello within ${deps.helloTimeoutMs} ms`);
      }, deps.helloTimeoutMs);
    },
    message(ws, raw) {
      ws.data.chain = ws.data.chain
        .then(async () => {
          if (ws.data.closed) return;
          const parsed = decode(raw);
          const presence = ws.data.presence;
          if (presence) await handleSession(ws, presence, parsed);
          else await handleHello(ws, parsed);
        })
        .catch((error) => {
          log.error({ err: error, connectionId: ws.data.connectionId }, "ws frame failed");
          if (!ws.data.presence && !ws.data.closed) {
            reply(ws, { type: "error", code: "internal", message: "the broker could not admit this hello" });
            ws.close(1011, "internal");
          }
        });
    },
    close(ws, code, reason) {
      ws.data.closed = true;
      clearTimeout(ws.data.helloTimer);
      open.delete(ws);
      const presence = ws.data.presence;
      log.info({ connectionId: ws.data.connectionId, presenceId: presence?.presenceId, code, reason }, "ws close");
      if (!presence) return;
      sessions.remove(presence);
      metrics.connectionsActive.dec();
      // On shutdown the instance ends all its presences in one statement.
      if (shuttingDown) return;
      deps.presence
        .disconnect(presence, `closed ${code}`)
        .catch((error) => log.error({ err: error, presenceId: presence.presenceId }, "disconnect failed"));
    },
  };

  return {
    handlers,
    newSocketData: (): SocketData => ({
      connectionId: crypto.randomUUID(),
      chain: Promise.resolve(),
      pipeline: new Set(),
      closed: false,
    }),
    closeAll(code: number, reason: string) {
      shuttingDown = true;
      for (const ws of open) ws.close(code, reason);
    },
  };
}
