// JSON responses and bearer-token checks shared by the HTTP routes.
import { timingSafeEqual } from "node:crypto";

export function json(status: number, body: unknown, headers?: Record<string, string>): Response {
  return Response.json(body, { status, headers });
}

/** The admin and operations error shape: {"error":{"code","message"}}. */
export function apiError(status: number, code: string, message: string): Response {
  return json(status, { error: { code, message } });
}

export function bearerToken(req: Request): string | null {
  const header = req.headers.get("authorization");
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
  return match?.[1] ?? null;
}

export function sameSecret(given: string | null, expected: string): boolean {
  if (given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
