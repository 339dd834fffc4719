// What the session received, in arrival order, until check_messages takes it.
// A message id is taken in once: a redelivery after a reconnect is not listed twice.
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

export class SessionInbox {
  private entries: InboxEntry[] = [];
  private readonly seen = new Set<string>();

  /** Stores the entry; false when that message id was taken in before. */
  add(entry: InboxEntry): boolean {
    if (this.seen.has(entry.message_id)) return false;
    this.seen.add(entry.message_id);
    if (this.seen.size > REMEMBERED_IDS) {
      const oldest = this.seen.values().next();
      if (!oldest.done) this.seen.delete(oldest.value);
    }
    this.entries.push(entry);
    return true;
  }

  /** Everything received since the last call, oldest first; the list starts empty again. */
  drain(): InboxEntry[] {
    const taken = this.entries;
    this.entries = [];
    return taken;
  }
}
