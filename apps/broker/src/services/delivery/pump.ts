// Moves queued deliveries to this instance's presences. schedule(members)
// marks members whose queues may hold work for a local presence; one loop
// claims for all of them in one statement, hands the pushes to the sockets,
// and loops while work remains. Acks are group-committed (acks.ts).
import type { Database } from "@switchboard/db";
import type { Logger } from "../../log.ts";
import type { Metrics } from "../../metrics.ts";
import { claimForPresences, requeue, type ClaimRequest, type LeasedDelivery } from "../../store/queue/index.ts";
import { unique } from "../../store/sql.ts";
import { takesPushes, type LocalPresence, type LocalPresences } from "../local-presences.ts";
import { queuedWork, type InstanceBus } from "../bus.ts";
import { retryTransient } from "../retry.ts";
import type { Clock } from "../timing.ts";
import { AckCommits } from "./acks.ts";
import { HandedBack } from "./handed-back.ts";
import { LeasedElsewhere } from "./leased-elsewhere.ts";
import { MissedLeases } from "./missed-leases.ts";
import type { AckedIds } from "./push-window.ts";
import { Rounds } from "./rounds.ts";
import { unavailablePresences } from "./unavailable.ts";

const MAX_MEMBERS_PER_CLAIM = 500;
// A claim reads its rows' ciphertexts into memory and serializes them as
// frames before the socket takes any; taking a whole push window (512) of
// 60 KB messages at once held ~30 MB per presence, most of it handed back
// when the socket backed up. The loop claims again while room remains.
const MAX_PUSHES_PER_CLAIM = 128;

export interface PumpOptions {
  leaseSeconds: number;
  clock: Clock;
}

export class DeliveryPump {
  private readonly due = new Set<string>();
  /** Members whose presences' windows are full: looked at again when the first lease in them runs out. */
  private readonly reopening = new Map<string, Timer>();
  private running: Promise<void> | null = null;
  private readonly rounds = new Rounds();
  /** The recovery after the bus listened again, and those asked for behind it. */
  private recovery: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly acks: AckCommits;
  private readonly handedBack = new HandedBack();
  /** Presences whose sockets closed, until their rows are ended (presenceEnding). */
  private readonly ending = new Set<string>();
  private readonly leasedElsewhere: LeasedElsewhere;
  private readonly missed: MissedLeases;

  constructor(
    private readonly db: Database,
    private readonly presences: LocalPresences,
    private readonly bus: InstanceBus,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly options: PumpOptions,
  ) {
    this.acks = new AckCommits(db);
    this.leasedElsewhere = new LeasedElsewhere(db, (leased) => this.handLeased(leased), log);
    this.missed = new MissedLeases({
      db,
      presences,
      acks: this.acks,
      hand: (leased) => this.hand(leased, null),
      log,
      leaseSeconds: options.leaseSeconds,
      clock: options.clock,
      perRead: MAX_PUSHES_PER_CLAIM,
    });
  }

  /** Members whose queue may hold something their local presences can take now. */
  schedule(memberIds: Iterable<string>): void {
    if (this.stopped) return;
    for (const id of memberIds) {
      if (this.presences.hasMember(id)) this.due.add(id);
      // No presence of the member here any more: nothing is left to hold.
      else this.handedBack.forget(id);
    }
    if (this.due.size > 0) this.running ??= this.loop();
  }

  /**
   * Deliveries a send statement of another instance leased to presences
   * here, as its notice names them: read and pushed with no claim, as a
   * send's own leases are (leased-elsewhere.ts).
   */
  leasedHere(pushes: Array<[presenceId: string, seq: number]>): void {
    if (this.stopped || pushes.length === 0) return;
    this.leasedElsewhere.take(pushes);
  }

  /**
   * The bus listens again after a gap: notices naming deliveries leased to
   * presences here may have been lost meanwhile. Those no presence here
   * pushed are pushed now (missed-leases.ts), before the claims that follow.
   */
  recoverMissedLeases(): void {
    if (this.stopped) return;
    // What notices named before now (older sends) goes out first; what they
    // name from now on (newer sends) waits for the recovery.
    const before = this.leasedElsewhere.settled();
    this.recovery = this.recovery.then(() => before).then(() => this.recover());
    this.leasedElsewhere.holdLaterUntil(this.recovery);
  }

  /** Acks read from the presence's socket, as its window split them (PushWindow.split). */
  async ack(presence: LocalPresence, { awaited, late }: AckedIds): Promise<void> {
    // A frame whose ids were all refused: nothing to apply, no claim to schedule.
    if (awaited.length + late.length === 0) return;
    const wasFull = presence.window.room() <= 0;
    const settled = presence.window.settled([...awaited, ...late]);
    try {
      await this.acks.apply(presence.memberId, awaited, late);
    } catch (error) {
      // Not acked: the pushes still await their acks (a recovery must not take them for leases never pushed).
      presence.window.unsettled(settled);
      this.presences.engage(presence);
      throw error;
    }
    // Only a full window held deliveries back in the queue (a send leases to
    // a presence with room directly); otherwise a claim would find nothing.
    if (wasFull) this.schedule([presence.memberId]);
  }

  /**
   * A presence here ended: `work` ends its row and takes its leases back.
   * Until it has, sends lease nothing to it (its row is live), and nothing is
   * pushed to its member's other presences ahead of those leases
   * (handed-back.ts); then they are claimed. A `work` that failed leaves the
   * row live until a later one for the same presence succeeds, and sends
   * lease nothing to it meanwhile.
   */
  async presenceEnding<T>(presence: { presenceId: string; memberId: string }, work: () => Promise<T>): Promise<T> {
    this.ending.add(presence.presenceId);
    try {
      const result = await this.handedBack.requeue([presence.memberId], work);
      this.ending.delete(presence.presenceId);
      return result;
    } finally {
      this.schedule([presence.memberId]);
    }
  }

  /** Whether a presence of the mesh's member with that pubkey is on this instance. */
  holds(meshId: string, pubkey: string): boolean {
    return this.presences.holds(meshId, pubkey);
  }

  /** This instance's presences that cannot take pushes now: a send must not lease to them. */
  unavailable(): string[] {
    return unavailablePresences(this.presences, this.handedBack, this.ending);
  }

  /**
   * Pushes deliveries a send wrote already leased to local presences. A round
   * under way (a claim, a recovery) may hold older deliveries of the same
   * recipients; they go out first, so per-sender order holds.
   */
  async handLeased(leased: LeasedDelivery[]): Promise<void> {
    if (leased.length === 0) return;
    while (this.rounds.underWay) await this.rounds.underWay;
    await this.hand(this.missed.notRecovered(leased), null);
  }

  /** The presence's socket caught up with its buffer: it may take pushes again. */
  drained(presence: LocalPresence): void {
    this.presences.relieve(presence);
    this.schedule([presence.memberId]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.due.clear();
    for (const timer of this.reopening.values()) clearTimeout(timer);
    this.reopening.clear();
    await this.running;
    await this.recovery;
    await this.leasedElsewhere.stop();
    await this.acks.drain();
  }

  // Only presences that can take pushes now are offered to the claim: not
  // ended, not congested, with room in their window. When every window is
  // full, the member is looked at again as the first lease in them runs out:
  // the queue takes such a push back about then, and nothing else would
  // announce it to this member's presences.
  private claimRequest(memberId: string): ClaimRequest | null {
    // Its pushes are on their way back: whatever this claim leased would go
    // back too. The end of their requeue schedules the member again.
    if (this.handedBack.returning(memberId)) return null;
    const open = this.presences.ofMember(memberId).filter(takesPushes);
    const presences = open
      .map((p) => ({ id: p.presenceId, room: Math.min(p.window.room(), MAX_PUSHES_PER_CLAIM) }))
      .filter((p) => p.room > 0);
    if (presences.length > 0) return { memberId, presences };
    const openings = open.map((p) => p.window.nextOpening()).filter((t) => t !== null);
    if (openings.length > 0) this.lookAgainAt(memberId, Math.min(...openings));
    return null;
  }

  private lookAgainAt(memberId: string, at: number): void {
    if (this.reopening.has(memberId) || this.stopped) return;
    const delay = Math.max(0, at - this.options.clock()) + 10;
    this.reopening.set(
      memberId,
      setTimeout(() => {
        this.reopening.delete(memberId);
        this.schedule([memberId]);
      }, delay),
    );
  }

  private async loop(): Promise<void> {
    try {
      while (this.due.size > 0 && !this.stopped) {
        // Deliveries sends elsewhere leased here before the news of what this
        // round claims came go out first, and so do those a recovery under
        // way finds: a sender's earlier message may be among them.
        await this.recovery;
        await this.leasedElsewhere.settled();
        const members = [...this.due].slice(0, MAX_MEMBERS_PER_CLAIM);
        for (const m of members) this.due.delete(m);
        const requests = members.map((m) => this.claimRequest(m)).filter((r) => r !== null);
        const lapsed = requests
          .flatMap((r) => this.presences.ofMember(r.memberId))
          .filter((p) => p.window.lapsed())
          .map((presence) => ({ presence, mark: presence.window.lapseMark() }));
        let leased: LeasedDelivery[] = [];
        let claimed = true;
        let claimStart = 0;
        await this.rounds.run(async () => {
          claimStart = this.handedBack.clock;
          try {
            await this.takeBackLapsed(lapsed);
            leased = await retryTransient(() => claimForPresences(this.db.relaxed, requests, this.options.leaseSeconds));
          } catch (error) {
            // The database is away: the catch-up sweep retries these members.
            this.log.error({ err: error, members: members.length }, "claim failed");
            claimed = false;
            return;
          }
          await this.hand(leased, claimStart);
        });
        if (!claimed) return;
        // A claim that filled a presence's room may have left more behind.
        const taken = new Map<string, number>();
        for (const d of leased) taken.set(d.presenceId, (taken.get(d.presenceId) ?? 0) + 1);
        for (const r of requests) {
          if (r.presences.some((p) => (taken.get(p.id) ?? 0) >= p.room)) this.due.add(r.memberId);
          // The claim leases to one of them: if that one got less than its
          // room, the queue gave all it had that these presences may take.
          else this.handedBack.caughtUp(r.memberId, claimStart);
        }
        // Let the pushes go out before the next claim (see group-commit.ts).
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.running = null;
      if (this.due.size > 0 && !this.stopped) this.running = this.loop();
    }
  }

  private async recover(): Promise<void> {
    if (this.stopped || this.presences.all().length === 0) return;
    await this.rounds.run(() => this.missed.recover(() => this.stopped));
  }

  // Pushes whose lease ran out go back to the queue before these presences
  // are leased anything: they are the oldest of their member's queue, so the
  // claim that follows takes them again first. (The lease sweep would take
  // them back too, at a moment of its own: the claim would then lease what
  // comes after them first, or not, by chance.)
  private async takeBackLapsed(lapsed: Array<{ presence: LocalPresence; mark: number }>): Promise<void> {
    if (lapsed.length === 0) return;
    const expiredOf = lapsed.map((l) => l.presence.presenceId);
    const members = await retryTransient(() => requeue(this.db.relaxed, { expiredOf }));
    for (const { presence, mark } of lapsed) {
      presence.window.tookBackLapsed(mark);
      // A lease that ran out meanwhile is not among those taken back: until it
      // is, sends pass this presence by, so nothing else may come for it.
      if (presence.window.lapsed()) this.due.add(presence.memberId);
    }
    if (members.length === 0) return;
    // Another presence of the same member elsewhere may take them too.
    void this.bus.publish(this.db, queuedWork(members, [])).catch((error: unknown) => {
      this.log.warn({ err: error }, "announcing requeued pushes failed; the catch-up will find them");
    });
  }

  // Pushes go out in queue order. Once a presence's socket stops taking them
  // (dropped, or congested), or its push window is full (a send batch may
  // lease more to one presence than it has room for), the rest of its batch
  // goes back to the queue at once, ahead of anything newer, so per-sender
  // order holds and nothing waits for a lease to run out; and so does
  // anything for it that would overtake pushes already on their way back
  // (handed-back.ts). A send's leases also go back when a push of the
  // presence's lease ran out since the statement saw the window: the room
  // that opened belongs to that push, which the claim that follows takes back
  // first. claimStart: when the claim that leased them started; null for a
  // send's own leases.
  private async hand(leased: LeasedDelivery[], claimStart: number | null): Promise<void> {
    const unwritten: LeasedDelivery[] = [];
    const now = this.options.clock();
    // Each presence's pushes in order, in one write to its socket. Within
    // that write a push rarely meets the socket's backup (it is buffered as
    // the write ends): the link then marks the presence backed up, so at
    // most the room of its window left in this batch is buffered.
    for (const [presenceId, deliveries] of byPresence(leased)) {
      const presence = this.presences.get(presenceId);
      // The first delivery not pushed: it and the rest go back.
      const stop = presence === undefined ? 0 : presence.link.writeTogether(() => {
        for (const [i, d] of deliveries.entries()) {
          if (
            presence.ended || presence.window.room() <= 0 ||
            (claimStart === null && presence.window.lapsed()) || this.handedBack.holds(presence, claimStart)
          ) return i;
          const result = presence.link.push(d, d.attempt);
          if (result === "dropped") {
            this.presences.markCongested(presence, now);
            return i;
          }
          presence.window.opened(d.messageId);
          this.presences.engage(presence);
          if (d.attempt === 1) this.metrics.pushLatencySeconds.observe(Math.max(0, now - Date.parse(d.createdAt)) / 1000);
          else this.metrics.redeliveries.inc();
          if (result === "congested") {
            this.presences.markCongested(presence, now);
            return i + 1;
          }
        }
        return deliveries.length;
      });
      unwritten.push(...deliveries.slice(stop));
    }
    if (unwritten.length === 0) return;
    this.metrics.pushesUnwritten.inc(unwritten.length);
    const pushes = unwritten.map((d) => ({ messageId: d.messageId, memberId: d.memberId, presenceId: d.presenceId }));
    const members = unique(unwritten.map((d) => d.memberId));
    try {
      await this.handedBack.requeue(members, () => retryTransient(() => requeue(this.db.relaxed, { pushes })));
    } catch (error) {
      this.log.warn({ err: error }, "requeue failed; the lease sweeper will requeue");
      return;
    } finally {
      // Another presence of the same member may take them now (claims for
      // these members waited for the requeue to end).
      this.schedule(members);
    }
    // Elsewhere too. Not awaited: a claim round must not wait for the notice.
    void this.bus.publish(this.db, queuedWork(members, [])).catch((error: unknown) => {
      this.log.warn({ err: error }, "announcing requeued pushes failed; the catch-up will find them");
    });
  }
}

/** Deliveries by the presence they are leased to, each presence's in queue order. */
function byPresence(leased: LeasedDelivery[]): Map<string, LeasedDelivery[]> {
  const groups = new Map<string, LeasedDelivery[]>();
  for (const d of [...leased].sort((a, b) => a.seq - b.seq)) {
    const group = groups.get(d.presenceId);
    if (group === undefined) groups.set(d.presenceId, [d]);
    else group.push(d);
  }
  return groups;
}
