// A webhook endpoint for tests: a real Bun.serve on loopback that records
// every request (headers and raw body, in arrival order) and answers as the
// test's script says — a status, a delay, a moment the test decides, or no
// server at all (stop() and start() again on the same port to refuse
// connections for a while).
import type { Server } from "bun";

export interface ReceivedRequest {
  at: number;
  path: string;
  /** The query as sent (`?…`), or "". */
  query: string;
  headers: Headers;
  body: string;
}

/** What to answer a request with: a status after an optional delay, and once `until` settles if given. */
export interface Answer {
  status: number;
  delayMs?: number;
  until?: Promise<unknown>;
  headers?: Record<string, string>;
}

export type Script = (request: ReceivedRequest, index: number) => Answer;

export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  /** Requests being answered right now, and the most there ever were at once. */
  inFlight = 0;
  maxInFlight = 0;
  script: Script = () => ({ status: 204 });
  private server: Server<undefined> | null = null;
  private readonly waiters = new Set<() => void>();

  private constructor(public port: number) {}

  static async start(script?: Script, port = 0): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver(port);
    if (script) receiver.script = script;
    receiver.listen();
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get listening(): boolean {
    return this.server !== null;
  }

  /** Listens again on the same port (after stop()). */
  listen(): void {
    if (this.server) return;
    this.server = Bun.serve({
      port: this.port,
      hostname: "127.0.0.1",
      fetch: async (req) => {
        const { pathname, search } = new URL(req.url);
        const received: ReceivedRequest = { at: Date.now(), path: pathname, query: search, headers: req.headers, body: await req.text() };
        const index = this.requests.length;
        this.requests.push(received);
        this.inFlight++;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
        for (const wake of this.waiters) wake();
        try {
          const answer = this.script(received, index);
          if (answer.delayMs) await Bun.sleep(answer.delayMs);
          if (answer.until) await answer.until.catch(() => {});
          return new Response(null, { status: answer.status, headers: answer.headers });
        } finally {
          this.inFlight--;
        }
      },
    });
    this.port = this.server.port ?? this.port;
  }

  /** Stops listening: connections are refused until listen(). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    await server?.stop(true);
  }

  /** Resolves once check() holds over the requests received, re-checked on each new request. */
  waitFor(check: (requests: ReceivedRequest[]) => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const wake = () => {
        if (!check(this.requests)) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${this.requests.length} request(s) received`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
      };
      this.waiters.add(wake);
      wake();
    });
  }
}
