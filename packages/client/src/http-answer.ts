// Reading HttpSender's answers. Whatever comes back (a proxy's page, a body
// cut off or too slow, JSON of another shape) ends as a SwitchboardError
// carrying the HTTP status, never as the platform's own exception or as a
// success missing its fields.
import { apiErrorBody } from "@switchboard/protocol";
import { SwitchboardError } from "./errors.ts";

/** What the protocol's zod schemas offer; the SDK needs no more of zod. */
interface Schema<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false };
}

const NOT_JSON = Symbol("not JSON");

export const isTimeout = (error: unknown): boolean => error instanceof DOMException && error.name === "TimeoutError";

/** A 2xx body, checked against the route's schema: anything else is `protocol`. */
export async function answerOf<T>(res: Response, schema: Schema<T>, what: string): Promise<T> {
  const body = await jsonOf(res, what);
  const parsed = body === NOT_JSON ? null : schema.safeParse(body);
  if (parsed?.success) return parsed.data;
  const why = body === NOT_JSON ? "a body that is not JSON" : "a body that is not the broker's answer";
  throw new SwitchboardError("protocol", `${what} → HTTP ${res.status} with ${why}`, { httpStatus: res.status });
}

/** The error a non-2xx answer stands for: the broker's own code, else one saying the broker did not answer. */
export async function failureOf(res: Response, what: string): Promise<SwitchboardError> {
  const body = await jsonOf(res, what);
  const parsed = body === NOT_JSON ? null : apiErrorBody.safeParse(body);
  const retryAfter = res.headers.get("retry-after");
  const after = retryAfter === null ? "" : ` (retry after ${retryAfter} s)`;
  // Seconds only: the HTTP date form is not one the broker sends.
  const seconds = retryAfter !== null && /^\d+$/.test(retryAfter) ? Number(retryAfter) : undefined;
  const options = { httpStatus: res.status, ...(seconds === undefined ? {} : { retryAfterSeconds: seconds }) };
  if (parsed?.success) return new SwitchboardError(parsed.data.error.code, `${parsed.data.error.message}${after}`, options);
  // Not the broker's answer (a proxy's 502 or 504 page): whether the broker
  // got the request is unknown, as when it cannot be reached at all.
  return new SwitchboardError(res.status >= 500 ? "unreachable" : "protocol", `${what} → HTTP ${res.status}${after}`, options);
}

/** The body parsed, or NOT_JSON; reading it fails as the request would (its timeout covers the body, the connection may drop). */
async function jsonOf(res: Response, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await res.text();
  } catch (error) {
    const code = isTimeout(error) ? "timeout" : "unreachable";
    throw new SwitchboardError(code, `${what} → HTTP ${res.status}, and then its body could not be read: ${String(error)}`, {
      cause: error,
      httpStatus: res.status,
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return NOT_JSON;
  }
}
