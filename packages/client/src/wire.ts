// The broker's frames as the SDK reads them, validated at the socket with the
// protocol's schemas so the rest of the code works on checked shapes.
import {
  serverFrame,
  type ErrorFrame,
  type HelloAck,
  type PresenceEventFrame,
  type PushFrame,
  type ServerFrame,
} from "@switchboard/protocol";

export type { ErrorFrame, PushFrame, ServerFrame };
export type HelloAckFrame = HelloAck;

/** Frames that answer a client frame (matched by reqId). */
export type ReplyFrame = Exclude<ServerFrame, HelloAckFrame | PushFrame | PresenceEventFrame>;

const encoder = new TextEncoder();

/** A frame's size as the broker counts it against MAX_MESSAGE_BYTES: its UTF-8 bytes. */
export function frameBytes(text: string): number {
  return encoder.encode(text).length;
}

export function parseServerFrame(data: unknown): ServerFrame | null {
  const text =
    typeof data === "string"
      ? data
      : data instanceof ArrayBuffer || data instanceof Uint8Array
        ? new TextDecoder().decode(data)
        : null;
  if (text === null) return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = serverFrame.safeParse(json);
  return parsed.success ? parsed.data : null;
}
