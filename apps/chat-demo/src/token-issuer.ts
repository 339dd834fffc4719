// The demo's stand-in for a web app's backend: it signs a short-lived HS256
// JWT for the pubkey a page generated. A real backend would first check who
// the user is (its session cookie) and take the name from its own records.
import { SignJWT } from "jose";

export interface TokenRequest {
  pubkey: string;
  name: string;
}

const PUBKEY = /^[0-9a-f]{64}$/;

export function parseTokenRequest(body: unknown): TokenRequest | null {
  if (typeof body !== "object" || body === null) return null;
  const { pubkey, name } = body as Record<string, unknown>;
  if (typeof pubkey !== "string" || !PUBKEY.test(pubkey)) return null;
  if (typeof name !== "string" || name.trim() === "" || name.length > 64) return null;
  return { pubkey, name: name.trim() };
}

export function issueToken(secret: string, mesh: string, request: TokenRequest, lifetimeSeconds: number): Promise<string> {
  return new SignJWT({ mesh, pubkey: request.pubkey, name: request.name })
    .setProtectedHeader({ alg: "HS256" })
    .setAudience("switchboard")
    .setExpirationTime(Math.floor(Date.now() / 1000) + lifetimeSeconds)
    .sign(new TextEncoder().encode(secret));
}
