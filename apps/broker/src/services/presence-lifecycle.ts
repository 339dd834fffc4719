// A presence's life on this instance after its hello was admitted: it joins
// the local registry, and it ends by its socket closing, by a newer session
// replacing it, by its member's revocation, or by this instance losing its
// lease. Whatever was leased to an ended presence goes back to the queue.
import type { Database } from "@switchboard/db";
import type { Logger } from "../log.ts";
import { writeAudit } from "../store/audit.ts";
import {
  countLivePresencesOfInstance,
  disconnectPresences,
  endedPresences,
  settledPresencesOfInstance,
} from "../store/presences.ts";
import { queuedWork, type InstanceBus } from "./bus.ts";
import { createGroupCommit, type GroupCommit } from "./group-commit.ts";
import { addTo, deleteFrom } from "./keyed-sets.ts";
import { sessionKey, type EndReason, type LocalPresence, type LocalPresences } from "./local-presences.ts";
import type { PresenceEvents } from "./presence-events.ts";
import type { QueuedWork } from "./queued-work.ts";
import { retryTransient } from "./retry.ts";
import { settleWithin } from "./timing.ts";
import type { TokenExpiry } from "./token-expiry.ts";

type PresenceRow = Pick<LocalPresence, "presenceId" | "memberId" | "meshId">;

/** The pushes of this instance (DeliveryPump). */
export interface EndingPushes {
  /** Runs `work`, which ends a presence's row and takes its leases back; the member's other presences get nothing ahead of them. */
  presenceEnding<T>(presence: PresenceRow, work: () => Promise<T>): Promise<T>;
}

// The frames a closing socket read are a connection's in-flight bound at most
// (acks and sends each commit in a group commit, a few milliseconds apiece);
// a database too slow for them in this time delays every end by no more.
const FRAMES_READ_WAIT_MS = 5_000;

// Ends written in one transaction. Sockets close together by the hundred (a
// replaced instance's sessions, a network blip): one transaction each would
// queue them all on the pool, and every statement of this instance behind them.
const MAX_ENDS_PER_COMMIT = 256;

interface Ending {
  presence: PresenceRow;
  detail: string;
}

/** Waits for every one, then fails with the first failure: a run of ends is over only once none is in flight. */
async function settledAll(ends: Promise<void>[]): Promise<void> {
  const failed = (await Promise.allSettled(ends)).find((outcome) => outcome.status === "rejected");
  if (failed) throw failed.reason;
}

export class PresenceLifecycle {
  /**
   * Ends the database did not take (it was away): their rows would stay live
   * (counted, listed, matched by hooks, leased to) for as long as this
   * instance runs. finishDisconnects tries them again.
   */
  private readonly unfinished = new Map<string, { presence: PresenceRow; detail: string }>();
  /** Ends being written now: their rows are live until the write commits. */
  private readonly ending = new Set<string>();
  /** Set once the instance stops: its presences end together (InstanceLease.stop), not one by one. */
  private stopping = false;
  /** Ends of sockets that closed by themselves, being written: the instance's stop waits for them. */
  private readonly leaving = new Set<Promise<void>>();
  /** Those of them that failed once the instance was stopping: its stop reports them. */
  private readonly failedWhileStopping: unknown[] = [];
  /** By session (sessionKey): the frames read by its sockets that closed, until their ends are written. */
  private readonly closing = new Map<string, Set<Promise<void>>>();
  /** Each end's result: its member, if its leases went back to the queue. */
  private readonly ends: GroupCommit<Ending, string[]>;

  constructor(
    private readonly db: Database,
    private readonly presences: LocalPresences,
    private readonly queuedWork: QueuedWork,
    private readonly bus: InstanceBus,
    private readonly log: Logger,
    private readonly instanceId: string,
    private readonly events: PresenceEvents,
    private readonly tokenExpiry: TokenExpiry,
    private readonly pushes: EndingPushes,
  ) {
    this.ends = createGroupCommit((batch) => this.writeDisconnects(batch), MAX_ENDS_PER_COMMIT);
  }

  /**
   * A hello of a session that has a socket here, open or closing, is about to
   * replace it: the frames that socket read so far are handled first, at
   * most FRAMES_READ_WAIT_MS (or `withinMs`, when less), as on a close. The
   * replacement takes the session's leases back; an ack read before it must
   * count, or its message is pushed again to the new socket.
   */
  async sessionSettled(pubkey: string, sessionId: string, withinMs: number = FRAMES_READ_WAIT_MS): Promise<void> {
    // A socket that closed a moment ago is no longer live here, but its row
    // is until its end is written: the hello would end it, and take its
    // leases back, without waiting.
    const waits = [
      ...this.presences.ofSession(pubkey, sessionId).map((p) => p.link.framesRead()),
      ...(this.closing.get(sessionKey(pubkey, sessionId)) ?? []),
    ];
    if (waits.length === 0) return;
    await settleWithin(Promise.all(waits), Math.min(withinMs, FRAMES_READ_WAIT_MS), () => undefined);
  }

  /** An admitted presence starts receiving. `replacedId`: the presence it replaced, if that one was here. */
  joined(presence: LocalPresence, replacedId: string | null): void {
    if (replacedId !== null) this.end(replacedId, "replaced");
    this.presences.add(presence);
    this.tokenExpiry.track(presence);
    this.queuedWork.forMembers([presence.memberId]);
  }

  /**
   * Its socket closed. `framesRead` settles once the frames the socket read
   * before closing are handled: an ack among them must be applied before the
   * leases go back, or its message is pushed again, perhaps to another of the
   * member's sessions, which cannot know it was handled. Waited for at most
   * FRAMES_READ_WAIT_MS: past that the leases go back regardless.
   */
  async left(presence: LocalPresence, detail: string, framesRead: Promise<void>): Promise<void> {
    this.forget(presence);
    const key = sessionKey(presence.pubkey, presence.sessionId);
    addTo(this.closing, key, framesRead);
    const ending = this.disconnect(presence, detail, framesRead);
    this.leaving.add(ending);
    try {
      await ending;
    } catch (error) {
      // Once the instance stops, its stop says what it could not write (and InstanceLease.stop ends the presence too).
      if (!this.stopping) throw error;
      this.failedWhileStopping.push(error);
    } finally {
      deleteFrom(this.closing, key, framesRead);
      this.leaving.delete(ending);
    }
  }

  /** Settles once the ends being written have been; rejects with the first that failed since the stop began. */
  async endsUnderWay(): Promise<void> {
    await Promise.allSettled([...this.leaving]);
    if (this.failedWhileStopping.length > 0) throw this.failedWhileStopping[0];
  }

  /** Its socket closed on shutdown: the instance ends all its presences in one statement (InstanceLease.stop). */
  forget(presence: LocalPresence): void {
    this.presences.remove(presence);
    this.events.unsubscribe(presence.presenceId);
  }

  /**
   * Ends a presence in the database (requeueing its leases), once `first`
   * settled; its socket is gone or going. From now until its leases are back
   * in the queue, a message for the member must not be leased to its other
   * presences directly: it would overtake them.
   */
  async disconnect(presence: PresenceRow, detail: string, first: Promise<void> = Promise.resolve()): Promise<void> {
    // Being written already (a catch-up run ended by another end's failure
    // left it in flight): a second write would say it left twice.
    if (this.ending.has(presence.presenceId)) return;
    this.ending.add(presence.presenceId);
    try {
      const woken = await this.pushes.presenceEnding(presence, async () => {
        await settleWithin(first, FRAMES_READ_WAIT_MS, () => undefined);
        return this.ends.submit({ presence, detail });
      });
      this.unfinished.delete(presence.presenceId);
      this.queuedWork.forMembers(woken);
    } catch (error) {
      const { presenceId, memberId, meshId } = presence;
      this.unfinished.set(presenceId, { presence: { presenceId, memberId, meshId }, detail });
      throw error;
    } finally {
      this.ending.delete(presence.presenceId);
    }
  }

  /** The instance is stopping: the catch-up leaves its rows to InstanceLease.stop. */
  stop(): void {
    this.stopping = true;
  }

  /** The catch-up for ends the database did not take: each is written again until it is. */
  async finishDisconnects(): Promise<void> {
    await settledAll([...this.unfinished.values()].map(({ presence, detail }) => this.disconnect(presence, detail)));
  }

  /** Returns, for each end, its member if its leases went back to the queue. */
  private async writeDisconnects(batch: Ending[]): Promise<string[][]> {
    const left = batch.map(({ presence }) => ({ presenceId: presence.presenceId, event: "left" as const }));
    const woken = await retryTransient(() =>
      this.db.transaction(async (tx) => {
        const members = new Set(await disconnectPresences(tx, batch.map(({ presence }) => presence.presenceId)));
        await writeAudit(
          tx,
          batch.map(({ presence, detail }) => ({
            event: "disconnect",
            meshId: presence.meshId,
            memberId: presence.memberId,
            meta: { presenceId: presence.presenceId, instanceId: this.instanceId, reason: detail },
          })),
        );
        // The members' other presences, here or elsewhere, may take over their leases.
        if (members.size > 0) {
          const meshes = batch.filter(({ presence }) => members.has(presence.memberId)).map(({ presence }) => presence.meshId);
          await this.bus.publish(tx, queuedWork([...members], meshes));
        }
        await this.events.announce(tx, left);
        return members;
      }),
    );
    this.events.deliver(left);
    return batch.map(({ presence }) => (woken.has(presence.memberId) ? [presence.memberId] : []));
  }

  /** Ends the socket of a presence on this instance, if it is here. */
  end(presenceId: string, reason: EndReason): void {
    this.presences.get(presenceId)?.link.end(reason);
  }

  endAll(reason: EndReason): void {
    for (const p of this.presences.all()) p.link.end(reason);
  }

  endMember(memberId: string, reason: EndReason): void {
    for (const p of this.presences.ofMember(memberId)) p.link.end(reason);
  }

  /** A reply the presence's socket could not write at once: it is backed up, as by a push. */
  backedUp(presence: LocalPresence, now: number): void {
    this.presences.markCongested(presence, now);
  }

  /** Ends presences whose sockets have been backed up longer than stalledMs: their leases requeue, in order. */
  endStalled(now: number, stalledMs: number): void {
    for (const p of this.presences.congestedSince(now - stalledMs)) p.link.end("stalled");
  }

  /** A member was revoked: its sockets here close, and the other instances are told to close theirs. */
  async revoked(memberId: string): Promise<void> {
    this.endMember(memberId, "revoked");
    try {
      await this.bus.publish(this.db, { revoked: [memberId] });
    } catch (error) {
      this.log.warn({ err: error, memberId }, "could not tell other instances of a revocation");
    }
  }

  /** The catch-up for ends whose bus message was missed (the listener was reconnecting). */
  async endEnded(): Promise<void> {
    const ended = await endedPresences(this.db, this.presences.all().map((p) => p.presenceId));
    for (const e of ended) this.end(e.presenceId, e.reason);
  }

  /**
   * The catch-up for rows of this instance that no socket here holds: a
   * hello batch whose commit's answer was lost (its sockets were told it
   * failed), or one admitted while its socket went away unseen. Counted
   * first, so the common case costs one count; a row younger than a hello
   * may take is left to its admission.
   */
  async endSocketless(minAgeSeconds: number): Promise<void> {
    if (this.stopping) return;
    const retried = [...this.unfinished.keys()].filter((id) => !this.ending.has(id)).length;
    const accounted = this.presences.size + this.ending.size + retried;
    if ((await countLivePresencesOfInstance(this.db, this.instanceId)) <= accounted) return;
    const rows = await settledPresencesOfInstance(this.db, this.instanceId, minAgeSeconds);
    if (this.stopping) return;
    const socketless = rows.filter((row) => !this.presences.get(row.presenceId) && !this.unfinished.has(row.presenceId) && !this.ending.has(row.presenceId));
    for (const row of socketless) this.log.warn({ presenceId: row.presenceId }, "ending a presence no socket holds");
    await settledAll(socketless.map((row) => this.disconnect(row, "no socket")));
  }
}
