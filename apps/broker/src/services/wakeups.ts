// Wake-ups between instances. Writers NOTIFY once per batch with a small
// payload (member, mesh or presence ids, never message data); the rows stay
// the truth, so a lost wake-up only delays work until the next catch-up.
import type { Database, Executor } from "@switchboard/db";
import { z } from "zod";
import type { Logger } from "../log.ts";
import { WAKE_CHANNEL, notify } from "../store/notify.ts";

// Postgres refuses payloads of 8000 bytes or more; past this many members a
// wake-up names the meshes instead.
const MAX_MEMBER_IDS = 150;

const wakePayload = z.object({
  members: z.array(z.string()).optional(),
  meshes: z.array(z.string()).optional(),
  close: z.array(z.object({ presenceId: z.string(), code: z.number().int(), reason: z.string() })).optional(),
  revoked: z.array(z.string()).optional(),
});
export type WakePayload = z.infer<typeof wakePayload>;

export interface WakeHandlers {
  members(memberIds: string[]): void;
  meshes(meshIds: string[]): void;
  close(presenceId: string, code: number, reason: string): void;
  revoked(memberId: string): void;
  /** After (re)subscribing: wake-ups may have been missed meanwhile. */
  resubscribed(): void;
}

export function memberWake(memberIds: string[], meshIds: string[]): WakePayload {
  return memberIds.length <= MAX_MEMBER_IDS ? { members: memberIds } : { meshes: [...new Set(meshIds)] };
}

export class Wakeups {
  constructor(
    private readonly db: Database,
    private readonly log: Logger,
  ) {}

  /** Only a shared server has other instances to tell; embedded mode is one process. */
  get crossInstance(): boolean {
    return this.db.kind === "postgres";
  }

  /** Queues a NOTIFY in the caller's transaction. */
  async publish(tx: Executor, payload: WakePayload): Promise<void> {
    if (!this.crossInstance) return;
    await notify(tx, JSON.stringify(payload));
  }

  async subscribe(handlers: WakeHandlers): Promise<() => Promise<void>> {
    if (!this.crossInstance) return async () => {};
    return this.db.listen(
      WAKE_CHANNEL,
      (raw) => {
        let parsed: WakePayload;
        try {
          parsed = wakePayload.parse(JSON.parse(raw));
        } catch (error) {
          this.log.warn({ err: error }, "ignored a malformed wake-up");
          return;
        }
        if (parsed.members) handlers.members(parsed.members);
        if (parsed.meshes) handlers.meshes(parsed.meshes);
        for (const c of parsed.close ?? []) handlers.close(c.presenceId, c.code, c.reason);
        for (const m of parsed.revoked ?? []) handlers.revoked(m);
      },
      () => handlers.resubscribed(),
    );
  }
}
