// Presence events (docs/protocol.md "subscribe"): joined, left and status of
// every presence of a mesh, for the subscribers on this instance. A change is
// announced once per batch on the bus, inside the writer's transaction, as
// ids only; every instance reads the rows for the meshes it has subscribers
// in and fans the events out. Each subscriber keeps the set of presences it
// was told about, so it never hears `left` of a presence it did not see join
// nor `joined` twice: the snapshot and the live events meet without gaps or
// repeats however they interleave.
import type { Database, Executor } from "@switchboard/db";
import type { PresenceEventFrame, PresenceEventKind, Status } from "@switchboard/protocol";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { livePresenceRows, presenceRows, type PresenceRow } from "../store/presence-events.ts";
import type { InstanceBus } from "./bus.ts";
import { SharedReads } from "./shared-reads.ts";

export type PresenceEventView = Omit<PresenceEventFrame, "type">;
export type PresenceSink = (event: PresenceEventView) => void;

export interface PresenceChange {
  presenceId: string;
  event: PresenceEventKind;
}

interface Subscriber {
  readonly meshId: string;
  readonly sink: PresenceSink;
  /** Presences this subscriber was told about, with the status it was last told. */
  readonly known: Map<string, Status>;
  /** Events that arrived before the subscriber started (its snapshot goes first). */
  held: PresenceEventView[] | null;
}

/** The presences as `left` changes. */
export const leftEvents = (presenceIds: string[]): PresenceChange[] => presenceIds.map((presenceId) => ({ presenceId, event: "left" }));

// Presence ids one read looks up at most.
const MAX_CHANGES_PER_READ = 1000;

const view = (event: PresenceEventKind, row: PresenceRow): PresenceEventView => ({
  event,
  presenceId: row.presenceId,
  pubkey: row.pubkey,
  displayName: row.displayName,
  sessionId: row.sessionId,
  status: row.status,
});

export class PresenceEvents {
  private readonly byKey = new Map<string, Subscriber>();
  private readonly byMesh = new Map<string, Set<Subscriber>>();
  // Fan-outs run one after another, so a presence's events keep their order;
  // changes that come meanwhile wait together and are read in one statement,
  // so churn faster than a read costs fewer reads instead of a growing queue.
  private pending: PresenceChange[] = [];
  private fanningOut = false;
  /** Subscribers of one mesh that come together share its snapshot's read (begun after each registered). */
  private readonly snapshots = new SharedReads<string, PresenceRow[]>((meshId) => livePresenceRows(this.db, meshId));

  constructor(
    private readonly db: Database,
    private readonly bus: InstanceBus,
    private readonly instanceId: string,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** In the writer's transaction: the other instances hear of the changes when it commits. */
  async announce(tx: Executor, changes: PresenceChange[]): Promise<void> {
    if (changes.length === 0) return;
    await this.bus.publish(tx, { presence: changes.map((c) => ({ id: c.presenceId, event: c.event })), from: this.instanceId });
  }

  /** After the commit: this instance's subscribers hear of the changes. */
  deliver(changes: PresenceChange[]): void {
    if (changes.length === 0 || this.byMesh.size === 0) return;
    this.pending.push(...changes);
    if (!this.fanningOut) void this.fanOutPending();
  }

  private async fanOutPending(): Promise<void> {
    this.fanningOut = true;
    try {
      while (this.pending.length > 0) {
        const changes = this.pending.splice(0, MAX_CHANGES_PER_READ);
        await this.fanOut(changes).catch((error: unknown) => this.log.warn({ err: error }, "presence events failed"));
      }
    } finally {
      this.fanningOut = false;
    }
  }

  /** Changes another instance announced. */
  received(changes: PresenceChange[], from: string): void {
    if (from !== this.instanceId) this.deliver(changes);
  }

  /**
   * Registers a subscriber and reads its snapshot. It hears nothing until
   * start(): then first `joined` for every live presence, then what happened since.
   */
  async subscribe(key: string, meshId: string, sink: PresenceSink): Promise<{ start(): void }> {
    this.unsubscribe(key);
    const subscriber: Subscriber = { meshId, sink, known: new Map(), held: [] };
    this.byKey.set(key, subscriber);
    let set = this.byMesh.get(meshId);
    if (!set) this.byMesh.set(meshId, (set = new Set()));
    set.add(subscriber);
    this.metrics.presenceSubscribers.set(this.byKey.size);
    let snapshot: PresenceRow[];
    try {
      snapshot = await this.snapshots.get(meshId);
    } catch (error) {
      this.unsubscribe(key);
      throw error;
    }
    return {
      start: () => {
        const held = subscriber.held ?? [];
        subscriber.held = null;
        for (const row of snapshot) this.offer(subscriber, view("joined", row));
        for (const event of held) this.offer(subscriber, event);
      },
    };
  }

  unsubscribe(key: string): void {
    const subscriber = this.byKey.get(key);
    if (!subscriber) return;
    this.byKey.delete(key);
    const set = this.byMesh.get(subscriber.meshId);
    set?.delete(subscriber);
    if (set?.size === 0) this.byMesh.delete(subscriber.meshId);
    this.metrics.presenceSubscribers.set(this.byKey.size);
  }

  private async fanOut(changes: PresenceChange[]): Promise<void> {
    const meshes = [...this.byMesh.keys()];
    if (meshes.length === 0) return;
    const rows = new Map((await presenceRows(this.db, [...new Set(changes.map((c) => c.presenceId))], meshes)).map((r) => [r.presenceId, r]));
    for (const change of changes) {
      const row = rows.get(change.presenceId);
      // A presence that ended before its news was read: a `joined` told now
      // would outlive the `left` its subscribers may have had already.
      if (!row || (row.gone && change.event !== "left")) continue;
      for (const subscriber of this.byMesh.get(row.meshId) ?? []) this.offer(subscriber, view(change.event, row));
    }
  }

  private offer(subscriber: Subscriber, event: PresenceEventView): void {
    if (subscriber.held !== null) {
      subscriber.held.push(event);
      return;
    }
    const told = subscriber.known.get(event.presenceId);
    if (event.event === "joined") {
      if (told !== undefined) return;
      subscriber.known.set(event.presenceId, event.status);
    } else if (event.event === "left") {
      if (told === undefined) return;
      subscriber.known.delete(event.presenceId);
    } else {
      if (told === undefined || told === event.status) return;
      subscriber.known.set(event.presenceId, event.status);
    }
    try {
      subscriber.sink(event);
    } catch (error) {
      this.log.warn({ err: error }, "a presence subscriber failed");
    }
  }
}
