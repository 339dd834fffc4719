// ClientOptions with every default applied and checked once.
import { audienceOf, givenAudience, MAX_SESSION_ID_LENGTH, publicKeyOf, shownUrl, signedHelloFrame } from "@switchboard/protocol";
import { MAX_TIMER_MS, resolvePolicy, type ReconnectPolicy } from "./backoff.ts";
import { SwitchboardError } from "./errors.ts";
import type { ClientOptions, TokenSource, WebSocketClass } from "./types.ts";
import { brokerWsUrl } from "./url.ts";

export interface ClientConfig {
  url: string;
  meshId: string;
  secretKey: string;
  publicKey: string;
  sessionId: string;
  pid: number | undefined;
  cwd: string | undefined;
  displayName: string | undefined;
  reconnect: ReconnectPolicy | null;
  ackDelayMs: number;
  acks: "auto" | "manual";
  offline: "queue" | "fail";
  requestTimeoutMs: number | undefined;
  channelKeys: Record<string, string>;
  WebSocket: WebSocketClass;
  connectTimeoutMs: number;
  /** 0: no heartbeat. */
  heartbeatMs: number;
  /** Set: JWT hellos with the token it returns; unset: signed hellos. */
  token: TokenSource | undefined;
  /** The broker's name a signed hello names (ClientOptions.audience). */
  audience: string;
}

// A browser has no process: no parent pid or working directory.
interface ProcessLike {
  ppid: number;
  cwd(): string;
}
const nodeProcess = (globalThis as { process?: ProcessLike }).process;

/** How long a socket may stay quiet before a ping asks the broker, and that ping may wait (ClientOptions.heartbeatMs). */
export const DEFAULT_HEARTBEAT_MS = 15_000;

/**
 * The longest ackDelayMs: a third of the broker's default lease (LEASE_SECONDS,
 * 30 s). Acks held past the lease come too late: the broker has pushed every
 * message again.
 */
export const MAX_ACK_DELAY_MS = 10_000;

/** A timeout in ms: more than 0, at most MAX_TIMER_MS. */
export function checkTimeout(ms: number, name: string): void {
  if (!(ms > 0 && ms <= MAX_TIMER_MS)) throw new SwitchboardError("invalid", `${name} must be > 0 and at most ${MAX_TIMER_MS} ms`);
}

function oneOf<T extends string>(value: string, allowed: readonly T[], name: string): T {
  const found = allowed.find((a) => a === value);
  if (found === undefined) throw new SwitchboardError("invalid", `${name} must be ${allowed.map((a) => `"${a}"`).join(" or ")}, not ${JSON.stringify(value)}`);
  return found;
}

export async function resolveConfig(options: ClientOptions): Promise<ClientConfig> {
  if (!/^[0-9a-fA-F]{64}$/.test(options.secretKey)) throw new SwitchboardError("invalid", "secretKey: expected 64 hex characters");
  const secretKey = options.secretKey.toLowerCase();
  if (!options.meshId) throw new SwitchboardError("invalid", "meshId is required");
  // Never the ambient CLAUDE_CODE_SESSION_ID: a program run from a Claude
  // Code session with its member's key would replace (4000) that session's
  // own presence, its MCP server's.
  const sessionId = options.sessionId ?? crypto.randomUUID();
  if (sessionId.length < 1 || sessionId.length > MAX_SESSION_ID_LENGTH) {
    throw new SwitchboardError("invalid", `sessionId: 1 to ${MAX_SESSION_ID_LENGTH} characters`);
  }
  // Checked as the broker checks the hello: refused there, as malformed, it
  // would end the client for good after its first attempt.
  for (const field of ["meshId", "sessionId", "cwd", "displayName"] as const) {
    const value = field === "sessionId" ? sessionId : options[field];
    const checked = value === undefined ? null : signedHelloFrame.shape[field].safeParse(value);
    if (checked && !checked.success) throw new SwitchboardError("invalid", `${field}: ${checked.error.issues[0]?.message ?? "not valid"}`);
  }
  // A working directory no hello can carry (longer than the broker takes) is left out rather than refused: the caller did not choose it.
  const defaultCwd = nodeProcess?.cwd();
  const cwd = options.cwd ?? (defaultCwd !== undefined && signedHelloFrame.shape.cwd.safeParse(defaultCwd).success ? defaultCwd : undefined);
  const pid = options.pid ?? nodeProcess?.ppid;
  const ackDelayMs = options.ackDelayMs ?? 50;
  if (!(ackDelayMs >= 0 && ackDelayMs <= MAX_ACK_DELAY_MS)) {
    throw new SwitchboardError("invalid", `ackDelayMs must be ≥ 0 and at most ${MAX_ACK_DELAY_MS} ms (a third of the broker's default lease of 30 s)`);
  }
  const requestTimeoutMs = options.requestTimeoutMs;
  if (requestTimeoutMs !== undefined) checkTimeout(requestTimeoutMs, "requestTimeoutMs");
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  checkTimeout(connectTimeoutMs, "connectTimeoutMs");
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  if (heartbeatMs !== 0) checkTimeout(heartbeatMs, "heartbeatMs (or 0, no heartbeat)");
  // From JavaScript any string gets here: a misspelt "manual" would ack every message unseen.
  const acks = oneOf(options.acks ?? "auto", ["auto", "manual"] as const, "acks");
  const offline = oneOf(options.offline ?? "queue", ["queue", "fail"] as const, "offline");
  // A runtime without one (Node before 22) would fail every attempt as unreachable, and retry for good.
  const WebSocketClass = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
  if (typeof WebSocketClass !== "function") {
    throw new SwitchboardError("invalid", "no WebSocket in this runtime: pass options.WebSocket (the ws package's class, say)");
  }
  const url = brokerWsUrl(options.url);
  return {
    url,
    meshId: options.meshId,
    secretKey,
    publicKey: await publicKeyOf(secretKey),
    sessionId,
    // The broker wants a positive pid; some sandboxes report 0 for the parent.
    pid: pid !== undefined && Number.isInteger(pid) && pid > 0 ? pid : undefined,
    cwd,
    displayName: options.displayName,
    reconnect: resolvePolicy(options.reconnect),
    ackDelayMs,
    acks,
    offline,
    requestTimeoutMs,
    channelKeys: options.channelKeys ?? {},
    WebSocket: WebSocketClass,
    connectTimeoutMs,
    heartbeatMs,
    token: options.token,
    audience: resolveAudience(options.audience, url),
  };
}

/** Checked as the broker checks it: a malformed audience would end the client for good after its first attempt. */
function resolveAudience(given: string | undefined, url: string): string {
  const resolved = givenAudience(given ?? audienceOf(url) ?? "");
  if ("error" in resolved) {
    const named = given === undefined ? `the host of ${shownUrl(url)}` : "audience";
    throw new SwitchboardError("invalid", `${named}: ${resolved.error}`);
  }
  return resolved.audience;
}
