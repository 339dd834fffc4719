// The bus between broker instances: LISTEN/NOTIFY on one channel. Writers
// publish once per batch, inside their transaction, with a small payload
// (member, mesh or presence ids, never message data); the rows stay the
// truth, so a lost notification only delays work until the next catch-up.
import type { Database, Executor } from "@switchboard/db";
import { z } from "zod";
import type { Logger } from "../log.ts";
import { BUS_CHANNEL, MAX_NOTIFIED_MEMBERS, notify } from "../store/notify.ts";

const busMessage = z.object({
  /** These members' queues have new work. */
  members: z.array(z.string()).optional(),
  /** As members, for every member of these meshes (too many to list). */
  meshes: z.array(z.string()).optional(),
  /** These presences ended elsewhere; the instance holding the socket closes it. */
  close: z.array(z.object({ presenceId: z.string(), reason: z.enum(["replaced"]) })).optional(),
  /** These members were revoked; every instance closes their sockets. */
  revoked: z.array(z.string()).optional(),
});
export type BusMessage = z.infer<typeof busMessage>;

export interface BusHandlers {
  queuedWork(memberIds: string[]): void;
  queuedWorkInMeshes(meshIds: string[]): void;
  replaced(presenceId: string): void;
  revoked(memberId: string): void;
  /** After (re)subscribing: notifications may have been missed meanwhile. */
  resubscribed(): void;
}

/** New work for these members: named by mesh when they are too many and the meshes are known, else in chunks. */
export function queuedWork(memberIds: string[], meshIds: string[]): BusMessage[] {
  if (memberIds.length <= MAX_NOTIFIED_MEMBERS) return [{ members: memberIds }];
  if (meshIds.length > 0) return [{ meshes: [...new Set(meshIds)] }];
  const chunks: BusMessage[] = [];
  for (let i = 0; i < memberIds.length; i += MAX_NOTIFIED_MEMBERS) chunks.push({ members: memberIds.slice(i, i + MAX_NOTIFIED_MEMBERS) });
  return chunks;
}

export class InstanceBus {
  constructor(
    private readonly db: Database,
    private readonly log: Logger,
  ) {}

  /** Only a shared server has other instances to tell; embedded mode is one process. */
  get crossInstance(): boolean {
    return this.db.kind === "postgres";
  }

  /** Queues NOTIFYs in the caller's transaction: they go out with the commit. */
  async publish(tx: Executor, messages: BusMessage | BusMessage[]): Promise<void> {
    if (!this.crossInstance) return;
    for (const message of Array.isArray(messages) ? messages : [messages]) await notify(tx, JSON.stringify(message));
  }

  async subscribe(handlers: BusHandlers): Promise<() => Promise<void>> {
    if (!this.crossInstance) return async () => {};
    return this.db.listen(
      BUS_CHANNEL,
      (raw) => {
        let message: BusMessage;
        try {
          message = busMessage.parse(JSON.parse(raw));
        } catch (error) {
          this.log.warn({ err: error }, "ignored a malformed bus message");
          return;
        }
        if (message.members) handlers.queuedWork(message.members);
        if (message.meshes) handlers.queuedWorkInMeshes(message.meshes);
        for (const c of message.close ?? []) handlers.replaced(c.presenceId);
        for (const m of message.revoked ?? []) handlers.revoked(m);
      },
      () => handlers.resubscribed(),
    );
  }
}
