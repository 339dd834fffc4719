// Applying status signals to presences: set_status from a socket, hook
// signals from /hook/set-status. Each is decided under the presence's row
// lock, so concurrent signals are decided one after the other, by rules.ts.
import type { Database, Executor } from "@switchboard/db";
import type { Status, StatusSource } from "@switchboard/protocol";
import {
  dropPendingSignal,
  findPresenceForKeptSignal,
  findPresenceForSignal,
  keepPendingSignal,
  lockPendingSignal,
  lockPresenceStatus,
  writePresenceStatus,
  type LockedStatus,
  type SignalOrigin,
} from "../../store/status.ts";
import type { InstanceBus } from "../bus.ts";
import type { PresenceEvents } from "../presence-events.ts";
import { retryTransient } from "../retry.ts";
import { decideStatus, setAfter, type StatusSignal } from "./rules.ts";

export interface StatusResult {
  presenceId: string;
  memberId: string;
  status: Status;
  statusSource: StatusSource;
  applied: boolean;
}

export type HookSignalResult = { pending: false; result: StatusResult } | { pending: true };

// Longer than a hello statement takes: a signal kept meanwhile is looked at again after these.
const RETAKE_AFTER_MS = [1000, 5000];

export interface StatusOptions {
  freshWindowMs: number;
  /** How long a hook signal that found no presence waits for one to connect. */
  pendingSignalSeconds: number;
}

export class StatusService {
  constructor(
    private readonly db: Database,
    private readonly bus: InstanceBus,
    private readonly options: StatusOptions,
    private readonly events: PresenceEvents,
    /** A status changed: the member's local presences may take more now. */
    private readonly onChanged: (memberId: string) => void,
  ) {}

  /** Null when the presence is not live. */
  async apply(presenceId: string, signal: StatusSignal): Promise<StatusResult | null> {
    return this.settled(
      presenceId,
      await retryTransient(() =>
        this.db.transaction(async (tx) => {
          const current = await lockPresenceStatus(tx, presenceId);
          return current && this.decideIn(tx, presenceId, current, signal);
        }),
      ),
    );
  }

  /** What follows a committed decision: the change told to this instance's subscribers and pump. */
  private settled(presenceId: string, result: StatusResult | null): StatusResult | null {
    if (result?.applied) {
      this.events.deliver([{ presenceId, event: "status" }]);
      this.onChanged(result.memberId);
    }
    return result;
  }

  /** A hook's signal: applied to the presence it is about, or kept until that presence connects. */
  async signalFromHook(memberId: string, origin: SignalOrigin, status: "idle" | "working"): Promise<HookSignalResult> {
    const presenceId = await findPresenceForSignal(this.db, memberId, origin);
    if (presenceId) {
      const result = await this.apply(presenceId, { status, source: "hook" });
      if (result) return { pending: false, result };
    }
    const pendingId = await keepPendingSignal(this.db, memberId, origin, status, this.options.pendingSignalSeconds);
    // A hello whose statement began before the signal was kept did not see
    // it, and its presence was not yet there to be found: look again, for a
    // presence that hello would have taken it for, now and once such a
    // statement has surely ended.
    const retaken = await this.retake(status, pendingId);
    if (retaken) return { pending: false, result: retaken };
    for (const ms of RETAKE_AFTER_MS) {
      setTimeout(() => void this.retake(status, pendingId).catch(() => {}), ms).unref();
    }
    return { pending: true };
  }

  // The kept signal is taken in the transaction that applies it, locked
  // before its presence (the order a hello takes both in): a presence that
  // ended meanwhile leaves it kept, and a status set after the signal was
  // kept (a later hook, say) is newer news, so the signal is spent without
  // being applied.
  private async retake(status: "idle" | "working", pendingId: number): Promise<StatusResult | null> {
    const presenceId = await findPresenceForKeptSignal(this.db, pendingId);
    if (!presenceId) return null;
    const result = await retryTransient(() =>
      this.db.transaction(async (tx) => {
        const kept = await lockPendingSignal(tx, pendingId);
        if (!kept) return null;
        const current = await lockPresenceStatus(tx, presenceId);
        if (!current) return null;
        await dropPendingSignal(tx, pendingId);
        return this.decideIn(tx, presenceId, current, { status, source: "hook" }, kept);
      }),
    );
    return this.settled(presenceId, result);
  }

  /** kept: the signal's age when it was kept as a pending signal; a status set since wins over it. */
  private async decideIn(tx: Executor, presenceId: string, current: LockedStatus, signal: StatusSignal, kept?: { ageMs: number }): Promise<StatusResult> {
    const next =
      kept && setAfter(current, kept)
        ? null
        : decideStatus({ status: current.status, source: current.statusSource, ageMs: current.ageMs }, signal, this.options.freshWindowMs);
    if (!next) {
      return { presenceId, memberId: current.memberId, status: current.status, statusSource: current.statusSource, applied: false };
    }
    await writePresenceStatus(tx, presenceId, next.status, next.source);
    // The presence may sit on another instance: let it claim what it may now take.
    await this.bus.publish(tx, { members: [current.memberId] });
    if (next.status !== current.status) await this.events.announce(tx, [{ presenceId, event: "status" }]);
    return { presenceId, memberId: current.memberId, status: next.status, statusSource: next.source, applied: true };
  }
}
