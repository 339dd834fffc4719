// Helpers for the HTTP messaging API tests: one POST /v1/messages or GET
// /v1/messages/:id with its answer untouched, a body to send, and a POST
// whose client leaves before its body's end.
import type { SetupMember, TestBackend } from "@switchboard/testkit";
import { connect } from "node:net";
import { queryPostgres } from "./messaging.ts";

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

/** A POST to path that declares 1000 bytes of body, writes a few and closes its connection. */
export async function postCutShort(baseUrl: string, path: string, token: string): Promise<void> {
  const url = new URL(baseUrl);
  const socket = connect(Number(url.port), url.hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const head = `POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`;
  // Written out before the close, so the broker has the request and part of its body.
  await new Promise<void>((resolve) => socket.write(`${head}{"cut":`, () => resolve()));
  socket.destroy();
}

/** One request written as raw bytes (for what fetch cannot send: no Host header, HTTP/1.0); its status and body, read to the close. */
export async function rawRequest(baseUrl: string, request: string): Promise<{ status: number; headers: string; body: string }> {
  const url = new URL(baseUrl);
  const socket = connect(Number(url.port), url.hostname);
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.once("close", () => resolve());
    socket.write(request);
  });
  const text = Buffer.concat(chunks).toString("utf8");
  const [head = "", body = ""] = text.split("\r\n\r\n", 2);
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0), headers: head, body };
}

/**
 * Writes by hand a reply of `from` to request `requestId`, held for it (leased to the request) for 600 s, as a
 * send statement that read the request's hold before its wait released it would have; the reply's id.
 */
export async function holdReplyLate(backend: TestBackend, meshId: string, from: SetupMember, to: SetupMember, requestId: string): Promise<string> {
  const rows = await queryPostgres(backend, (sql) => sql<{ id: string }[]>`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, reply_to, expires_at)
      VALUES (${meshId}::uuid, ${from.id}::uuid, ${to.pubkey}, 'next', 'late', 'bGF0ZQ==', ${requestId}::uuid, now() + interval '1 hour')
      RETURNING id)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state, lease_presence_id, lease_expires_at, attempt)
    SELECT id, ${to.id}::uuid, 'next', now() + interval '1 hour', 'leased', ${requestId}::uuid, now() + interval '600 seconds', 0 FROM m
    RETURNING message_id::text AS id`);
  if (rows === null) throw new Error("holdReplyLate needs a Postgres backend");
  return rows[0]!.id;
}
