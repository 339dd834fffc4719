// Helpers for the SDK's tests: WebSockets that record the raw frames the SDK
// receives and sends, or that a test can drop, and a collector of a client's
// events.
import { afterEach } from "bun:test";
import { waitUntil, type SetupMember } from "@switchboard/testkit";
import { SwitchboardClient, type ClientOptions, type Message, type SwitchboardError } from "../src/index.ts";

export type RawFrame = Record<string, unknown>;

export interface TestClients {
  /** A client of `member` on `url()`, reconnecting within 20–200 ms; `extra` overrides any option. */
  connect(meshId: string, member: SetupMember, extra?: Partial<ClientOptions>): Promise<SwitchboardClient>;
  /** Closes `client` with the others: for one connected otherwise. */
  adopt(client: SwitchboardClient): SwitchboardClient;
  /** Closes every client so far, as the end of each test does. */
  closeAll(): Promise<void>;
}

/** The SDK clients of one test file, each closed at the end of its test. */
export function testClients(url: () => string): TestClients {
  const open: SwitchboardClient[] = [];
  const closeAll = async () => void (await Promise.all(open.splice(0).map((c) => c.close())));
  afterEach(closeAll);
  const adopt = (client: SwitchboardClient) => {
    open.push(client);
    return client;
  };
  return {
    async connect(meshId, member, extra = {}) {
      const client = await SwitchboardClient.connect({
        url: url(),
        meshId,
        secretKey: member.identity.secretKey,
        displayName: member.displayName,
        reconnect: { minDelayMs: 20, maxDelayMs: 200 },
        ...extra,
      });
      return adopt(client);
    },
    adopt,
    closeAll,
  };
}

/**
 * A WebSocket class that appends every received frame (parsed) to `frames` before the SDK sees it,
 * and every frame the SDK sends to `sent` when given.
 */
export function recordingWebSocket(frames: RawFrame[], sent?: RawFrame[]): typeof WebSocket {
  // Cast: Bun's WebSocket type has a constructor overload (options) the subclass does not repeat.
  return class RecordingWebSocket extends WebSocket {
    constructor(url: string | URL) {
      super(url);
      this.addEventListener("message", (event) => {
        if (typeof event.data === "string") frames.push(JSON.parse(event.data) as RawFrame);
      });
    }

    override send(data: Parameters<WebSocket["send"]>[0]): void {
      if (sent && typeof data === "string") sent.push(JSON.parse(data) as RawFrame);
      super.send(data);
    }
  } as typeof WebSocket;
}

export interface Collected {
  messages: Message[];
  errors: SwitchboardError[];
  closes: Array<{ code: number; reason: string; willReconnect: boolean }>;
  reconnects: number;
}

export function collect(client: SwitchboardClient): Collected {
  const out: Collected = { messages: [], errors: [], closes: [], reconnects: 0 };
  client.on("message", (m) => out.messages.push(m));
  client.on("error", (e) => out.errors.push(e));
  client.on("close", (c) => out.closes.push(c));
  client.on("reconnect", () => {
    out.reconnects++;
  });
  return out;
}

export const pushesOf = (frames: RawFrame[], messageId?: string) =>
  frames.filter((f) => f.type === "push" && (messageId === undefined || f.messageId === messageId));

/** A WebSocket class whose sockets a test can drop, whose hello signature it can spoil, and which records what the SDK sends. */
export function controllableWebSocket(): {
  WebSocket: typeof WebSocket;
  sockets: WebSocket[];
  hellos: number;
  spoilHello: boolean;
  /** The hello_ack reaches the SDK without maxMessageBytes, as from a broker that does not tell it. */
  hideFrameLimit: boolean;
  /** The hello_ack reaches the SDK without leaseSeconds, as from a broker that does not tell it: acks wait their whole ackDelayMs. */
  hideLease: boolean;
  /** While set, a hello is written only once this settles (a reconnect held open at its hello). */
  holdHellos: Promise<void> | null;
  /** Once: the socket that receives a frame this matches is closed right after the SDK has had it (then it is null again). */
  dropAfter: ((text: string) => boolean) | null;
  sent: RawFrame[];
} {
  const control = {
    WebSocket: WebSocket,
    sockets: [] as WebSocket[],
    hellos: 0,
    spoilHello: false,
    hideFrameLimit: false,
    hideLease: false,
    holdHellos: null as Promise<void> | null,
    dropAfter: null as ((text: string) => boolean) | null,
    sent: [] as RawFrame[],
  };
  control.WebSocket = class ControllableWebSocket extends WebSocket {
    constructor(url: string | URL) {
      super(url);
      control.sockets.push(this);
    }

    override addEventListener(type: string, listener: Parameters<WebSocket["addEventListener"]>[1], options?: boolean | AddEventListenerOptions): void {
      if (type !== "message" || listener === null) return super.addEventListener(type, listener, options);
      const deliver = (event: MessageEvent) => (typeof listener === "function" ? listener.call(this, event) : listener.handleEvent(event));
      super.addEventListener(
        "message",
        (event: MessageEvent) => {
          const text = typeof event.data === "string" ? event.data : "";
          if ((control.hideFrameLimit || control.hideLease) && text.includes('"type":"hello_ack"')) {
            const ack = JSON.parse(text) as Record<string, unknown>;
            if (control.hideFrameLimit) delete ack.maxMessageBytes;
            if (control.hideLease) delete ack.leaseSeconds;
            deliver(new MessageEvent("message", { data: JSON.stringify(ack) }));
          } else deliver(event);
          // Before the SDK's code awaiting that frame goes on: what it writes next finds the socket closing.
          if (control.dropAfter?.(text)) {
            control.dropAfter = null;
            this.close(3000, "test drop");
          }
        },
        options,
      );
    }

    override send(data: Parameters<WebSocket["send"]>[0]): void {
      if (typeof data === "string" && data.includes('"type":"hello"')) {
        control.hellos++;
        if (control.spoilHello) {
          const frame = JSON.parse(data) as { signature: string };
          frame.signature = `${frame.signature[0] === "0" ? "1" : "0"}${frame.signature.slice(1)}`;
          data = JSON.stringify(frame);
        }
      }
      if (typeof data === "string") control.sent.push(JSON.parse(data) as RawFrame);
      const held = typeof data === "string" && data.includes('"type":"hello"') ? control.holdHellos : null;
      if (held === null) return super.send(data);
      // A socket closed meanwhile takes nothing: the SDK has seen its close.
      void held.then(() => (this.readyState === WebSocket.OPEN ? super.send(data) : undefined));
    }
  } as typeof WebSocket;
  return control;
}

/** A controllable WebSocket class that also records every frame the SDK receives, and the acks it writes. */
export function recordingControllable(frames: RawFrame[], ackedIds: string[] = []) {
  const control = controllableWebSocket();
  const Base = control.WebSocket;
  control.WebSocket = class extends Base {
    constructor(url: string | URL) {
      super(url);
      this.addEventListener("message", (event) => {
        if (typeof event.data === "string") frames.push(JSON.parse(event.data) as RawFrame);
      });
    }

    override send(data: Parameters<WebSocket["send"]>[0]): void {
      if (typeof data === "string" && data.includes('"type":"client_ack"')) {
        ackedIds.push(...(JSON.parse(data) as { messageIds: string[] }).messageIds);
      }
      super.send(data);
    }
  } as typeof WebSocket;
  return control;
}

/** What a call fails with while the process `pid` is stopped (SIGSTOP); it goes on (SIGCONT) afterwards, whatever happened. */
export async function failureWhileStopped(pid: number, call: () => Promise<unknown>): Promise<unknown> {
  process.kill(pid, "SIGSTOP");
  try {
    return await call().then(
      () => null,
      (error: unknown) => error,
    );
  } finally {
    process.kill(pid, "SIGCONT");
  }
}

/**
 * Pings until a pong comes within the client's own request timeout: a broker
 * just resumed from SIGSTOP may answer its first pings later than a short
 * timeout allows. Frames are answered in order, so the pong also says every
 * frame written before it has been answered.
 */
export async function pingAnswered(client: SwitchboardClient): Promise<number> {
  const unlessTimeout = (error: unknown) => ((error as SwitchboardError).code === "timeout" ? undefined : Promise.reject(error));
  return waitUntil(() => client.ping().catch(unlessTimeout), 15_000, "a ping answered in time");
}

/**
 * A WebSocket class whose incoming frames pass `route` before the SDK has
 * them: it calls `deliver` now, later, or never.
 */
function routingWebSocket(route: (data: unknown, deliver: () => void) => void): typeof WebSocket {
  return class RoutingWebSocket extends WebSocket {
    override addEventListener(type: string, listener: Parameters<WebSocket["addEventListener"]>[1], options?: boolean | AddEventListenerOptions): void {
      if (type !== "message" || listener === null) return super.addEventListener(type, listener, options);
      const deliver = (event: Event) => (typeof listener === "function" ? listener.call(this, event) : listener.handleEvent(event));
      super.addEventListener("message", (event: MessageEvent) => route(event.data, () => deliver(event)), options);
    }
  } as typeof WebSocket;
}

/** A WebSocket class whose `pong` frames reach the SDK only delayMs after they came: a close()'s last acks stay unconfirmed that long. */
export function slowPongWebSocket(delayMs: number): typeof WebSocket {
  return routingWebSocket((data, deliver) => {
    if (typeof data === "string" && data.includes('"type":"pong"')) setTimeout(deliver, delayMs);
    else deliver();
  });
}

/**
 * A WebSocket server standing in for a broker the SDK does not fully know (a
 * newer one): it accepts every hello (with `helloAnswer`'s frame instead,
 * when given), and answers every other frame with what `answer` returns
 * (null: no answer). Stop it after the test.
 */
export function fakeBroker(
  answer: (frame: RawFrame) => RawFrame | null,
  helloAnswer?: (hello: RawFrame) => RawFrame,
): { url: string; stop(): Promise<void> } {
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("WebSocket only", { status: 426 })),
    websocket: {
      message(ws, data) {
        const frame = JSON.parse(String(data)) as RawFrame;
        const reply =
          frame.type === "hello"
            ? (helloAnswer?.(frame) ?? { type: "hello_ack", presenceId: crypto.randomUUID(), memberId: "fake-member", meshId: String(frame.meshId), displayName: "fake", status: "idle", serverTime: Date.now() })
            : answer(frame);
        if (reply) ws.send(JSON.stringify(reply));
      },
    },
  });
  return { url: `ws://127.0.0.1:${server.port}/ws`, stop: () => server.stop(true) };
}

/** A WebSocket class that never hands the SDK the broker's answers to sends (acks with a messageId): the sends are stored, their callers not told. */
export function noSendAcksWebSocket(): typeof WebSocket {
  return routingWebSocket((data, deliver) => {
    if (typeof data === "string" && data.includes('"type":"ack"') && data.includes('"messageId"')) return;
    deliver();
  });
}
