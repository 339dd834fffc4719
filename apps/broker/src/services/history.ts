// Channel history for hydration (docs/protocol.md "history"): any current
// member of a channel reads its retained messages, oldest first, within a
// budget of content bytes a minute (HISTORY_BYTES_PER_MIN, per member and
// instance): a page is read whole once begun, and counted as it was read.
import type { Database } from "@switchboard/db";
import { HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, HISTORY_PAGE_BYTES } from "@switchboard/protocol";
import { historyPage, isChannelMember } from "../store/history.ts";
import type { OwedMessage } from "../store/queue/types.ts";
import { refuse, type Refusal } from "./outcome.ts";
import { RateLimiter } from "./rate-limit.ts";
import type { Clock } from "./timing.ts";

export interface HistoryRequest {
  channel: string;
  before?: string | undefined;
  limit?: number | undefined;
}

export type HistoryOutcome = { ok: true; messages: OwedMessage[]; more: boolean } | Refusal<"forbidden" | "rate_limited">;

export interface HistoryOptions {
  /** Channel messages are history for this long (HISTORY_RETENTION_SECONDS). */
  retentionSeconds: number;
  /** Content bytes (nonce and ciphertext) of the pages a member may read a minute (HISTORY_BYTES_PER_MIN). */
  bytesPerMin: number;
  clock: Clock;
}

export class HistoryService {
  private readonly bytesRead: RateLimiter;

  constructor(
    private readonly db: Database,
    private readonly options: HistoryOptions,
  ) {
    this.bytesRead = new RateLimiter(options.bytesPerMin);
  }

  async read(reader: { meshId: string; memberId: string }, request: HistoryRequest): Promise<HistoryOutcome> {
    if (!this.bytesRead.fits(reader.memberId, this.options.clock())) {
      return refuse("rate_limited", `more than ${this.options.bytesPerMin} bytes of history read in a minute`);
    }
    if (!(await isChannelMember(this.db, reader.meshId, request.channel, reader.memberId))) {
      return refuse("forbidden", `join ${request.channel} to read its history`);
    }
    const page = await historyPage(this.db, {
      meshId: reader.meshId,
      channel: request.channel,
      before: request.before ?? null,
      limit: Math.min(request.limit ?? HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT),
      maxBytes: HISTORY_PAGE_BYTES,
      retentionSeconds: this.options.retentionSeconds,
    });
    // Measured as the page's statement measures it (octet_length of each).
    const bytes = page.messages.reduce((sum, m) => sum + Buffer.byteLength(m.nonce) + Buffer.byteLength(m.ciphertext), 0);
    this.bytesRead.record(reader.memberId, this.options.clock(), bytes);
    return { ok: true, messages: page.messages.reverse(), more: page.more };
  }
}
