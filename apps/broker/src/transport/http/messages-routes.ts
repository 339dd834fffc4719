// The HTTP messaging API (docs/http.md): POST /v1/messages (with
// Idempotency-Key and ?wait=S) and GET /v1/messages/:messageId, for members
// that hold an API token instead of a socket.
import {
  httpSendBody,
  IDEMPOTENCY_KEY_HEADER,
  issueText,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  MAX_WAIT_SECONDS,
  type HttpSendReply,
  type MessageStatusView,
} from "@switchboard/protocol";
import type { BunRequest } from "bun";
import type { Logger } from "../../log.ts";
import type { Metrics } from "../../metrics.ts";
import type { DbHealth } from "../../services/db-health.ts";
import { namesMesh, type HttpMessaging, type Reader } from "../../services/http-messaging.ts";
import { utf8Text } from "../utf8.ts";
import { pushFrame } from "../ws/wire.ts";
import { answerWithin } from "./answer-deadline.ts";
import { ANSWER_DEADLINE_MS, apiError, bearerToken, bodyRefused, ClientGone, dbUnavailable, json, readBodyCapped, requestUrl, sameSecret, unnamable } from "./respond.ts";

export interface MessagesRouteDeps {
  messaging: HttpMessaging;
  dbHealth: DbHealth;
  metrics: Metrics;
  log: Logger;
  adminToken: string;
  maxMessageBytes: number;
}

const WAIT = /^[0-9]{1,2}$/;

class Invalid extends Error {}

/**
 * The key as text. A header value comes as one character a byte (Latin-1);
 * a key of non-ASCII text is written as UTF-8 (as a socket frame carries
 * it), and is read back as that text, so the same key over HTTP and on a
 * socket is one message.
 */
function idempotencyKey(req: Request): string | undefined {
  const header = req.headers.get(IDEMPOTENCY_KEY_HEADER);
  if (header === null) return undefined;
  const text = utf8Text(Buffer.from(header, "latin1"));
  if (text === null) throw new Invalid("Idempotency-Key must be text in UTF-8");
  // The header given more than once comes joined by ", ": the same key
  // repeated (a proxy that adds it again) is that key, not a new one.
  const repeats = text.split(", ");
  const key = repeats.every((k) => k === repeats[0]) ? repeats[0]! : text;
  // In characters, as the socket's id is counted: a character beyond the BMP is one, not two.
  const characters = [...key].length;
  if (characters === 0 || characters > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw new Invalid(`Idempotency-Key must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`);
  }
  return key;
}

/**
 * A send whose outcome is unknown (docs/http.md): it may be stored. The
 * socket's words name its `id`; here the key is a header, and without one a
 * retry is a second message.
 */
function undecidedSend(why: string, keyed: boolean): Response {
  const retry = keyed ? "send it again with the same Idempotency-Key" : "a retry without an Idempotency-Key may store it twice";
  return apiError("internal", `${why}; the message may have been stored: ${retry}`);
}

function waitSeconds(req: Request): number | undefined {
  const given = requestUrl(req).searchParams.getAll("wait");
  // Two values are not one wait: which the caller meant is not ours to pick.
  if (given.length > 1) throw new Invalid("wait must be given once");
  const raw = given[0];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!WAIT.test(raw) || n < 1 || n > MAX_WAIT_SECONDS) throw new Invalid(`wait must be a whole number of seconds from 1 to ${MAX_WAIT_SECONDS}`);
  return n;
}

export function messagesRoutes(deps: MessagesRouteDeps) {
  const { messaging, dbHealth, metrics, log, adminToken, maxMessageBytes } = deps;

  const failed = (error: unknown, what: string): Response => {
    // Logged at debug by readBodyCapped; the client is gone, so no answer is heard.
    if (error instanceof ClientGone) throw error;
    if (dbHealth.unavailable(error)) return dbUnavailable();
    log.error({ err: error }, what);
    return apiError("internal", "internal error");
  };

  async function send(req: Request): Promise<Response> {
    const token = bearerToken(req);
    if (token === null) return apiError("unauthorized", "Authorization: Bearer <api token> is required");
    const sender = await messaging.authenticate(token).catch((error: unknown) => {
      // The token's lookup is the send's first read: a database away refuses the send here, before the send service counts it.
      if (dbHealth.unavailable(error)) metrics.messagesRejected.labels("unavailable").inc();
      throw error;
    });
    if (sender === null) return apiError("unauthorized", "not a live API token (unknown, revoked, or a hook token)");
    let id: string | undefined;
    let wait: number | undefined;
    try {
      id = idempotencyKey(req);
      wait = waitSeconds(req);
    } catch (error) {
      if (!(error instanceof Invalid)) throw error;
      metrics.messagesRejected.labels("invalid").inc();
      return apiError("invalid", error.message);
    }
    const raw = await readBodyCapped(req, maxMessageBytes, log, `MAX_MESSAGE_BYTES (${maxMessageBytes})`);
    if (typeof raw !== "string") {
      metrics.messagesRejected.labels(raw.code).inc();
      return bodyRefused(raw);
    }
    let parsedJson: unknown;
    try {
      parsedJson = JSON.parse(raw);
    } catch {
      metrics.messagesRejected.labels("invalid").inc();
      return apiError("invalid", "the body is not valid JSON");
    }
    const body = httpSendBody.safeParse(parsedJson);
    if (!body.success) {
      metrics.messagesRejected.labels("invalid").inc();
      return apiError("invalid", issueText(body.error, parsedJson, "body"));
    }
    const { ephemeral: _durable, mesh, senderPubkey, ...fields } = body.data;
    if (mesh !== undefined && !namesMesh(mesh, sender)) {
      metrics.messagesRejected.labels("forbidden").inc();
      return apiError("forbidden", `this API token belongs to mesh ${sender.meshSlug}, not ${mesh}`);
    }
    if (senderPubkey !== undefined && senderPubkey !== sender.pubkey) {
      metrics.messagesRejected.labels("forbidden").inc();
      return apiError("forbidden", `this API token belongs to member ${sender.pubkey}, not ${senderPubkey}, whose key sealed the message`);
    }
    const outcome = await messaging.send(sender, {
      request: { ...fields, ephemeral: false, ...(id === undefined ? {} : { id }) },
      ...(wait === undefined ? {} : { waitSeconds: wait }),
      signal: req.signal,
    });
    if (!outcome.ok) {
      if (outcome.code === "rate_limited") {
        return apiError("rate_limited", outcome.message, { "retry-after": String(outcome.retryAfterSeconds ?? 1) });
      }
      if (outcome.code === "unavailable") return apiError("unavailable", outcome.message, { "retry-after": "1" });
      if (outcome.code === "internal") return undecidedSend("the broker could not store this message", id !== undefined);
      return apiError(outcome.code, outcome.message);
    }
    const reply: HttpSendReply = {
      messageId: outcome.messageId,
      queued: true,
      recipients: outcome.recipients,
      ...(outcome.fullQueues > 0 ? { fullQueues: outcome.fullQueues } : {}),
      ...(outcome.duplicate ? { duplicate: true as const } : {}),
      ...(outcome.waited ? { reply: outcome.reply === null ? null : pushFrame(outcome.reply, outcome.reply.attempt) } : {}),
    };
    return json(outcome.duplicate ? 200 : 201, reply);
  }

  async function status(req: BunRequest<"/v1/messages/:messageId">): Promise<Response> {
    const token = bearerToken(req);
    if (token === null) return apiError("unauthorized", "Authorization: Bearer <api token or admin token> is required");
    const reader: Reader | null = sameSecret(token, adminToken) ? "admin" : await messaging.authenticate(token);
    if (reader === null) return apiError("unauthorized", "neither a live API token nor the admin token");
    const nothing = unnamable(req.params);
    if (nothing) return nothing;
    const state = await messaging.status(req.params.messageId, reader);
    if (state === null) return apiError("not_found", `no message ${req.params.messageId} of yours`);
    const view: MessageStatusView = {
      messageId: state.messageId,
      createdAt: state.createdAt,
      expiresAt: state.expiresAt,
      recipients: state.recipients,
    };
    return json(200, view);
  }

  // A send the database has not answered for may yet be stored: not a 503.
  const lateSend = (req: Request) => () =>
    undecidedSend(`the database did not answer within ${ANSWER_DEADLINE_MS / 1000} s`, req.headers.has(IDEMPOTENCY_KEY_HEADER));
  const lateRead = () =>
    apiError("unavailable", `the database did not answer within ${ANSWER_DEADLINE_MS / 1000} s`, { "retry-after": "1" });
  // A ?wait send may take its wait on top; a bad one is refused long before.
  const sendDeadline = (req: Request): number => {
    try {
      return ANSWER_DEADLINE_MS + (waitSeconds(req) ?? 0) * 1000;
    } catch {
      return ANSWER_DEADLINE_MS;
    }
  };

  return {
    "/v1/messages": {
      POST: (req: Request) =>
        answerWithin(req, () => send(req).catch((error: unknown) => failed(error, "http send failed")), sendDeadline(req), lateSend(req)),
    },
    "/v1/messages/:messageId": {
      GET: (req: BunRequest<"/v1/messages/:messageId">) =>
        answerWithin(req, () => status(req).catch((error: unknown) => failed(error, "message status failed")), ANSWER_DEADLINE_MS, lateRead),
    },
  };
}
