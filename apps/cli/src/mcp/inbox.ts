// What the session received, in arrival order, until check_messages takes it.
// A message id is taken in once: a redelivery after a reconnect is not listed twice.
// Bounded twice: one call hands over at most a page (a result larger than the
// client's output limit would be cut, and what was cut is acked already), and
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
/** Characters of JSON one check_messages hands over, well under Claude Code's default output limit (25,000 tokens). */
export const PAGE_CHARS = 60_000;

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

  /** The oldest entries, up to PAGE_CHARS of JSON (at least one); the rest stays for the next call. */
  take(): InboxPage {
    let chars = 0;
    let count = 0;
    for (const entry of this.entries) {
      const size = JSON.stringify(entry).length;
      if (count > 0 && chars + size > PAGE_CHARS) break;
      chars += size;
      count++;
    }
    const messages = this.entries.splice(0, count);
    const dropped = this.dropped;
    this.dropped = 0;
    return { messages, more: this.entries.length, dropped };
  }
}
