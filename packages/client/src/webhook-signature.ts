// For webhook receivers: checks X-Switchboard-Signature against the shared
// secret and the raw body, refuses stale timestamps, and returns the batch
// of pushes (docs/http.md, "Verifying a webhook request").
import {
  parseWebhookSignatureHeader,
  pushBatch,
  WEBHOOK_SIGNATURE_HEADER,
  webhookSignature,
  type PushBatch,
} from "@switchboard/protocol";
import { SwitchboardError } from "./errors.ts";

/**
 * Headers as fetch (Headers, or any object with its `get`, such as another
 * library's or another realm's Headers), Node (IncomingHttpHeaders) or a
 * plain object gives them.
 */
export type HeaderSource = HeaderGetter | Record<string, string | string[] | undefined>;
// A Map's get, or Express's req.get, answers undefined for a missing header.
type HeaderGetter = { get(name: string): string | null | undefined };

// A plain object's header named "get" is a string, never a function.
const hasGetter = (headers: HeaderSource): headers is HeaderGetter => typeof (headers as Partial<HeaderGetter>).get === "function";

export interface VerifyOptions {
  /** How far the signed timestamp may be from now, in seconds; default 300. */
  toleranceSeconds?: number;
  /** Now, in ms since the epoch (for tests); default Date.now(). */
  now?: number;
}

function header(headers: HeaderSource, name: string): string | null {
  if (hasGetter(headers)) return headers.get(name) ?? null;
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : headers[key];
  return Array.isArray(value) ? (value[0] ?? null) : (value ?? null);
}

/** Equal without an early exit, so the comparison time says nothing about the expected value. */
function equalHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * The body as received. A parsed one (express.json()'s req.body, typed any)
 * is refused by name, rather than failing inside the HMAC without a code.
 */
function bodyBytes(rawBody: unknown): string | Uint8Array {
  if (typeof rawBody === "string") return rawBody;
  // Known by what they are, not by instanceof: bytes made in another realm
  // (a vm context, a test runner's sandbox) are bytes all the same.
  if (ArrayBuffer.isView(rawBody)) return new Uint8Array(rawBody.buffer, rawBody.byteOffset, rawBody.byteLength);
  if (Object.prototype.toString.call(rawBody) === "[object ArrayBuffer]") return new Uint8Array(rawBody as ArrayBuffer);
  throw new SwitchboardError("invalid", "pass the raw body as received (a string or bytes), not a parsed one: re-serialized JSON never verifies");
}

/**
 * The batch a webhook request carries, once its signature checks out.
 * Rejects with SwitchboardError("bad_signature") for a missing, malformed,
 * stale or wrong signature, and ("invalid") for a body that is not a batch,
 * a secret that is empty or no string, or a tolerance that is not a number of seconds.
 * Pass the body exactly as received (a string, bytes or an ArrayBuffer):
 * re-serialized JSON does not verify, and a parsed body is refused invalid.
 */
export async function verifyWebhook(
  secret: string,
  headers: HeaderSource,
  rawBody: string | Uint8Array | ArrayBuffer,
  options: VerifyOptions = {},
): Promise<PushBatch> {
  const tolerance = options.toleranceSeconds ?? 300;
  // NaN (an unset environment variable, converted) would compare false and accept any age.
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    throw new SwitchboardError("invalid", `toleranceSeconds must be a number of seconds ≥ 0, not ${tolerance}`);
  }
  // From JavaScript (or a JSON config, typed any) null or a number gets here: encoded as
  // text, it would make "null" the key, and anyone could sign a request that passes.
  if (typeof secret !== "string") throw new SwitchboardError("invalid", `the webhook secret must be a string, not ${secret === null ? "null" : typeof secret}`);
  if (secret === "") throw new SwitchboardError("invalid", "the webhook secret is empty");
  const body = bodyBytes(rawBody);
  const value = header(headers, WEBHOOK_SIGNATURE_HEADER);
  const parsed = value === null ? null : parseWebhookSignatureHeader(value);
  if (parsed === null) throw new SwitchboardError("bad_signature", `missing or malformed ${WEBHOOK_SIGNATURE_HEADER} header`);
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  if (Math.abs(now - parsed.timestamp) > tolerance) {
    throw new SwitchboardError("bad_signature", `the signature's timestamp is more than ${tolerance} s from now`);
  }
  const expected = await webhookSignature(secret, parsed.timestamp, body);
  if (!parsed.signatures.some((s) => equalHex(s, expected))) throw new SwitchboardError("bad_signature", "the signature does not match");
  let json: unknown;
  try {
    json = JSON.parse(typeof body === "string" ? body : new TextDecoder().decode(body));
  } catch (error) {
    throw new SwitchboardError("invalid", "the body is not JSON", { cause: error });
  }
  const batch = pushBatch.safeParse(json);
  if (!batch.success) throw new SwitchboardError("invalid", "the body is not a push_batch");
  return batch.data;
}
