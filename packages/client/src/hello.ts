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
    try {
      jwt = await config.token({ meshId, publicKey });
    } catch (error) {
      throw new SwitchboardError("token_failed", `the token source failed: ${String(error)}`, { cause: error });
    }
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
