// The hello of each (re)connect: signed by the member's key with a fresh
// timestamp, or carrying a JWT asked for anew from the token source.
import { signHello } from "@switchboard/protocol";
import type { ClientConfig } from "./config.ts";
import { SwitchboardError } from "./errors.ts";

export async function buildHello(config: ClientConfig, timestamp: number): Promise<Record<string, unknown>> {
  const { meshId, sessionId, publicKey } = config;
  let credential: Record<string, unknown>;
  if (config.token) {
    let jwt: unknown;
    // A source that never answers (a backend behind a proxy that holds the
    // request) must fail the attempt, as a socket that never opens does, or
    // the client would wait for it forever instead of trying again.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = Symbol("late");
    const deadline = new Promise<typeof late>((resolve) => (timer = setTimeout(() => resolve(late), config.connectTimeoutMs)));
    try {
      jwt = await Promise.race([Promise.resolve(config.token({ meshId, publicKey })), deadline]);
    } catch (error) {
      throw new SwitchboardError("token_failed", `the token source failed: ${String(error)}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
    if (jwt === late) throw new SwitchboardError("token_failed", `the token source gave no token within ${config.connectTimeoutMs} ms`);
    if (typeof jwt !== "string" || jwt === "") throw new SwitchboardError("token_failed", "the token source gave no token");
    credential = { meshId, pubkey: publicKey, sessionId, jwt };
  } else {
    credential = { ...(await signHello(config.secretKey, { meshId, sessionId, timestamp })) };
  }
  const hello: Record<string, unknown> = { type: "hello", ...credential };
  if (config.pid !== undefined) hello.pid = config.pid;
  if (config.cwd !== undefined) hello.cwd = config.cwd;
  if (config.displayName !== undefined) hello.displayName = config.displayName;
  return hello;
}
