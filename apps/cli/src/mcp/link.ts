// The session's presence on the mesh: connects in the background (the broker
// may be down when Claude Code starts the server), keeps retrying until a
// hello is accepted, and then leaves reconnects to the SDK. Tools ask it for
// the client and get "unavailable" at once while there is none.
import { backoffDelay, isFinalHelloCode, SwitchboardClient, SwitchboardError, type ClientOptions, type CloseInfo } from "@switchboard/client";
import { ToolError } from "./errors.ts";
import type { Logger } from "./log.ts";

const RECONNECT = { minDelayMs: 250, maxDelayMs: 5000 };

/** No retry can fix these: the broker's final hello refusals, and options the SDK refuses before it connects (`invalid`). */
function isFinal(code: string): boolean {
  return isFinalHelloCode(code) || code === "invalid";
}

/**
 * Why the client ended for good, in words the model can act on: the server
 * does not reconnect, so each says what happened and what brings it back.
 * A reconnect whose hello was refused for good (the member revoked or the
 * mesh gone while the socket was down) ends with 1006 and the refusal's code
 * as reason: named as the first hello's refusal is, not as a session the
 * broker closed.
 */
/** What brings a server that does not reconnect back. */
const RESTART = "restart the server (/mcp in Claude Code, or a new session)";

function endedBy(info: CloseInfo, sessionId: string): ToolError {
  if (info.code === 1006 && isFinalHelloCode(info.reason)) {
    return new ToolError(info.reason, `the broker refused this member when reconnecting (${info.reason}); ${RESTART} once that is mended`);
  }
  if (info.code === 4000) {
    return new ToolError(
      "replaced",
      `another server connected with this session id ("${sessionId}") and took the session over: Claude Code runs this session twice ` +
        `(resumed in a second terminal, say), and this member's messages go to the other one now. This server does not reconnect; ` +
        `close one of the two (restarting this server with /mcp in Claude Code takes the session back from the other)`,
    );
  }
  if (info.code === 4002) {
    return new ToolError("revoked", `the broker ended this session: this member was revoked from the mesh; once it is a member again, ${RESTART}`);
  }
  return new ToolError("closed", `the broker ended this session (${info.code} ${info.reason}) and it does not reconnect: ${RESTART}`);
}

export class BrokerLink {
  private current: SwitchboardClient | null = null;
  private failure: ToolError | null = null;
  private started = false;
  /** Why the last connect or reconnect failed, for the tools to say while there is no connection. */
  private lastFailure: SwitchboardError | null = null;
  private stopped = false;
  private wake: (() => void) | null = null;

  constructor(
    /** With the session id the server said hello with: a takeover names it. */
    private readonly options: ClientOptions & { sessionId: string },
    private readonly log: Logger,
    private readonly onClient: (client: SwitchboardClient) => void,
  ) {}

  /**
   * Tries until connected (or refused for good, or stopped). Once: a second
   * start (a client that sends notifications/initialized twice) would connect
   * a second client of the same session id, which replaces the first.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const client = await SwitchboardClient.connect({ ...this.options, reconnect: RECONNECT });
        if (this.stopped) {
          await client.close();
          return;
        }
        this.current = client;
        this.lastFailure = null;
        this.watch(client);
        this.log.info({ presence_id: client.presenceId, session_id: this.options.sessionId }, "mcp connected");
        this.onClient(client);
        return;
      } catch (error) {
        const code = error instanceof SwitchboardError ? error.code : "unreachable";
        this.lastFailure = error instanceof SwitchboardError ? error : new SwitchboardError(code, String(error));
        if (isFinal(code)) {
          const [why, mend] =
            code === "invalid"
              ? ["this server's connection options are not valid", "once its options are mended"]
              : ["the broker refused this member", "once that is mended"];
          this.failure = new ToolError(code, `${why}: ${(error as Error).message}; this server does not try again: ${RESTART} ${mend}`);
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
    if (client === null) throw new ToolError("unavailable", `not connected to the broker yet; retrying in the background${this.lastTry()}`);
    if (!client.connected) throw new ToolError("unavailable", `the connection to the broker is down; reconnecting in the background${this.lastTry()}`);
    return client;
  }

  /** A broker that is not running, a URL that names none, a clock it refuses: the model can tell the user which. */
  private lastTry(): string {
    return this.lastFailure === null ? "" : ` (last try: ${this.lastFailure.code}: ${this.lastFailure.message})`;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.current?.close().catch(() => {});
  }

  private watch(client: SwitchboardClient): void {
    client.on("close", (info) => {
      if (this.stopped) return;
      this.log.warn({ code: info.code, reason: info.reason, reconnecting: info.willReconnect }, "mcp disconnected");
      if (!info.willReconnect) this.failure = endedBy(info, this.options.sessionId);
    });
    // Each failed reconnect with its reason: a broker down, a token refused, the member revoked.
    client.on("connectFailed", (f) => {
      this.lastFailure = f.error;
      if (!this.stopped) this.log.warn({ code: f.error.code, attempt: f.attempt, retrying: f.willRetry, err: f.error }, "mcp reconnect failed");
    });
    client.on("reconnect", () => {
      this.lastFailure = null;
      this.log.info({ presence_id: client.presenceId }, "mcp reconnected");
    });
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
