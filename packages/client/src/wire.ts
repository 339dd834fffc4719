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

/** A frame's JSON, or undefined when it is not text holding JSON. */
function frameJson(data: unknown): unknown {
  const text =
    typeof data === "string"
      ? data
      : data instanceof ArrayBuffer || data instanceof Uint8Array
        ? new TextDecoder().decode(data)
        : null;
  if (text === null) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function parseServerFrame(data: unknown): ServerFrame | null {
  const parsed = serverFrame.safeParse(frameJson(data));
  return parsed.success ? parsed.data : null;
}

/**
 * What can be told of a frame the schemas refuse (a newer broker's, say):
 * its type and code, and the reqId of the call it answers, if any.
 */
export function describeUnreadable(data: unknown): { reqId: string | undefined; what: string } {
  const json = frameJson(data);
  if (typeof json !== "object" || json === null) return { reqId: undefined, what: "not JSON" };
  const fields = json as Record<string, unknown>;
  const type = typeof fields.type === "string" ? `type ${fields.type}` : "no type";
  const code = typeof fields.code === "string" ? `, code ${fields.code}` : "";
  return { reqId: typeof fields.reqId === "string" ? fields.reqId : undefined, what: `${type}${code}` };
}
