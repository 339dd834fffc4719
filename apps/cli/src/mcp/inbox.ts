// What the session received, in arrival order, until check_messages takes it.
// A message id is taken in once: a redelivery after a reconnect is not listed twice.
// Bounded twice: one call hands over at most a page (a result past the
// client's output limits would be refused or moved aside, and its messages
// are acked already; a message longer than a page comes in parts over
// successive calls), and
// a session that never calls keeps only the newest entries, counting the rest.
export interface InboxEntry {
  message_id: string;
  from: string;
  from_pubkey: string;
  target: string;
  priority: string;
  text: string;
  reply_to: string | null;
  encrypted: boolean;
  created_at: string;
  /** Set when the message could not be read (e.g. "decrypt_failed"). */
  error?: string;
  /** Set on a message too long for one page: its text is this part (from 1) of `parts`, each with the same message_id. */
  part?: number;
  parts?: number;
}

const REMEMBERED_IDS = 10_000;
/** Entries kept for check_messages; past it the oldest go (with channels, each was notified already). */
export const MAX_ENTRIES = 2_000;
/**
 * Characters of JSON one check_messages hands over: under the 50,000 past
 * which Claude Code moves a tool's result into a file.
 */
export const PAGE_CHARS = 40_000;
/**
 * Tokens one page may cost, as estimated by estimateTokens: under Claude
 * Code's default limit of 25,000 (MAX_MCP_OUTPUT_TOKENS), past which it
 * refuses the result — and a page's messages are acknowledged already.
 */
export const PAGE_TOKENS = 20_000;

/**
 * A ceiling on what a text costs in tokens: each character beyond ASCII
 * (CJK runs about one token each; a UTF-16 surrogate pair counts twice), and
 * a token for every 2.5 ASCII characters (hex and base64 run about that dense).
 */
export function estimateTokens(text: string): number {
  let wide = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) wide++;
  return wide + (text.length - wide) / 2.5;
}

export interface InboxPage {
  messages: InboxEntry[];
  /** Entries left for the next calls (each part of a message counts as one, cut yet or not). */
  more: number;
  /** Entries that went unread since the last call because the inbox was full. */
  dropped: number;
}

const fitsPage = (json: string) => json.length <= PAGE_CHARS && estimateTokens(json) <= PAGE_TOKENS;

/** How many of the first items fit one tool result, PAGE_CHARS of JSON and PAGE_TOKENS (at least one, when there is one). */
export function fittingFirst(items: readonly unknown[]): number {
  let chars = 0;
  let tokens = 0;
  let n = 0;
  for (const item of items) {
    const json = JSON.stringify(item);
    const cost = estimateTokens(json);
    if (n > 0 && (chars + json.length > PAGE_CHARS || tokens + cost > PAGE_TOKENS)) break;
    chars += json.length;
    tokens += cost;
    n++;
  }
  return n;
}

/**
 * A message too long for one page as parts that each fit one, the text cut
 * between code points. A part's size is counted as JSON escapes it: a quote
 * or control character takes more room than it looks.
 */
function partsOf(entry: InboxEntry): InboxEntry[] {
  // Room for a part's text beside the rest of the entry, part numbers written at their longest.
  const frame = JSON.stringify({ ...entry, text: "", part: Number.MAX_SAFE_INTEGER, parts: Number.MAX_SAFE_INTEGER });
  const roomChars = PAGE_CHARS - frame.length;
  const roomTokens = PAGE_TOKENS - estimateTokens(frame);
  const texts: string[] = [];
  const { text } = entry;
  let start = 0;
  let chars = 0;
  let tokens = 0;
  for (let i = 0; i < text.length; ) {
    const width = (text.codePointAt(i) ?? 0) > 0xffff ? 2 : 1;
    const escaped = JSON.stringify(text.slice(i, i + width)).slice(1, -1);
    // estimateTokens adds up over pieces: the part's cost is the sum of its code points'.
    const cost = estimateTokens(escaped);
    // Each part holds at least one code point, so the cutting always ends.
    if (i > start && (chars + escaped.length > roomChars || tokens + cost > roomTokens)) {
      texts.push(text.slice(start, i));
      start = i;
      chars = 0;
      tokens = 0;
    }
    chars += escaped.length;
    tokens += cost;
    i += width;
  }
  texts.push(text.slice(start));
  return texts.map((part, i) => ({ ...entry, text: part, part: i + 1, parts: texts.length }));
}

/** Of a message taken in: who sent it, and whether sealed. */
export interface Received {
  fromPubkey: string;
  encrypted: boolean;
}

export class SessionInbox {
  private entries: InboxEntry[] = [];
  /** The parts not yet handed over of a message too long for one page (taken out of entries, so never dropped). */
  private parts: InboxEntry[] = [];
  /** The messages taken in, newest last, each with its sender and whether it came sealed: a reply answers in kind. */
  private readonly seen = new Map<string, Received>();
  /** How many entries each stored message comes as (its parts, when too long for a page): `more` counts them before its cutting too. */
  private readonly pieces = new WeakMap<InboxEntry, number>();
  private dropped = 0;

  /** Stores the entry; false when that message id was taken in before. */
  add(entry: InboxEntry): boolean {
    if (this.seen.has(entry.message_id)) return false;
    this.seen.set(entry.message_id, { fromPubkey: entry.from_pubkey, encrypted: entry.encrypted });
    if (this.seen.size > REMEMBERED_IDS) {
      const oldest = this.seen.keys().next();
      if (!oldest.done) this.seen.delete(oldest.value);
    }
    this.entries.push(entry);
    if (!fitsPage(JSON.stringify(entry))) this.pieces.set(entry, partsOf(entry).length);
    if (this.entries.length > MAX_ENTRIES) {
      this.entries.shift();
      this.dropped++;
    }
    return true;
  }

  /** A message among the last REMEMBERED_IDS taken in. */
  received(messageId: string): Received | undefined {
    return this.seen.get(messageId);
  }

  /**
   * The oldest entries, up to PAGE_CHARS of JSON and PAGE_TOKENS; the rest
   * stays for the next call. A message longer than a page is cut into parts
   * when it comes first, and handed over a part at a time.
   */
  take(): InboxPage {
    const head = this.entries[0];
    if (this.parts.length === 0 && head !== undefined && !fitsPage(JSON.stringify(head))) {
      this.entries.shift();
      this.parts = partsOf(head);
    }
    // Every entry fits a page on its own (one that does not is cut into parts first).
    const n = fittingFirst([...this.parts, ...this.entries]);
    const fromParts = Math.min(n, this.parts.length);
    const messages = [...this.parts.splice(0, fromParts), ...this.entries.splice(0, n - fromParts)];
    const dropped = this.dropped;
    this.dropped = 0;
    const more = this.entries.reduce((n, entry) => n + (this.pieces.get(entry) ?? 1), this.parts.length);
    return { messages, more, dropped };
  }
}
