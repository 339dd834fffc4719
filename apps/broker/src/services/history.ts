// Channel history for hydration (docs/protocol.md "history"): any current
// member of a channel reads its retained messages, oldest first.
import type { Database } from "@switchboard/db";
import { HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, HISTORY_PAGE_BYTES } from "@switchboard/protocol";
import { historyPage, isChannelMember } from "../store/history.ts";
import type { OwedMessage } from "../store/queue/types.ts";
import { refuse, type Refusal } from "./outcome.ts";

export interface HistoryRequest {
  channel: string;
  before?: string | undefined;
  limit?: number | undefined;
}

export type HistoryOutcome = { ok: true; messages: OwedMessage[]; more: boolean } | Refusal<"forbidden">;

export class HistoryService {
  constructor(
    private readonly db: Database,
    /** Channel messages are history for this long (HISTORY_RETENTION_SECONDS). */
    private readonly retentionSeconds: number,
  ) {}

  async read(reader: { meshId: string; memberId: string }, request: HistoryRequest): Promise<HistoryOutcome> {
    if (!(await isChannelMember(this.db, reader.meshId, request.channel, reader.memberId))) {
      return refuse("forbidden", `join ${request.channel} to read its history`);
    }
    const page = await historyPage(this.db, {
      meshId: reader.meshId,
      channel: request.channel,
      before: request.before ?? null,
      limit: Math.min(request.limit ?? HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT),
      maxBytes: HISTORY_PAGE_BYTES,
      retentionSeconds: this.retentionSeconds,
    });
    return { ok: true, messages: page.messages.reverse(), more: page.more };
  }
}
