// The hello of each (re)connect: signed by the member's key with a fresh
// timestamp, or carrying a JWT asked for anew from the token source.
import { signHello } from "@switchboard/protocol";
import type { ClientConfig } from "./config.ts";
import { SwitchboardError } from "./errors.ts";
import type { TokenSource } from "./types.ts";

/** `signal` aborted (the client closed): the wait for the token ends at once with `closed`, its deadline timer cleared. */
export async function buildHello(config: ClientConfig, timestamp: number, signal?: AbortSignal): Promise<Record<string, unknown>> {
  const { meshId, sessionId, publicKey, audience } = config;
  let credential: Record<string, unknown>;
  if (config.token) {
    const jwt = await askToken(config.token, config, signal);
    credential = { meshId, pubkey: publicKey, sessionId, jwt };
  } else {
    credential = { ...(await signHello(config.secretKey, { meshId, sessionId, timestamp, audience })) };
  }
  const hello: Record<string, unknown> = { type: "hello", ...credential };
  if (config.pid !== undefined) hello.pid = config.pid;
  if (config.cwd !== undefined) hello.cwd = config.cwd;
  if (config.displayName !== undefined) hello.displayName = config.displayName;
  return hello;
}

/**
 * The token source's answer. One that never answers (a backend behind a
 * proxy that holds the request) fails the attempt after connectTimeoutMs,
 * as a socket that never opens does, or the client would wait for it
 * forever instead of trying again; a close ends the wait at once, so no
 * timer of it keeps the process alive.
 */
async function askToken(source: TokenSource, config: ClientConfig, signal: AbortSignal | undefined): Promise<string> {
  const { meshId, publicKey, connectTimeoutMs } = config;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort = () => {};
  const late = Symbol("late");
  const closed = Symbol("closed");
  const deadline = new Promise<typeof late>((resolve) => (timer = setTimeout(() => resolve(late), connectTimeoutMs)));
  const aborted = new Promise<typeof closed>((resolve) => {
    onAbort = () => resolve(closed);
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  let jwt: unknown;
  try {
    jwt = await Promise.race([Promise.resolve(source({ meshId, publicKey })), deadline, aborted]);
  } catch (error) {
    throw new SwitchboardError("token_failed", `the token source failed: ${String(error)}`, { cause: error });
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
  if (jwt === closed) throw new SwitchboardError("closed", "the client was closed while its token source answered");
  if (jwt === late) throw new SwitchboardError("token_failed", `the token source gave no token within ${connectTimeoutMs} ms`);
  if (typeof jwt !== "string" || jwt === "") throw new SwitchboardError("token_failed", "the token source gave no token");
  return jwt;
}
