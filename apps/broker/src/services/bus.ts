// The bus between broker instances: LISTEN/NOTIFY on one channel. Writers
// publish once per batch, inside their transaction, with a small payload
// (member, mesh or presence ids, never message data); the rows stay the
// truth, so a lost notification only delays work until the next catch-up.
import { randomUUID } from "node:crypto";
import type { Database, Executor } from "@switchboard/db";
import { PRESENCE_EVENTS } from "@switchboard/protocol";
import { z } from "zod";
import type { Logger } from "../log.ts";
import { BUS_CHANNEL, MAX_NOTIFIED_ENTRIES, MAX_NOTIFIED_MEMBERS, notify } from "../store/notify.ts";

const busMessage = z.object({
  /** These members' queues have new work. */
  members: z.array(z.string()).optional(),
  /** As members, for every member of these meshes (too many to list). */
  meshes: z.array(z.string()).optional(),
  /** Deliveries a send statement leased to presences of this instance, as [presence id, delivery id]: to be pushed without a claim. */
  leased: z.object({ instance: z.string(), pushes: z.array(z.tuple([z.string(), z.number()])) }).optional(),
  /** Ephemeral sends written for this instance into the relay table (store/ephemeral-relay.ts), by message id: it takes them and pushes them. */
  relayed: z.object({ instance: z.string(), messages: z.array(z.string()) }).optional(),
  /** These presences ended elsewhere; the instance holding the socket closes it. */
  close: z.array(z.object({ presenceId: z.string(), reason: z.enum(["replaced"]) })).optional(),
  /** These members were revoked; every instance closes their sockets. */
  revoked: z.array(z.string()).optional(),
  /** These tokens (ids) were revoked; every instance forgets them. */
  revokedTokens: z.array(z.string()).optional(),
  /** Presences their instance's graceful stop ended: the others look after leases a send gave them late (recent-ends.ts). */
  stopped: z.array(z.string()).optional(),
  /** Requests whose hold on replies that stop released lately: the others look after replies a send held for them late. */
  stoppedHolds: z.array(z.string()).optional(),
  /** Presences that joined, left or changed status; instances with subscribers read their rows. */
  presence: z.array(z.object({ id: z.string(), event: z.enum(PRESENCE_EVENTS) })).optional(),
  /** An instance's own notice, sent to learn whether its listener hears the channel (InstanceBus.hearsItself). */
  probe: z.string().optional(),
  /** The instance that published (presence events skip their own). */
  from: z.string().optional(),
});
export type BusMessage = z.infer<typeof busMessage>;

export interface BusHandlers {
  queuedWork(memberIds: string[]): void;
  queuedWorkInMeshes(meshIds: string[]): void;
  leased(instanceId: string, pushes: Array<[presenceId: string, seq: number]>): void;
  relayed(instanceId: string, messageIds: string[]): void;
  replaced(presenceId: string): void;
  revoked(memberId: string): void;
  tokenRevoked(tokenId: string): void;
  presence(changes: Array<{ presenceId: string; event: (typeof PRESENCE_EVENTS)[number] }>, from: string): void;
  stoppedElsewhere(presenceIds: string[]): void;
  holdsReleasedElsewhere(requestIds: string[]): void;
  /** After (re)subscribing: notifications may have been missed meanwhile. */
  resubscribed(): void;
}

/** New work for these members: named by mesh when they are too many and the meshes are known (publish splits what is long). (The send statement builds the same payload in SQL: store/queue/enqueue.ts.) */
export function queuedWork(memberIds: string[], meshIds: string[]): BusMessage {
  if (memberIds.length > MAX_NOTIFIED_MEMBERS && meshIds.length > 0) return { meshes: [...new Set(meshIds)] };
  return { members: memberIds };
}

// Lists are cut to the bounds of store/notify.ts: MAX_NOTIFIED_MEMBERS
// member ids, MAX_NOTIFIED_ENTRIES of anything else.
function chunked<T>(items: T[] | undefined, max = MAX_NOTIFIED_ENTRIES): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < (items?.length ?? 0); i += max) chunks.push(items!.slice(i, i + max));
  return chunks;
}

/**
 * A message as payloads Postgres takes: one list per part, each within its
 * bound, in the order the handlers read them. A batch of hellos may replace
 * hundreds of sessions held elsewhere; one payload for all of them failed
 * the batch's transaction.
 */
function withinPayloadLimit(message: BusMessage): BusMessage[] {
  const from = message.from === undefined ? {} : { from: message.from };
  const parts: BusMessage[] = [
    ...chunked(message.members, MAX_NOTIFIED_MEMBERS).map((members) => ({ ...from, members })),
    ...chunked(message.meshes).map((meshes) => ({ ...from, meshes })),
    ...chunked(message.close).map((close) => ({ ...from, close })),
    ...chunked(message.revoked).map((revoked) => ({ ...from, revoked })),
    ...chunked(message.revokedTokens).map((revokedTokens) => ({ ...from, revokedTokens })),
    ...chunked(message.stopped).map((stopped) => ({ ...from, stopped })),
    ...chunked(message.stoppedHolds).map((stoppedHolds) => ({ ...from, stoppedHolds })),
    ...chunked(message.presence).map((presence) => ({ ...from, presence })),
  ];
  return parts.length <= 1 ? [message] : parts;
}

/**
 * Notices published on the database never reach this instance's listener:
 * through a pooler in transaction or statement mode, LISTEN holds only on
 * the server connection that ran it, which then serves other clients.
 */
export class BusUnheardError extends Error {
  readonly code = "bus_unheard";
  constructor() {
    super(
      "bus_unheard: notices published on the database never reached this instance's listener; " +
        "is DATABASE_URL a pooler in transaction or statement mode? The broker needs a direct connection or session mode (docs/deploy.md, PgBouncer)",
    );
  }
}

/** How many notices of its own the instance publishes at start, each given this long to come back, before it gives up. */
const PROBES = 3;
const PROBE_WAIT_MS = 3000;

export class InstanceBus {
  /** Probes published and not heard yet, by their payload's token. */
  private readonly probes = new Map<string, () => void>();

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
  ) {}

  /** Only a shared server has other instances to tell; embedded mode is one process. */
  get crossInstance(): boolean {
    return this.db.kind === "postgres";
  }

  /** Queues NOTIFYs in the caller's transaction: they go out with the commit. */
  async publish(tx: Executor, message: BusMessage): Promise<void> {
    if (!this.crossInstance) return;
    for (const part of withinPayloadLimit(message)) await notify(tx, JSON.stringify(part));
  }

  /**
   * Whether a notice this instance publishes comes back to its own listener.
   * Each probe is published alone, outside any transaction: a connection lost
   * meanwhile throws, for the caller to try again once the database serves.
   */
  async hearsItself(): Promise<boolean> {
    if (!this.crossInstance) return true;
    for (let probe = 1; probe <= PROBES; probe++) {
      const token = randomUUID();
      let timer: Timer | undefined;
      const heard = new Promise<boolean>((resolve) => this.probes.set(token, () => resolve(true)));
      try {
        await this.publish(this.db, { probe: token });
        // Timed from its commit: a database slow to take it is not one deaf to it.
        const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), PROBE_WAIT_MS)));
        if (await Promise.race([heard, late])) return true;
      } finally {
        clearTimeout(timer);
        this.probes.delete(token);
      }
    }
    return false;
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
        if (message.probe !== undefined) this.probes.get(message.probe)?.();
        if (message.members) handlers.queuedWork(message.members);
        if (message.meshes) handlers.queuedWorkInMeshes(message.meshes);
        if (message.leased) handlers.leased(message.leased.instance, message.leased.pushes);
        if (message.relayed) handlers.relayed(message.relayed.instance, message.relayed.messages);
        for (const c of message.close ?? []) handlers.replaced(c.presenceId);
        for (const m of message.revoked ?? []) handlers.revoked(m);
        for (const t of message.revokedTokens ?? []) handlers.tokenRevoked(t);
        if (message.stopped) handlers.stoppedElsewhere(message.stopped);
        if (message.stoppedHolds) handlers.holdsReleasedElsewhere(message.stoppedHolds);
        if (message.presence) handlers.presence(message.presence.map((p) => ({ presenceId: p.id, event: p.event })), message.from ?? "");
      },
      () => handlers.resubscribed(),
    );
  }
}
