// Ephemeral sends another instance relayed to presences here, which its
// notices name (services/bus.ts): each row is taken (deleted) as it is read
// and pushed by the rules of the sender's own pushes (ephemeral.ts), to one
// presence per recipient. Notices are read one batch after another, in the
// order they came, so a sender's typing signals do not overtake each other.
// A row this instance fails to read is left to the prune.
import type { Database } from "@switchboard/db";
import type { Logger } from "../log.ts";
import { takeRelayed } from "../store/ephemeral-relay.ts";
import { pushToMember } from "./ephemeral.ts";
import type { LocalPresences } from "./local-presences.ts";
import type { Clock } from "./timing.ts";

/** Messages taken in one statement. */
const MAX_PER_READ = 500;

export class RelayedEphemerals {
  private readonly named: string[] = [];
  private reading: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly db: Database,
    private readonly presences: LocalPresences,
    private readonly instanceId: string,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** A notice's messages, relayed to this instance. */
  take(messageIds: string[]): void {
    if (this.stopped) return;
    this.named.push(...messageIds);
    this.reading ??= this.read();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.reading;
  }

  private async read(): Promise<void> {
    try {
      while (this.named.length > 0 && !this.stopped) {
        const ids = this.named.splice(0, MAX_PER_READ);
        try {
          const order = new Map(ids.map((id, i) => [id, i]));
          const taken = (await takeRelayed(this.db.relaxed, this.instanceId, ids)).sort(
            (a, b) => (order.get(a.messageId) ?? 0) - (order.get(b.messageId) ?? 0),
          );
          for (const { recipients, ...message } of taken) {
            for (const r of recipients) pushToMember(this.presences, this.clock, r.memberId, new Set(r.presenceIds), message);
          }
        } catch (error) {
          this.log.warn({ err: error, messages: ids.length }, "reading ephemeral sends relayed by another instance failed");
        }
      }
    } finally {
      this.reading = null;
    }
  }
}
