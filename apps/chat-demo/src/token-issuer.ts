// The demo's stand-in for a web app's backend: it signs a short-lived HS256
// JWT for the pubkey a page generated. A real backend would first check who
// the user is (its session cookie) and take the name from its own records.
import { SignJWT } from "jose";
import { nameProblem } from "./name-rule.ts";

export interface TokenRequest {
  pubkey: string;
  name: string;
}

const PUBKEY = /^[0-9a-f]{64}$/;

/** The request, or what is wrong with it. */
export function parseTokenRequest(body: unknown): { ok: true; request: TokenRequest } | { ok: false; error: string } {
  const expected = { ok: false, error: "expected {pubkey, name}" } as const;
  if (typeof body !== "object" || body === null) return expected;
  const { pubkey, name } = body as Record<string, unknown>;
  if (typeof pubkey !== "string" || !PUBKEY.test(pubkey) || typeof name !== "string") return expected;
  const trimmed = name.trim();
  const problem = nameProblem(trimmed);
  if (problem !== null) return { ok: false, error: `name: ${problem}` };
  return { ok: true, request: { pubkey, name: trimmed } };
}

export function issueToken(secret: string, mesh: string, request: TokenRequest, lifetimeSeconds: number): Promise<string> {
  return new SignJWT({ mesh, pubkey: request.pubkey, name: request.name })
    .setProtectedHeader({ alg: "HS256" })
    .setAudience("switchboard")
    .setExpirationTime(Math.floor(Date.now() / 1000) + lifetimeSeconds)
    .sign(new TextEncoder().encode(secret));
}
