// What the session received, in arrival order, until check_messages takes it.
// A message id is taken in once: a redelivery after a reconnect is not listed twice.
// Bounded twice: one call hands over at most a page (a result past the
// client's output limits would be refused or moved aside, and its messages
// are acked already), and
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
  /** Entries left for the next call. */
  more: number;
  /** Entries that went unread since the last call because the inbox was full. */
  dropped: number;
}

export class SessionInbox {
  private entries: InboxEntry[] = [];
  private readonly seen = new Set<string>();
  private dropped = 0;

  /** Stores the entry; false when that message id was taken in before. */
  add(entry: InboxEntry): boolean {
    if (this.seen.has(entry.message_id)) return false;
    this.seen.add(entry.message_id);
    if (this.seen.size > REMEMBERED_IDS) {
      const oldest = this.seen.values().next();
      if (!oldest.done) this.seen.delete(oldest.value);
    }
    this.entries.push(entry);
    if (this.entries.length > MAX_ENTRIES) {
      this.entries.shift();
      this.dropped++;
    }
    return true;
  }

  /** The oldest entries, up to PAGE_CHARS of JSON and PAGE_TOKENS (at least one); the rest stays for the next call. */
  take(): InboxPage {
    let chars = 0;
    let tokens = 0;
    let count = 0;
    for (const entry of this.entries) {
      const json = JSON.stringify(entry);
      const cost = estimateTokens(json);
      if (count > 0 && (chars + json.length > PAGE_CHARS || tokens + cost > PAGE_TOKENS)) break;
      chars += json.length;
      tokens += cost;
      count++;
    }
    const messages = this.entries.splice(0, count);
    const dropped = this.dropped;
    this.dropped = 0;
    return { messages, more: this.entries.length, dropped };
  }
}
