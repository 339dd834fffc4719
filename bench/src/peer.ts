// A lean load-generator peer: signed hello, sends stamped with their send
// time, pushes acked at once (or on demand) and timed against that stamp.
import { audienceOf, signHello } from "@switchboard/protocol";
import { now } from "./clock.ts";

export interface BenchIdentity {
  secretKey: string;
  publicKey: string;
}

export interface Stamp {
  /** The send time, on the bench's clock (clock.ts). */
  t: number;
  id: string;
}

/** A fresh stamp and the payload that carries it: what a bench message holds, whatever the system. */
export function stamped(): { stamp: Stamp; payload: string } {
  const stamp: Stamp = { t: now(), id: crypto.randomUUID() };
  return { stamp, payload: Buffer.from(JSON.stringify(stamp)).toString("base64") };
}

export function readStamp(payload: string): Stamp | null {
  try {
    return JSON.parse(Buffer.from(payload, "base64").toString("utf8")) as Stamp;
  } catch {
    return null;
  }
}

/** What the load generator drives: a Switchboard peer, or a peer of the system it is compared with. */
export interface LoadPeer {
  /** What other peers name to reach this one. */
  readonly address: string;
  send(to: string, priority?: "now" | "next" | "low"): Stamp;
  close(): void;
}

export interface PeerHooks {
  onPush(messageId: string, stamp: Stamp | null, attempt: number): void;
  onAck(id: string, messageId: string | null, duplicate: boolean, at: number): void;
  onError(id: string | undefined, code: string): void;
}

export class BenchPeer implements LoadPeer {
  private pendingAcks: string[] = [];
  private ackTimer: Timer | null = null;
  autoAck = true;

  private constructor(
    readonly ws: WebSocket,
    readonly identity: BenchIdentity,
  ) {}

  get address(): string {
    return this.identity.publicKey;
  }

  static async connect(url: string, meshId: string, identity: BenchIdentity, hooks: PeerHooks): Promise<BenchPeer> {
    // Signed before the socket exists, so its open event cannot fire unheard.
    // Signed for the broker it dials, as the SDK signs: two signatures, each verified.
    const audience = audienceOf(url) ?? undefined;
    const hello = await signHello(identity.secretKey, { meshId, sessionId: crypto.randomUUID(), audience });
    const ws = new WebSocket(url);
    const peer = new BenchPeer(ws, identity);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("hello timed out")), 30_000);
      ws.onopen = () => ws.send(JSON.stringify({ type: "hello", ...hello }));
      ws.onerror = () => reject(new Error("socket error"));
      ws.onclose = (e) => reject(new Error(`closed ${e.code} ${e.reason}`));
      ws.onmessage = (event) => {
        const frame = JSON.parse(String(event.data)) as Record<string, unknown>;
        if (frame.type === "hello_ack") {
          clearTimeout(timer);
          ws.onmessage = (e) => peer.handle(JSON.parse(String(e.data)) as Record<string, unknown>, hooks);
          ws.onclose = null;
          resolve();
        } else if (frame.type === "error") {
          clearTimeout(timer);
          reject(new Error(`hello refused: ${String(frame.code)}`));
        }
      };
    });
    return peer;
  }

  private handle(frame: Record<string, unknown>, hooks: PeerHooks): void {
    if (frame.type === "push") {
      const messageId = String(frame.messageId);
      hooks.onPush(messageId, readStamp(String(frame.ciphertext)), Number(frame.attempt));
      if (this.autoAck) this.queueAck(messageId);
    } else if (frame.type === "ack" && typeof frame.id === "string") {
      hooks.onAck(frame.id, typeof frame.messageId === "string" ? frame.messageId : null, frame.duplicate === true, now());
    } else if (frame.type === "error") {
      hooks.onError(typeof frame.id === "string" ? frame.id : undefined, String(frame.code));
    }
  }

  queueAck(messageId: string): void {
    this.pendingAcks.push(messageId);
    if (this.pendingAcks.length >= 500) this.flushAcks();
    else this.ackTimer ??= setTimeout(() => this.flushAcks(), 5);
  }

  flushAcks(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    while (this.pendingAcks.length > 0) {
      const ids = this.pendingAcks.splice(0, 1000);
      this.ws.send(JSON.stringify({ type: "client_ack", messageIds: ids }));
    }
  }

  send(targetSpec: string, priority: "now" | "next" | "low" = "next"): Stamp {
    const { stamp, payload } = stamped();
    this.ws.send(JSON.stringify({ type: "send", targetSpec, priority, nonce: "bench", ciphertext: payload, id: stamp.id }));
    return stamp;
  }

  setStatus(status: "idle" | "working" | "dnd"): void {
    this.ws.send(JSON.stringify({ type: "set_status", status }));
  }

  close(): void {
    this.flushAcks();
    this.ws.close(1000, "bench done");
  }
}
