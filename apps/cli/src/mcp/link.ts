// The session's presence on the mesh: connects in the background (the broker
// may be down when Claude Code starts the server), keeps retrying until a
// hello is accepted, and then leaves reconnects to the SDK. Tools ask it for
// the client and get "unavailable" at once while there is none. It pings the
// broker now and then: a socket the broker dropped without the close reaching
// this end (a laptop that slept, a NAT that forgot the connection) would
// otherwise look open for good while its messages wait at the broker.
import { backoffDelay, isFinalHelloCode, SwitchboardClient, SwitchboardError, type ClientOptions } from "@switchboard/client";
import { ToolError } from "./errors.ts";
import type { Logger } from "./log.ts";

const RECONNECT = { minDelayMs: 250, maxDelayMs: 5000 };
/**
 * How long the link waits between pings. A ping written on a socket the
 * broker no longer has closes it (the SDK reconnects); one that goes
 * unanswered for the client's request timeout means a silent network: the
 * link connects anew.
 */
export const HEARTBEAT_MS = 15_000;

/** No retry can fix these: the broker's final hello refusals, and options the SDK refuses before it connects (`invalid`). */
function isFinal(code: string): boolean {
  return isFinalHelloCode(code) || code === "invalid";
}

export class BrokerLink {
  private current: SwitchboardClient | null = null;
  private failure: ToolError | null = null;
  private stopped = false;
  private wake: (() => void) | null = null;
  private heartbeat: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly options: ClientOptions,
    private readonly log: Logger,
    private readonly onClient: (client: SwitchboardClient) => void,
  ) {}

  /** Tries until connected (or refused for good, or stopped). */
  async start(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const client = await SwitchboardClient.connect({ ...this.options, reconnect: RECONNECT });
        if (this.stopped) {
          await client.close();
          return;
        }
        this.current = client;
        this.watch(client);
        this.beatLater(client);
        this.log.info({ presence_id: client.presenceId, session_id: this.options.sessionId }, "mcp connected");
        this.onClient(client);
        return;
      } catch (error) {
        const code = error instanceof SwitchboardError ? error.code : "unreachable";
        if (isFinal(code)) {
          const why = code === "invalid" ? "this server's connection options are not valid" : "the broker refused this member";
          this.failure = new ToolError(code, `${why}: ${(error as Error).message}`);
          this.log.error({ code, err: error }, "mcp hello refused");
          return;
        }
        this.log.warn({ code, attempt, err: error }, "mcp connect failed");
        await this.pause(backoffDelay(attempt, RECONNECT));
      }
    }
  }

  client(): SwitchboardClient {
    if (this.failure) throw this.failure;
    const client = this.current;
    if (client === null) throw new ToolError("unavailable", "not connected to the broker yet; retrying in the background");
    if (!client.connected) throw new ToolError("unavailable", "the connection to the broker is down; reconnecting in the background");
    return client;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.heartbeat);
    this.wake?.();
    await this.current?.close().catch(() => {});
  }

  private beatLater(client: SwitchboardClient): void {
    this.heartbeat = setTimeout(() => void this.beat(client), HEARTBEAT_MS);
  }

  private async beat(client: SwitchboardClient): Promise<void> {
    if (this.stopped || this.current !== client || this.failure) return;
    // While reconnecting (or ended) there is nothing to probe: the ping fails at once, unwritten.
    const silent = await client.ping().then(
      () => false,
      (error: unknown) => error instanceof SwitchboardError && error.code === "timeout",
    );
    if (this.stopped || this.current !== client) return;
    if (!silent) return this.beatLater(client);
    this.log.warn({ presence_id: client.presenceId }, "mcp connection silent; connecting anew");
    // Messages it handed over and that were not acked come again on the new
    // connection; the session's inbox knows them and notifies none twice.
    this.current = null;
    await client.close().catch(() => {});
    await this.start();
  }

  private watch(client: SwitchboardClient): void {
    client.on("close", (info) => {
      // A client given up for a silent one is closed here, not by the broker.
      if (this.stopped || this.current !== client) return;
      this.log.warn({ code: info.code, reason: info.reason, reconnecting: info.willReconnect }, "mcp disconnected");
      if (!info.willReconnect) {
        const code = info.code === 4000 ? "replaced" : info.code === 4002 ? "revoked" : "closed";
        this.failure = new ToolError(code, `the broker ended this session (${info.code} ${info.reason})`);
      }
    });
    client.on("reconnect", () => this.log.info({ presence_id: client.presenceId }, "mcp reconnected"));
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
