// The chat's lines: what one shows of a message's payload, and their order.

/** How much a line shows of a payload that is not a text (its JSON), or of a message not sent (its text is back in the box). */
const MAX_SHORT_CHARS = 200;

export const cutShort = (text: string) => (text.length > MAX_SHORT_CHARS ? `${text.slice(0, MAX_SHORT_CHARS)}…` : text);

export interface Line {
  /** The broker's messageId; a local one while an own line is not with the broker. */
  id: string;
  /** The sender's pubkey: its name is looked up when the line is drawn. */
  sender: string;
  text: string;
  /** The text is a payload's JSON, not a text someone wrote. */
  raw: boolean;
  /** The broker's time (an own line's, until the history tells it, the latest the room showed when the broker acked it). */
  createdAt: string;
  order: number;
  /** An own line sent from this tab: on its way, with the broker, or refused. */
  state?: "pending" | "sent" | "failed";
}

const textOf = (payload: unknown): string | null =>
  typeof payload === "object" && payload !== null && "text" in payload && typeof payload.text === "string" ? payload.text : null;

/**
 * What a line shows of a payload: a string (as the CLI and agents send) as it
 * is, a {text} as its text, anything else or a blank text as its JSON, cut
 * short: never a blank line.
 */
export function shownPayload(payload: unknown): { text: string; raw: boolean } {
  const text = typeof payload === "string" ? payload : textOf(payload);
  if (text !== null && text.trim() !== "") return { text, raw: false };
  return { text: cutShort(JSON.stringify(payload)), raw: true };
}

export const isUnsent = (line: Line) => line.state === "pending" || line.state === "failed";

/** The broker's order; lines not with the broker last, in the order they were typed. */
export const inShownOrder = (a: Line, b: Line) => Number(isUnsent(a)) - Number(isUnsent(b)) || a.createdAt.localeCompare(b.createdAt) || a.order - b.order;

/** The latest broker time among a room's lines ("" for none). */
export const latestTime = (room: Map<string, Line>) => {
  let latest = "";
  for (const line of room.values()) if (!isUnsent(line) && line.createdAt > latest) latest = line.createdAt;
  return latest;
};
