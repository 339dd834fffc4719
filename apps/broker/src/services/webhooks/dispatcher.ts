// Webhook recipients as a consumer of the delivery queue (docs/http.md).
// News of queued work for a webhook member (QueuedWork: a commit here, a bus
// wake-up from another instance) starts an attempt: the member's webhook
// row is leased (one request in flight per member, across instances), up to
// 100 of its queued deliveries are leased to the attempt, in queue order, and
// POSTed. A 2xx acks them all; anything else puts them back at the head of
// the queue and pushes the next attempt back (backoff.ts). A timer finds the
// webhooks whose retry is due or whose news was missed.
import { isConnectionLost, type Database } from "@switchboard/db";
import { MAX_WEBHOOK_BATCH } from "@switchboard/protocol";
import type { Logger } from "../../log.ts";
import type { Metrics } from "../../metrics.ts";
import { ackHeldBy, claimForHolder, requeue } from "../../store/queue/index.ts";
import {
  recordAttempt,
  releaseWebhook,
  takeWebhook,
  webhookMembers,
  webhookQueueDepth,
  type WebhookMember,
} from "../../store/webhooks.ts";
import { queuedWork, type InstanceBus } from "../bus.ts";
import type { QueueConsumer, QueuedWork } from "../queued-work.ts";
import { retryTransient } from "../retry.ts";
import { Periodic } from "../periodic.ts";
import type { Clock } from "../timing.ts";
import { failureDelayMs, type BackoffBounds } from "./backoff.ts";
import { withinBatchBytes } from "./batch.ts";
import type { WebhookPoster, WebhookRequest, WebhookResult } from "./request.ts";
import { checkTarget, type Resolve } from "./target-policy.ts";

// Requests in flight from one instance at once (to different members).
const MAX_CONCURRENT = 64;
// Of those, to members whose last request here failed: endpoints that hang
// until the timeout and are tried again at once would otherwise hold every
// slot, and the others would wait a timeout for one.
const MAX_CONCURRENT_FAILING = MAX_CONCURRENT / 2;
// A retry timer fires a little after the due time, so the database's clock agrees it is due.
const TIMER_SLACK_MS = 20;

export interface DispatcherOptions {
  /** How long a request may take; the lease outlives it (webhookLeaseSeconds). */
  timeoutMs: number;
  backoff: BackoffBounds;
  leaseSeconds: number;
  allowPrivate: boolean;
  refreshIntervalMs: number;
  depthIntervalMs: number;
  clock: Clock;
  /** The target's name lookup: the system's resolver unless a test gives its own. */
  resolve?: Resolve;
}

/** A request in flight keeps its lease at least as long as LEASE_SECONDS, and always past its own timeout. */
export function webhookLeaseSeconds(leaseSeconds: number, timeoutMs: number): number {
  return Math.max(leaseSeconds, Math.ceil(timeoutMs / 1000) + 5);
}

export class WebhookDispatcher implements QueueConsumer {
  /** Webhook members, by member id → mesh id, as of the last refresh or change here. */
  private readonly known = new Map<string, string>();
  /** Not worth asking the database before this time (ms): the member is backing off. */
  private readonly notBefore = new Map<string, number>();
  private readonly due = new Set<string>();
  private readonly inFlight = new Set<string>();
  /** Members whose last request from here failed. */
  private readonly failing = new Set<string>();
  private failingInFlight = 0;
  /** News arrived while the member's attempt was in flight. */
  private readonly again = new Set<string>();
  private readonly retryTimers = new Map<string, Timer>();
  /** Webhooks set (their mesh id) or deleted (null) here while a refresh read them: its rows may predate that. */
  private readonly changedWhileRead = new Map<string, string | null>();
  private reading = 0;
  private readonly attempts = new Set<Promise<void>>();
  private readonly periodic = new Periodic((error, sweep) => this.log.warn({ err: error, sweep }, "webhook sweep failed"));
  private readonly shutdown = new AbortController();

  constructor(
    private readonly db: Database,
    private readonly bus: InstanceBus,
    /** This instance's consumers of queued work (its sockets), told what a deleted webhook gave back. */
    private readonly news: QueuedWork,
    private readonly poster: WebhookPoster,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly options: DispatcherOptions,
  ) {}

  members(memberIds: readonly string[]): void {
    for (const id of memberIds) if (this.known.has(id)) this.schedule(id);
  }

  meshes(meshIds: readonly string[]): void {
    const meshes = new Set(meshIds);
    for (const [id, meshId] of this.known) if (meshes.has(meshId)) this.schedule(id);
  }

  /** A webhook was set here: deliver to it now. */
  track(memberId: string, meshId: string): void {
    if (this.reading > 0) this.changedWhileRead.set(memberId, meshId);
    this.known.set(memberId, meshId);
    this.notBefore.delete(memberId);
    this.schedule(memberId);
  }

  /** A webhook was deleted here. */
  untrack(memberId: string): void {
    if (this.reading > 0) this.changedWhileRead.set(memberId, null);
    this.known.delete(memberId);
    this.notBefore.delete(memberId);
    this.failing.delete(memberId);
    clearTimeout(this.retryTimers.get(memberId));
    this.retryTimers.delete(memberId);
  }

  /** Resolves once the webhooks are first read (or that read failed: the timer reads them again). */
  async start(): Promise<void> {
    const o = this.options;
    this.periodic.every("refresh", o.refreshIntervalMs, () => this.refresh());
    // At once too: a fresh instance would report an empty queue until its first tick.
    this.periodic.every("depth", o.depthIntervalMs, async () => this.metrics.webhookQueueDepth.set(await webhookQueueDepth(this.db)), { now: true });
    await this.refresh().catch((error) => this.log.warn({ err: error }, "webhook refresh failed"));
  }

  /** Stops starting attempts; those in flight are cut short and their deliveries returned, uncounted. */
  async stop(): Promise<void> {
    // The sweeps under way are not waited for: the pool's close ends them.
    void this.periodic.stop();
    for (const t of this.retryTimers.values()) clearTimeout(t);
    this.retryTimers.clear();
    this.shutdown.abort();
    // An attempt that ends starts none in its place now (pump), so this ends.
    while (this.attempts.size > 0) await Promise.all(this.attempts);
  }

  // The webhooks set or deleted on other instances, and the members whose
  // retry came due or whose news this instance missed.
  private async refresh(): Promise<void> {
    this.reading++;
    let rows: WebhookMember[];
    try {
      rows = await webhookMembers(this.db);
    } finally {
      this.reading--;
    }
    const now = this.options.clock();
    this.known.clear();
    for (const row of rows) {
      this.known.set(row.memberId, row.meshId);
      if (row.dueInMs > 0) this.notBefore.set(row.memberId, now + row.dueInMs);
      else this.notBefore.delete(row.memberId);
    }
    // A webhook set here during the read is due now, one deleted is gone, whatever the rows said.
    for (const [memberId, meshId] of this.changedWhileRead) {
      if (meshId === null) this.known.delete(memberId);
      else this.known.set(memberId, meshId);
      this.notBefore.delete(memberId);
    }
    if (this.reading === 0) this.changedWhileRead.clear();
    for (const memberId of this.failing) if (!this.known.has(memberId)) this.failing.delete(memberId);
    for (const row of rows) if (row.due) this.schedule(row.memberId);
  }

  private schedule(memberId: string): void {
    if (this.shutdown.signal.aborted) return;
    if ((this.notBefore.get(memberId) ?? 0) > this.options.clock()) return;
    if (this.inFlight.has(memberId)) {
      this.again.add(memberId);
      return;
    }
    this.due.add(memberId);
    this.pump();
  }

  private pump(): void {
    if (this.shutdown.signal.aborted) return;
    for (const memberId of this.due) {
      if (this.inFlight.size >= MAX_CONCURRENT) return;
      // Left due: taken once a failing member's attempt ends.
      const failing = this.failing.has(memberId);
      if (failing && this.failingInFlight >= MAX_CONCURRENT_FAILING) continue;
      this.due.delete(memberId);
      this.inFlight.add(memberId);
      if (failing) this.failingInFlight++;
      const run: Promise<void> = this.attempt(memberId)
        // The database went away under it: a warning, as elsewhere (the lease runs out and the next attempt takes over).
        .catch((error) => this.log[isConnectionLost(error) ? "warn" : "error"]({ err: error, memberId }, "webhook attempt failed"))
        .finally(() => {
          this.attempts.delete(run);
          this.inFlight.delete(memberId);
          if (failing) this.failingInFlight--;
          if (this.again.delete(memberId)) this.schedule(memberId);
          this.pump();
        });
      this.attempts.add(run);
    }
  }

  private async attempt(memberId: string): Promise<void> {
    const holder = crypto.randomUUID();
    const leaseSeconds = webhookLeaseSeconds(this.options.leaseSeconds, this.options.timeoutMs);
    const taken = await retryTransient(() =>
      this.db.transaction(async (tx) => {
        const webhook = await takeWebhook(tx, memberId, holder, leaseSeconds);
        if (webhook === null) return null;
        // An attempt whose instance died: its batch goes first again, in order.
        if (webhook.previousHolder !== null) await requeue(tx, { presences: [webhook.previousHolder] });
        const claimed = await claimForHolder(tx, memberId, holder, MAX_WEBHOOK_BATCH, leaseSeconds);
        if (claimed.length === 0) {
          await releaseWebhook(tx, memberId, holder);
          return null;
        }
        const { batch, rest } = withinBatchBytes(claimed);
        if (rest.length > 0) {
          await requeue(tx, { pushes: rest.map((d) => ({ messageId: d.messageId, memberId, presenceId: holder })) });
        }
        return { webhook, batch, cut: rest.length > 0 };
      }),
    );
    if (taken === null) return;
    const { webhook, batch, cut } = taken;
    const startedAt = this.options.clock();
    const result = await this.send(memberId, {
      url: webhook.url,
      secret: webhook.secret,
      attempt: webhook.failures + 1,
      messages: batch,
    });
    if (this.shutdown.signal.aborted && result.outcome !== "ok") {
      await this.giveBack(memberId, holder);
      return;
    }
    this.metrics.webhookRequests.labels(result.outcome).inc();
    const ok = result.outcome === "ok";
    if (ok) this.failing.delete(memberId);
    else this.failing.add(memberId);
    const failures = ok ? 0 : webhook.failures + 1;
    const delayMs = ok ? 0 : failureDelayMs(failures, this.options.backoff, result.retryAfterMs);
    const recorded = await retryTransient(() =>
      this.db.transaction(async (tx) => {
        if (ok) await ackHeldBy(tx, holder);
        else await requeue(tx, { presences: [holder] });
        const endpoint = { url: webhook.url, secret: webhook.secret, failures: webhook.failures, takenAt: webhook.takenAt };
        const counted = await recordAttempt(tx, memberId, holder, { startedAt, ...endpoint, ...result, retryInSeconds: delayMs / 1000 });
        // The webhook was deleted during the attempt (or its lease moved on: one
        // announcement too many): the batch it gave back is the member's sockets' now.
        if (counted === null && !ok) await this.bus.publish(tx, queuedWork([memberId], []));
        return counted;
      }),
    );
    if (recorded === null && !ok) this.news.forMembers([memberId]);
    const counted = recorded === true;
    this.log.info(
      {
        memberId,
        outcome: result.outcome,
        status: result.status,
        ...(result.cause === undefined ? {} : { cause: result.cause }),
        ...(result.retryAfterMs === undefined ? {} : { retryAfterMs: result.retryAfterMs }),
        messages: batch.length,
        attempt: webhook.failures + 1,
        retryInMs: counted ? delayMs : null,
      },
      "webhook",
    );
    // A success, or a failure of an endpoint set anew meanwhile (the new one is due now).
    if (!counted) {
      // A full batch may have left more behind.
      if (!ok || cut || batch.length === MAX_WEBHOOK_BATCH) this.again.add(memberId);
      return;
    }
    this.retryLater(memberId, delayMs);
  }

  // The lookup and the request share one timeout, which the lease outlives.
  private async send(memberId: string, request: Omit<WebhookRequest, "connectTo">): Promise<WebhookResult> {
    const started = this.options.clock();
    const verdict = await checkTarget(request.url, this.options.allowPrivate, this.options.timeoutMs, this.options.resolve);
    const { refused } = verdict;
    if (refused !== null) {
      // The host only: a URL's user info, path or query may carry a credential.
      this.log.warn({ memberId, host: URL.canParse(request.url) ? new URL(request.url).host : null, reason: refused }, "webhook target refused");
      return { outcome: "network", status: null, cause: "target refused" };
    }
    const left = this.options.timeoutMs - (this.options.clock() - started);
    if (left <= 0) return { outcome: "timeout", status: null };
    return this.poster.post({ ...request, connectTo: verdict.connectTo }, left, this.shutdown.signal);
  }

  private retryLater(memberId: string, delayMs: number): void {
    this.notBefore.set(memberId, this.options.clock() + delayMs);
    clearTimeout(this.retryTimers.get(memberId));
    this.retryTimers.set(
      memberId,
      setTimeout(() => {
        this.retryTimers.delete(memberId);
        this.notBefore.delete(memberId);
        this.schedule(memberId);
      }, delayMs + TIMER_SLACK_MS),
    );
  }

  // Shutting down mid-request: the batch goes back to the queue at once, the
  // lease is freed and the others are told, so another instance takes over
  // without waiting for its next refresh.
  private async giveBack(memberId: string, holder: string): Promise<void> {
    await retryTransient(() =>
      this.db.transaction(async (tx) => {
        await requeue(tx, { presences: [holder] });
        await releaseWebhook(tx, memberId, holder);
        await this.bus.publish(tx, queuedWork([memberId], []));
      }),
    );
  }
}
