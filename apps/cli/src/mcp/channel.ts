// A received message as the model sees it: an inbox entry, and the
// notifications/claude/channel notification built from it (every meta value
// a string, as Claude Code's channels require).
import type { Message, UnreadableMessage } from "@switchboard/client";
import type { InboxEntry } from "./inbox.ts";

export const CHANNEL_METHOD = "notifications/claude/channel";

export interface ChannelNotification {
  method: typeof CHANNEL_METHOD;
  params: { content: string; meta: Record<string, string> };
}

/** The text a sender meant: a string as is, anything else an SDK program sent as JSON. */
export function payloadText(payload: unknown): string {
  return typeof payload === "string" ? payload : (JSON.stringify(payload) ?? "null");
}

export function entryOf(message: Message | UnreadableMessage, from: string): InboxEntry {
  const entry: InboxEntry = {
    message_id: message.messageId,
    from,
    from_pubkey: message.senderPubkey,
    target: message.targetSpec,
    priority: message.priority,
    text: "",
    reply_to: message.replyTo,
    encrypted: message.encrypted,
    created_at: message.createdAt,
  };
  if ("payload" in message) entry.text = payloadText(message.payload);
  else {
    entry.error = message.error.code;
    entry.text = `(a message from ${from} that could not be read: ${message.error.message})`;
  }
  return entry;
}

export function notificationOf(entry: InboxEntry): ChannelNotification {
  const meta: Record<string, string> = {
    from: entry.from,
    from_pubkey: entry.from_pubkey,
    message_id: entry.message_id,
    priority: entry.priority,
    target: entry.target,
    encrypted: String(entry.encrypted),
  };
  if (entry.reply_to !== null) meta.reply_to = entry.reply_to;
  if (entry.error !== undefined) meta.error = entry.error;
  const content =
    entry.encrypted || entry.error !== undefined
      ? entry.text
      : `${entry.text}\n\n(sent unencrypted: only the broker vouches that it comes from ${entry.from})`;
  return { method: CHANNEL_METHOD, params: { content, meta } };
}
