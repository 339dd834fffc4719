// Text frames in and out: JSON decoding, validation messages, and the frames
// built from the services' outcomes.
import type { ErrorFrame, PushFrame, ServerFrame } from "@switchboard/protocol";
import type { OwedMessage } from "../../services/local-presences.ts";
import { utf8Text } from "../utf8.ts";

export type Reply = ServerFrame | Omit<ErrorFrame, "reqId">;

export type JsonObject = Record<string, unknown>;

/** A frame read as a JSON object, or why it is none (the refusal's message). */
export type DecodedFrame = { ok: true; frame: JsonObject } | { ok: false; message: string };

export function decodeFrame(raw: string | Buffer): DecodedFrame {
  // A binary frame's bytes are read as the text they must be.
  const text = typeof raw === "string" ? raw : utf8Text(raw);
  if (text === null) return { ok: false, message: "the frame is not text in UTF-8" };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = null;
  }
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? { ok: true, frame: value as JsonObject }
    : { ok: false, message: "the frame is not a JSON object" };
}

/** The reqId to echo: a string, cut to the protocol's 64 characters. */
export function reqIdOf(frame: JsonObject): string | undefined {
  return typeof frame.reqId === "string" ? frame.reqId.slice(0, 64) : undefined;
}

export function encode(frame: Reply, reqId: string | undefined): string {
  return JSON.stringify(reqId === undefined ? frame : { ...frame, reqId });
}

export function pushFrame(message: OwedMessage, attempt: number): PushFrame {
  return {
    type: "push",
    messageId: message.messageId,
    meshId: message.meshId,
    senderPubkey: message.senderPubkey,
    targetSpec: message.targetSpec,
    priority: message.priority,
    nonce: message.nonce,
    ciphertext: message.ciphertext,
    createdAt: message.createdAt,
    replyTo: message.replyTo,
    attempt,
  };
}

/** An ephemeral send's push: marked, so the peer neither acks it nor keeps its id against a redelivery. */
export const ephemeralPushFrame = (message: OwedMessage): PushFrame => ({ ...pushFrame(message, 1), ephemeral: true });
