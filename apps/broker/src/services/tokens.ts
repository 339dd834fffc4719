// Bearer tokens issued for one member: hook tokens (/hook/set-status) and
// API tokens (the HTTP messaging API). Random secrets of which the database
// keeps only a SHA-256, so a leaked database dump cannot be replayed.
import { TOKEN_PREFIX } from "@switchboard/protocol";
import { createHash, randomBytes } from "node:crypto";

export type TokenKind = keyof typeof TOKEN_PREFIX;

export function newToken(kind: TokenKind): string {
  return TOKEN_PREFIX[kind] + randomBytes(32).toString("base64url");
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}
