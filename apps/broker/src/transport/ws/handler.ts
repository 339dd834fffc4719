// The /ws endpoint's socket lifecycle: open (hello timer), message (the
// connection's frame pipeline: admission first, then the frame table), drain
// (backpressure cleared), close (the presence ends).
import { issueText, sessionFrame, CLOSE_CODES } from "@switchboard/protocol";
import type { WebSocketHandler } from "bun";
import type { Logger } from "../../log.ts";
import type { Metrics } from "../../metrics.ts";
import type { DbHealth } from "../../services/db-health.ts";
import type { DeliveryPump } from "../../services/delivery/pump.ts";
import type { LocalPresence } from "../../services/local-presences.ts";
import type { PresenceLifecycle } from "../../services/presence-lifecycle.ts";
import { END_CLOSE } from "../errors.ts";
import { admit, failHello, refuseHello, type AdmissionDeps } from "./admission.ts";
import { closeSocket, newConnection, reply, replyLater, type Connection, type Socket } from "./connection.ts";
import { dispatch, frameHandlers, overlaps, type FrameDeps } from "./frame-handlers.ts";
import type { InflightBudget, InflightLimits, StepContext } from "./pipeline.ts";
import { isRefusal } from "./refusals.ts";
import { SilentSockets } from "./silent-sockets.ts";
import { decodeFrame, reqIdOf, type DecodedFrame, type Reply } from "./wire.ts";

export interface WsDeps extends Omit<AdmissionDeps, "accepting">, FrameDeps {
  log: Logger;
  metrics: Metrics;
  pump: DeliveryPump;
  lifecycle: PresenceLifecycle;
  /** A frame that failed because the database went away is a warning: the outage itself is logged where it is seen. */
  dbHealth: DbHealth;
  /** What one connection, and all of them together, may have read and not finished before reading stops. */
  inflight: InflightLimits;
  inflightBudget: InflightBudget;
  /** Bytes a socket may buffer unsent; past it a push is dropped (and requeued). */
  socketBufferBytes: number;
  /** Frames one connection may have refused in a minute; past it the socket is closed. */
  maxRefusedFramesPerMin: number;
  /** How long a peer may send nothing (not even the pong to a ping) before its connection is dropped. */
  silentPeerMs: number;
}

export function createWsHandler(deps: WsDeps) {
  const { log, metrics } = deps;
  const failed = (error: unknown, fields: Record<string, unknown>, msg: string): void =>
    deps.dbHealth.unavailable(error) ? log.warn({ err: error, ...fields }, msg) : log.error({ err: error, ...fields }, msg);
  const handlers = frameHandlers(deps);
  const open = new Set<Socket>();
  /** Shutdown began (the drain): new sockets are refused. */
  let refusing = false;
  /** The sockets are being closed: the instance ends their presences in one statement of its own. */
  let closingAll = false;
  const admission: AdmissionDeps = { ...deps, accepting: () => !refusing };
  // Monotonic: a wall clock stepped back would keep silent peers for as long.
  const monotonic = () => performance.now();
  const silent = new SilentSockets(open, {
    silenceMs: deps.silentPeerMs,
    clock: monotonic,
    dropping: (ws, quietMs) => {
      metrics.connectionsSilent.inc();
      log.info({ connectionId: ws.data.id, presenceId: ws.data.presence?.presenceId, quietMs }, "ws silent");
    },
  });
  const heard = (ws: Socket) => {
    ws.data.heardAt = monotonic();
  };

  /**
   * Writes the answer (`later`: with the other answers of its batch);
   * a connection refused too often in a minute is closed with 1008 and the
   * refusal's code.
   */
  function answer(ws: Socket, frame: Reply, reqId: string | undefined, later = false): void {
    // Nobody hears it: said at debug, for whoever wonders where an answer went.
    if (ws.data.closed) log.debug({ connectionId: ws.data.id, reqId, type: frame.type }, "ws answer after close");
    (later ? replyLater : reply)(ws, frame, reqId);
    if (!isRefusal(frame) || ws.data.closed || ws.data.ending) return;
    if (!ws.data.refusals.add(deps.clock(), deps.maxRefusedFramesPerMin)) return;
    const message = `more than ${deps.maxRefusedFramesPerMin} frames refused in a minute; closing`;
    // The frames it sent after this one are dropped rather than answered. The
    // sends already being written are answered first: one stored and left
    // unanswered would be sent again, and stored twice if it has no id.
    ws.data.ending = true;
    void ws.data.pipeline.underWay().then(() => {
      if (ws.data.closed) return;
      reply(ws, { type: "error", code: frame.code, message });
      ws.data.closed = true;
      closeSocket(ws, CLOSE_CODES.policy, frame.code);
    });
  }

  async function onSessionFrame(ws: Socket, presence: LocalPresence, decoded: DecodedFrame, step: StepContext): Promise<void> {
    if (!decoded.ok) return answer(ws, { type: "error", code: "invalid", message: decoded.message }, undefined);
    const raw = decoded.frame;
    const reqId = reqIdOf(raw);
    const parsed = sessionFrame.safeParse(raw);
    if (!parsed.success) {
      const message = raw.type === "hello" ? "hello was already accepted on this connection" : issueText(parsed.error, raw, "frame");
      if (raw.type === "send") metrics.messagesRejected.labels("invalid").inc();
      const id = raw.type === "send" && typeof raw.id === "string" ? { id: raw.id } : {};
      return answer(ws, { type: "error", code: "invalid", message, ...id }, reqId);
    }
    const frame = parsed.data;
    // The answers of a batch's sends and acks go out together.
    const later = overlaps(frame);
    const work = async () => {
      try {
        const outcome = await dispatch(handlers, deps.limits, presence, frame);
        if (outcome === undefined) return;
        if ("afterReply" in outcome) {
          answer(ws, outcome.reply, reqId);
          outcome.afterReply();
        } else answer(ws, outcome, reqId, later);
      } catch (error) {
        failed(error, { presenceId: presence.presenceId, frame: frame.type }, "frame failed");
        const id = frame.type === "send" && frame.id ? { id: frame.id } : {};
        answer(ws, { type: "error", code: "internal", message: "the broker could not handle this frame", ...id }, reqId, later);
      }
    };
    if (later) return step.overlap(work());
    await step.settled();
    await work();
  }

  // A frame read before the socket closed but reached only after: an ack
  // still counts (without it its message comes again); anything else is
  // dropped, as nobody is left to answer (an unanswered send is sent again).
  function afterClose(presence: LocalPresence | undefined, raw: string | Buffer, step: StepContext): void {
    if (!presence) return;
    const decoded = decodeFrame(raw);
    const parsed = sessionFrame.safeParse(decoded.ok ? decoded.frame : null);
    if (!parsed.success || parsed.data.type !== "client_ack") return;
    // Handled as on an open socket: within the ack limit (closing is no way
    // around it), and overlapping, so the acks behind it join its commit
    // rather than waiting for it one by one. Its refusal, if any, has nobody
    // to go to.
    const work = handlers.client_ack(presence, parsed.data).then(
      () => undefined,
      (error: unknown) => failed(error, { presenceId: presence.presenceId, frame: "client_ack" }, "frame failed"),
    );
    step.overlap(work);
  }

  const socketHandlers: WebSocketHandler<Connection> = {
    maxPayloadLength: deps.maxMessageBytes,
    backpressureLimit: deps.socketBufferBytes,
    closeOnBackpressureLimit: false,
    open(ws) {
      heard(ws);
      open.add(ws);
      ws.data.pipeline.attach(ws);
      ws.data.helloTimer = setTimeout(() => {
        if (!ws.data.presence && !ws.data.closed) refuseHello(deps, ws, "hello_timeout", `no hello within ${deps.helloTimeoutMs} ms`);
      }, deps.helloTimeoutMs);
    },
    message(ws, raw) {
      heard(ws);
      ws.data.pipeline.next(
        raw,
        async (step) => {
          if (ws.data.closed || ws.data.ending) return afterClose(ws.data.presence, raw, step);
          const frame = decodeFrame(raw);
          const presence = ws.data.presence;
          if (presence) await onSessionFrame(ws, presence, frame, step);
          else await admit(admission, ws, frame);
        },
        (error) => {
          failed(error, { connectionId: ws.data.id }, "ws frame failed");
          if (!ws.data.presence && !ws.data.closed) failHello(deps, ws, "the broker could not admit this hello");
        },
      );
    },
    ping: heard,
    pong: heard,
    drain(ws) {
      // Its side took what was written: it is there.
      heard(ws);
      const presence = ws.data.presence;
      if (presence && presence.congestedSince !== null) deps.pump.drained(presence);
    },
    close(ws, code, reason) {
      ws.data.closed = true;
      ws.data.pipeline.detach();
      clearTimeout(ws.data.helloTimer);
      if (ws.data.pendingHello) {
        ws.data.pendingHello = false;
        deps.gate.settled(ws.data.address);
      }
      open.delete(ws);
      const presence = ws.data.presence;
      const fields = { connectionId: ws.data.id, presenceId: presence?.presenceId, code, reason };
      // Sockets that never said hello cost an attacker nothing to open by the
      // thousand: their closes are debug, so they cannot flood the log.
      if (!presence) return log.debug(fields, "ws close");
      log.info(fields, "ws close");
      metrics.connectionsActive.dec();
      // A peer leaving by itself during the drain is ended as ever: its leases
      // go back now, for its other presences, not when the instance stops.
      if (closingAll) return deps.lifecycle.forget(presence);
      deps.lifecycle
        .left(presence, `closed ${code}`, ws.data.pipeline.finished())
        .catch((error) => log.error({ err: error, presenceId: presence.presenceId }, "disconnect failed"));
    },
  };

  return {
    handlers: socketHandlers,
    /** False once shutdown began: new sockets are refused rather than admitted into a stopping instance. */
    get accepting(): boolean {
      return !refusing;
    },
    newConnection: (address: string) => newConnection(address, deps.inflight, deps.inflightBudget),
    /** Shutdown began: new sockets are refused, and so are hellos on open ones; admitted ones go on until closeAll. */
    refuseNew() {
      refusing = true;
    },
    /** Shutdown: every socket closes with 1001; the instance ends its presences in one statement. */
    closeAll() {
      refusing = true;
      closingAll = true;
      silent.stop();
      const { code, reason } = END_CLOSE.shutdown;
      for (const ws of open) closeSocket(ws, code, reason);
    },
  };
}
