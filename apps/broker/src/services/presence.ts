// The end of presences: a socket closing, a session replaced, a member
// revoked. Whatever was leased to an ended presence goes back to the queue.
import type { Database } from "@switchboard/db";
import { CLOSE_CODES } from "@switchboard/protocol";
import type { Logger } from "../log.ts";
import { writeAudit } from "../store/audit.ts";
import { disconnectPresences, endedPresences } from "../store/presences.ts";
import { retryTransient } from "./batcher.ts";
import type { DeliveryPump } from "./delivery.ts";
import type { LocalPresence, SessionRegistry } from "./sessions.ts";
import { memberWake, type Wakeups } from "./wakeups.ts";

export class PresenceService {
  constructor(
    private readonly db: Database,
    private readonly sessions: SessionRegistry,
    private readonly pump: DeliveryPump,
    private readonly wakeups: Wakeups,
    private readonly log: Logger,
    private readonly instanceId: string,
  ) {}

  async disconnect(presence: Pick<LocalPresence, "presenceId" | "memberId" | "meshId">, reason: string): Promise<void> {
    const members = await retryTransient(() =>
      this.db.transaction(async (tx) => {
        const woken = await disconnectPresences(tx, [presence.presenceId]);
        await writeAudit(tx, [
          {
            event: "disconnect",
            meshId: presence.meshId,
            memberId: presence.memberId,
            meta: { presenceId: presence.presenceId, instanceId: this.instanceId, reason },
          },
        ]);
        // The member's other presences, here or elsewhere, may take over its leases.
        if (woken.length > 0) await this.wakeups.publish(tx, memberWake(woken, [presence.meshId]));
        return woken;
      }),
    );
    this.pump.wake(members);
  }

  closeLocal(presenceId: string, code: number, reason: string): void {
    this.sessions.get(presenceId)?.socket.close(code, reason);
  }

  /** Closes the member's sockets here, and tells the other instances to close theirs. */
  async revoked(memberId: string): Promise<void> {
    this.closeRevokedLocal(memberId);
    try {
      await this.wakeups.publish(this.db, { revoked: [memberId] });
    } catch (error) {
      this.log.warn({ err: error, memberId }, "could not tell other instances of a revocation");
    }
  }

  /** The catch-up for closes whose wake-up was missed (the listener was reconnecting). */
  async closeEnded(): Promise<void> {
    const ended = await endedPresences(this.db, this.sessions.all().map((p) => p.presenceId));
    for (const e of ended) {
      this.closeLocal(e.presenceId, e.reason === "revoked" ? CLOSE_CODES.revoked : CLOSE_CODES.replaced, e.reason);
    }
  }

  closeRevokedLocal(memberId: string): void {
    for (const p of this.sessions.ofMember(memberId)) p.socket.close(CLOSE_CODES.revoked, "revoked");
  }
}
