// Applying status signals (set_status, hooks) to a presence, under a row lock
// so concurrent signals are decided one after the other.
import type { Database, Executor } from "@switchboard/db";
import type { Status, StatusSource } from "@switchboard/protocol";
import { lockPresenceStatus, writePresenceStatus } from "../store/presences.ts";
import { retryTransient } from "./batcher.ts";
import { decideStatus, type StatusSignal } from "./status-rules.ts";
import type { Wakeups } from "./wakeups.ts";

export interface StatusResult {
  presenceId: string;
  memberId: string;
  status: Status;
  statusSource: StatusSource;
  applied: boolean;
}

export class StatusService {
  constructor(
    private readonly db: Database,
    private readonly wakeups: Wakeups,
    private readonly freshWindowMs: number,
    private readonly onChanged: (memberId: string) => void,
  ) {}

  /** Null when the presence is not live. */
  async apply(presenceId: string, signal: StatusSignal): Promise<StatusResult | null> {
    const result = await retryTransient(() => this.db.transaction((tx) => this.applyIn(tx, presenceId, signal)));
    if (result?.applied) this.onChanged(result.memberId);
    return result;
  }

  async applyIn(tx: Executor, presenceId: string, signal: StatusSignal): Promise<StatusResult | null> {
    const current = await lockPresenceStatus(tx, presenceId);
    if (!current) return null;
    const next = decideStatus(
      { status: current.status, source: current.statusSource, ageMs: current.ageMs },
      signal,
      this.freshWindowMs,
    );
    if (!next) {
      return { presenceId, memberId: current.memberId, status: current.status, statusSource: current.statusSource, applied: false };
    }
    await writePresenceStatus(tx, presenceId, next.status, next.source);
    // The presence may sit on another instance: let it claim what it may now take.
    await this.wakeups.publish(tx, { members: [current.memberId] });
    return { presenceId, memberId: current.memberId, status: next.status, statusSource: next.source, applied: true };
  }
}
