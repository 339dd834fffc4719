// Hook tokens: random bearer secrets of which the database keeps only a
// SHA-256. A leaked database dump then cannot be replayed against /hook.
import { createHash, randomBytes } from "node:crypto";

const HOOK_TOKEN_PREFIX = "sbh_";

/** The prefix lets secret scanners and people tell a hook token apart from other secrets. */
export function newHookToken(): string {
  return HOOK_TOKEN_PREFIX + randomBytes(32).toString("base64url");
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}
