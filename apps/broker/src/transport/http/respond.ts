// JSON responses and bearer-token checks shared by the HTTP routes.
import { isStorable } from "@switchboard/protocol";
import { timingSafeEqual } from "node:crypto";
import type { Logger } from "../../log.ts";
import { HTTP_STATUS, type ErrorCode } from "../errors.ts";
import { utf8Text } from "../utf8.ts";
import { outsideDeadline } from "./answer-deadline.ts";
import { countBody } from "./body-budget.ts";

export function json(status: number, body: unknown, headers?: Record<string, string>): Response {
  return Response.json(body, { status, headers });
}

/**
 * A route parameter Postgres cannot hold (NUL, an unpaired surrogate) names
 * nothing: answered 404 before it reaches a statement, which would fail. So
 * does one that was not UTF-8, said as such rather than echoed.
 */
export function unnamable(params: object): Response | null {
  const values = Object.values(params).filter((v): v is string => typeof v === "string");
  if (values.some((v) => !isStorable(v))) return apiError("not_found", "a path parameter with NUL or an unpaired surrogate names nothing");
  // What Bun decodes bytes that are not UTF-8 (a malformed escape, %FF) to: echoed, it would name "no mesh �".
  if (values.some((v) => v.includes("\uFFFD"))) return apiError("not_found", "a path parameter with a malformed percent-escape or bytes that are not UTF-8 names nothing");
  return null;
}

/**
 * The request's URL. A request without a usable Host header (HTTP/1.0 may
 * leave it out) reaches a route with its path alone as `req.url`, which
 * `new URL` refuses: only the path and query are read from it anyway.
 */
export function requestUrl(req: Request): URL {
  return new URL(req.url, "http://host.invalid");
}

/** The /v1 and operations error shape: {"error":{"code","message"}}, with the code's status. */
export function apiError(code: ErrorCode, message: string, headers?: Record<string, string>): Response {
  return json(HTTP_STATUS[code], { error: { code, message } }, headers);
}

/**
 * How long a route that waits on the database takes at most to answer. A
 * statement on a connection the database stopped answering (a network
 * partition, not a refusal) never settles: Bun would cut such a GET at its
 * idle timeout (10 s) with an empty reply, and leave a POST whose body it
 * read waiting for good. Below that timeout, so the broker's answer goes out.
 */
export const ANSWER_DEADLINE_MS = 8000;

/** 503 while the database cannot be reached: try again in a second. */
export function dbUnavailable(): Response {
  return apiError("unavailable", "the database is unavailable", { "retry-after": "1" });
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

/**
 * The client closed its connection before its body's end: no fault of the
 * broker's, and nobody is left to answer. Bun drops the rejection of a
 * request whose client is gone, answering nothing and calling no error handler.
 */
export class ClientGone extends Error {}

/**
 * A body a route does not read: past its cap, not UTF-8 (decoded anyway, each
 * bad byte would become U+FFFD, and a message's ciphertext be stored
 * altered), or past what the instance holds of bodies and frames together.
 */
export interface BodyRefusal {
  code: "too_large" | "invalid" | "unavailable";
  message: string;
  headers?: Record<string, string>;
}

/** The answer to a refused body. */
export function bodyRefused(refusal: BodyRefusal): Response {
  return apiError(refusal.code, refusal.message, refusal.headers);
}

const BUSY: BodyRefusal = {
  code: "unavailable",
  message: "the broker holds as many request bodies and frames as it takes (INSTANCE_INFLIGHT_BYTES); try again shortly",
  headers: { "retry-after": "1" },
};

/**
 * The body as text, or the refusal of one that passes maxBytes (`limit` names
 * it to the caller) or is not UTF-8: reading stops at the cap, so an
 * oversized body (declared or streamed) costs no more than that. A client
 * that leaves before the body's end is logged at debug, here for every
 * route, and ends the request with ClientGone. Its time does not count
 * against the request's answer deadline (answer-deadline.ts).
 */
export function readBodyCapped(req: Request, maxBytes: number, log: Logger, limit = `${maxBytes} bytes`): Promise<string | BodyRefusal> {
  const tooLarge: BodyRefusal = { code: "too_large", message: `the body is larger than ${limit}` };
  return outsideDeadline(req, async () => {
    const bytes = await readCapped(req, maxBytes, log);
    if (bytes === "too_large") return tooLarge;
    if (bytes === "busy") return BUSY;
    return utf8Text(bytes) ?? { code: "invalid", message: "the body is not text in UTF-8" };
  });
}

async function readCapped(req: Request, maxBytes: number, log: Logger): Promise<Uint8Array | "too_large" | "busy"> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) return "too_large";
  if (!req.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read().catch((error: unknown) => {
      if (!req.signal.aborted) throw error;
      log.debug({ method: req.method, path: requestUrl(req).pathname, read: size }, "client went away mid-body");
      throw new ClientGone("the client went away while its body was read", { cause: error });
    });
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      return "too_large";
    }
    if (!countBody(req, value.byteLength)) {
      await reader.cancel();
      return "busy";
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}
