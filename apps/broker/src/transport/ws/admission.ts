// The first frame of a connection: it must be a hello, and an admitted hello
// makes the connection a presence. Refusals close with 1008 and the code.
import { CLOSE_CODES, helloSchemaFor, issueText, type HelloErrorCode, type HelloFrame } from "@switchboard/protocol";
import type { Logger } from "../../log.ts";
import type { Metrics } from "../../metrics.ts";
import { PushWindow } from "../../services/delivery/push-window.ts";
import type { ConnectionGate } from "../../services/connection-gate.ts";
import type { HelloOutcome, HelloService } from "../../services/hello.ts";
import type { LocalPresence } from "../../services/local-presences.ts";
import type { PresenceLifecycle } from "../../services/presence-lifecycle.ts";
import { ADMISSION_TIMEOUT_FACTOR, type Clock } from "../../services/timing.ts";
import { END_CLOSE, HELLO_REFUSED_CLOSE } from "../errors.ts";
import { closeSocket, reply, socketLink, type Socket } from "./connection.ts";
import { reqIdOf, type DecodedFrame } from "./wire.ts";

export interface AdmissionDeps {
  hello: HelloService;
  gate: ConnectionGate;
  lifecycle: PresenceLifecycle;
  metrics: Metrics;
  log: Logger;
  clock: Clock;
  /** Pushes a presence may have unacknowledged before the broker waits for acks, each for a lease of leaseSeconds. */
  pushWindow: { pushes: number; leaseSeconds: number };
  /** How long a socket may take to say hello (its admission then has ADMISSION_TIMEOUT_FACTOR times that). */
  helloTimeoutMs: number;
  /** The largest frame the socket takes (MAX_MESSAGE_BYTES), told in the hello_ack. */
  maxMessageBytes: number;
  /** How long a stored send's id is remembered (DELIVERED_RETENTION_SECONDS), told in the hello_ack. */
  idRetentionSeconds: number;
  /** False once shutdown began: no hello is admitted into a stopping instance. */
  accepting: () => boolean;
}

export function refuseHello(
  deps: Pick<AdmissionDeps, "metrics" | "log" | "gate">,
  ws: Socket,
  code: HelloErrorCode,
  message: string,
  reqId?: string,
  /** The hello it refuses, when it was well-formed (for the log), and whether the refusal was the client's doing. */
  refused: { hello?: { meshId: string; pubkey: string }; clientsDoing?: boolean } = {},
) {
  clearTimeout(ws.data.helloTimer);
  // A full mesh is not the client's doing; every other refusal (a member past
  // its own caps among them) counts against its address.
  if (refused.clientsDoing ?? true) deps.gate.refused(ws.data.address);
  deps.metrics.connectionsRejected.labels(code).inc();
  // A well-formed hello's mesh (as it named it), key and why: the full mesh
  // or member an operator looks for next, the key that is refused. The
  // client's address always: the one place it is named, as its refusals
  // count against it.
  const { hello } = refused;
  const about = hello === undefined ? {} : { meshId: hello.meshId, pubkey: hello.pubkey, detail: message };
  // A socket that never said hello is told so at debug, as its close is
  // (handler.ts): sockets opened by the thousand must not flood the log.
  const level = code === "hello_timeout" && hello === undefined ? "debug" : "info";
  deps.log[level]({ connectionId: ws.data.id, code, address: ws.data.address, ...about }, "ws hello refused");
  reply(ws, { type: "error", code, message }, reqId);
  closeSocket(ws, HELLO_REFUSED_CLOSE, code);
}

/**
 * A hello the broker failed to admit (its database away, the admission past
 * its time): error `internal`, close 1011, counted under `internal`. Not the
 * client's doing, so not counted against its address.
 */
export function failHello(deps: Pick<AdmissionDeps, "metrics">, ws: Socket, message: string, reqId?: string): void {
  clearTimeout(ws.data.helloTimer);
  deps.metrics.connectionsRejected.labels("internal").inc();
  reply(ws, { type: "error", code: "internal", message }, reqId);
  closeSocket(ws, CLOSE_CODES.internalError, "internal");
}

// A socket opened before the shutdown began whose hello comes during the
// drain: it closes as the instance's other sockets will, with nothing
// stored for it, and its peer connects to another instance. Not the
// client's doing, so not counted against its address.
function closeForShutdown(deps: Pick<AdmissionDeps, "metrics" | "log">, ws: Socket): void {
  clearTimeout(ws.data.helloTimer);
  ws.data.closed = true;
  deps.metrics.connectionsRejected.labels("unavailable").inc();
  deps.log.info({ connectionId: ws.data.id, code: "unavailable" }, "ws hello refused");
  const { code, reason } = END_CLOSE.shutdown;
  closeSocket(ws, code, reason);
}

export async function admit(deps: AdmissionDeps, ws: Socket, decoded: DecodedFrame): Promise<void> {
  if (!deps.accepting()) return closeForShutdown(deps, ws);
  if (!decoded.ok) return refuseHello(deps, ws, "malformed", decoded.message);
  const raw = decoded.frame;
  const reqId = reqIdOf(raw);
  if (raw.type !== "hello") return refuseHello(deps, ws, "no_hello", "the first frame must be a hello", reqId);
  const frame = helloSchemaFor(raw).safeParse(raw);
  if (!frame.success) return refuseHello(deps, ws, "malformed", issueText(frame.error, raw, "frame"), reqId);
  if (!deps.gate.helloBegins(ws.data.address)) {
    return refuseHello(deps, ws, "capacity", "too many refused hellos from this address; try again in a minute", reqId, { clientsDoing: false });
  }
  let outcome: HelloOutcome | null;
  try {
    outcome = await checkAndAdmit(deps, ws, frame.data, reqId);
  } finally {
    deps.gate.helloEnded(ws.data.address);
  }
  if (outcome === null) return;
  clearTimeout(ws.data.helloTimer);
  // A socket that closed meanwhile was left by its peer: nobody to answer.
  if (!outcome.ok && ws.data.closed) return;
  // Left out of its batch as shutdown began (a hello_timeout only the socket's going gives otherwise).
  if (!outcome.ok && outcome.code === "hello_timeout" && !deps.accepting()) return closeForShutdown(deps, ws);
  if (!outcome.ok) return refuseHello(deps, ws, outcome.code, outcome.message, reqId, { hello: frame.data, clientsDoing: !("meshFull" in outcome) });
  if (ws.data.pendingHello) {
    ws.data.pendingHello = false;
    deps.gate.settled(ws.data.address);
  }
  const admitted = outcome.presence;
  if (ws.data.closed) {
    // The peer left while it was being admitted. A socket here of the
    // session it replaced has no row any more: it goes all the same.
    if (admitted.replaced !== null) deps.lifecycle.end(admitted.replaced.id, "replaced");
    await deps.lifecycle.disconnect(admitted, "closed during hello");
    return;
  }
  const presence: LocalPresence = {
    presenceId: admitted.presenceId,
    memberId: admitted.memberId,
    meshId: admitted.meshId,
    pubkey: frame.data.pubkey,
    sessionId: frame.data.sessionId,
    displayName: admitted.displayName,
    role: admitted.role,
    link: socketLink(ws),
    window: new PushWindow(deps.pushWindow.pushes, deps.pushWindow.leaseSeconds, deps.clock),
    congestedSince: null,
    ended: false,
    ...(admitted.tokenExpiresAt === null ? {} : { tokenExpiresAt: admitted.tokenExpiresAt }),
  };
  ws.data.presence = presence;
  ws.data.backedUp = () => deps.lifecycle.backedUp(presence, deps.clock());
  deps.metrics.connectionsTotal.inc();
  deps.metrics.connectionsActive.inc();
  reply(
    ws,
    {
      type: "hello_ack",
      presenceId: admitted.presenceId,
      memberId: admitted.memberId,
      meshId: admitted.meshId,
      displayName: admitted.displayName,
      status: admitted.status,
      serverTime: deps.clock(),
      maxMessageBytes: deps.maxMessageBytes,
      leaseSeconds: deps.pushWindow.leaseSeconds,
      idRetentionSeconds: deps.idRetentionSeconds,
    },
    reqId,
  );
  deps.log.info(
    { connectionId: ws.data.id, presenceId: admitted.presenceId, memberId: admitted.memberId, meshId: admitted.meshId, sessionId: presence.sessionId },
    "ws hello",
  );
  // After the hello_ack is written: the first pushes follow it.
  deps.lifecycle.joined(presence, admitted.replaced?.id ?? null);
}

/** Checks a well-formed hello and admits it: its outcome, or null when the socket was closed for the shutdown instead. */
async function checkAndAdmit(deps: AdmissionDeps, ws: Socket, hello: HelloFrame, reqId: string | undefined): Promise<HelloOutcome | null> {
  // The hello came in time: its admission (a reconnect storm's queue, a
  // locked mesh) is not refused as hello_timeout. It has twice that long of
  // its own; past it the socket closes as the broker's failure, not counted
  // against the client's address, and a batch not yet begun leaves it out.
  clearTimeout(ws.data.helloTimer);
  ws.data.helloTimer = setTimeout(() => {
    if (ws.data.presence || ws.data.closed) return;
    deps.log.warn({ connectionId: ws.data.id }, "ws hello admission timed out");
    failHello(deps, ws, "the broker could not admit this hello in time; connect again", reqId);
  }, ADMISSION_TIMEOUT_FACTOR * deps.helloTimeoutMs);
  // Shutdown beginning while it waits leaves it out of its batch too.
  const checked = await deps.hello.check(hello, () => ws.data.closed || !deps.accepting());
  // Only a hello that proved its pubkey waits for the frames of the session's
  // socket here: one that did not is refused at once, whatever session it
  // names. The wait takes at most half the admission's time, so the admission
  // itself still has the other half.
  if (checked.ok) await deps.lifecycle.sessionSettled(hello.pubkey, hello.sessionId, deps.helloTimeoutMs);
  if (checked.ok && !deps.accepting()) {
    closeForShutdown(deps, ws);
    return null;
  }
  return checked.ok ? await deps.hello.admit(checked.checked) : checked;
}
