// Helpers for the HTTP messaging API tests: one POST /v1/messages or GET
// /v1/messages/:id with its answer untouched, and a body to send.
export interface Answer<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
}

export type ErrorBody = { error: { code: string; message: string } };

export interface PostOptions {
  key?: string;
  wait?: string | number;
  signal?: AbortSignal;
}

async function answerOf<T>(res: Response): Promise<Answer<T>> {
  return { status: res.status, headers: res.headers, body: (await res.json()) as T };
}

/** POST /v1/messages. body: an object (sent as JSON) or a string (sent verbatim). */
export async function postMessage<T = Record<string, unknown>>(
  baseUrl: string,
  token: string | null,
  body: unknown,
  options: PostOptions = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (options.key !== undefined) headers["idempotency-key"] = options.key;
  const query = options.wait === undefined ? "" : `?wait=${options.wait}`;
  const res = await fetch(`${baseUrl}/v1/messages${query}`, {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: options.signal,
  });
  return answerOf<T>(res);
}

export async function messageStatus<T = Record<string, unknown>>(baseUrl: string, token: string | null, messageId: string): Promise<Answer<T>> {
  const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
  return answerOf<T>(await fetch(`${baseUrl}/v1/messages/${messageId}`, { headers }));
}

/** A send body to targetSpec with a fresh plain payload. */
export function httpBody(targetSpec: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    targetSpec,
    nonce: "plain",
    ciphertext: Buffer.from(JSON.stringify({ n: crypto.randomUUID() })).toString("base64"),
    ...fields,
  };
}
