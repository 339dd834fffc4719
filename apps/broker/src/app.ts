// The composition root: one database, the services on it in dependency
// order, the transport on top, one port. startBroker() gives back what
// shutdown needs. (Over 300 lines: wiring only — every service is built
// here, in dependency order, so that the order is read in one place.)
import type { Database } from "@switchboard/db";
import type { Server } from "bun";
import { VERSION, newInstanceId, resolveGitSha } from "./build-info.ts";
import type { Config } from "./config.ts";
import { connectAndMigrate, whenTheDatabaseServes } from "./database.ts";
import type { Logger } from "./log.ts";
import { createMetrics } from "./metrics.ts";
import { createAdminService } from "./services/admin.ts";
import { resolveAdminToken } from "./services/admin-token.ts";
import { ApiSenders } from "./services/api-senders.ts";
import { BusUnheardError, InstanceBus, type BusHandlers } from "./services/bus.ts";
import { ChannelService } from "./services/channels.ts";
import { ConnectionGate } from "./services/connection-gate.ts";
import { DashboardService } from "./services/dashboard.ts";
import { Descriptors } from "./services/descriptors.ts";
import { watchDbHealth } from "./services/db-health.ts";
import { DeliveryPump } from "./services/delivery/pump.ts";
import { RecentEnds } from "./services/recent-ends.ts";
import { RelayedEphemerals } from "./services/ephemeral-relay.ts";
import { FrameLimits } from "./services/frame-limits.ts";
import { HelloService } from "./services/hello.ts";
import { HelloRate } from "./services/hello-rate.ts";
import { HistoryService } from "./services/history.ts";
import { JwtVerifier } from "./services/jwt.ts";
import { HookService } from "./services/hooks.ts";
import { HttpMessaging } from "./services/http-messaging.ts";
import { InstanceLease } from "./services/instance-lease.ts";
import { LocalPresences } from "./services/local-presences.ts";
import { PeerDirectory } from "./services/peers.ts";
import { PresenceEvents } from "./services/presence-events.ts";
import { PresenceLifecycle } from "./services/presence-lifecycle.ts";
import { QueuedWork } from "./services/queued-work.ts";
import { Readiness } from "./services/readiness.ts";
import { ReplyWaiters } from "./services/reply-waiters.ts";
import { SendService } from "./services/sending.ts";
import { StatusService } from "./services/status/service.ts";
import { Sweepers } from "./services/sweepers.ts";
import { UnsentBudget } from "./services/unsent-budget.ts";
import { settleWithin, systemClock, type Timing } from "./services/timing.ts";
import { warmUp } from "./services/warm-up.ts";
import { createWebhookAdmin } from "./services/webhooks/admin.ts";
import { WebhookDispatcher } from "./services/webhooks/dispatcher.ts";
import { TokenExpiry } from "./services/token-expiry.ts";
import { adminRoutes } from "./transport/http/admin-routes.ts";
import { CorsPolicy } from "./transport/http/cors.ts";
import { dashboardRoutes } from "./transport/http/dashboard-routes.ts";
import { trustedProxies } from "./transport/http/client-address.ts";
import { hookRoutes } from "./transport/http/hook-route.ts";
import { messagesRoutes } from "./transport/http/messages-routes.ts";
import { opsRoutes } from "./transport/http/ops-routes.ts";
import { webhookRoutes } from "./transport/http/webhook-routes.ts";
import { serve, serveStarting } from "./transport/server.ts";
import { createWebhookPoster } from "./transport/webhook/poster.ts";
import type { Connection } from "./transport/ws/connection.ts";
import { InflightBudget } from "./transport/ws/pipeline.ts";
import { createWsHandler } from "./transport/ws/handler.ts";

/** How long an API token's member is remembered (a revocation forgets it at once). */
const API_SENDER_TTL_MS = 5000;

/** Pushes a presence may have unacknowledged before the broker waits for its acks. */
const PUSH_WINDOW = 512;
// As the instance stops, after the drain: how long the reply waits may take
// to be answered and end, a sweep under way to finish, and requests under
// way to be answered before the listener closes anyway. Within the
// shutdown's 9 s with a drain of 5 s.
const WAITS_GRACE_MS = 1000;
const SWEEPS_GRACE_MS = 500;
const REQUESTS_GRACE_MS = 1000;
// The steps of a stop that need the database give up this long before its
// deadline, answered or not: what is left is the requests' grace, the pool's
// close (a second: connect.ts), the error reports' flush (0.8 s) and a margin.
const CLOSING_RESERVE_MS = 3000;
const TIMED_OUT = Symbol("timed out");
// Frames handled back to back before other sockets get a turn (ws/pipeline.ts).
const FRAME_SLICE_MS = 2;
const FRAME_SLICE_MS_EMBEDDED = 10;

export interface Broker {
  readonly server: Server<Connection>;
  readonly instanceId: string;
  /** Stops the instance; `deadline` (a Date.now() time) is when its process exits anyway. */
  stop(deadline: number): Promise<void>;
}

export function timingOf(config: Config): Timing {
  return {
    leaseSeconds: config.LEASE_SECONDS,
    helloTimeoutMs: config.HELLO_TIMEOUT_MS,
    pendingSignalSeconds: config.PENDING_HOOK_SECONDS,
    instanceLeaseSeconds: config.INSTANCE_LEASE_SECONDS,
    catchUpIntervalMs: config.CATCH_UP_INTERVAL_MS,
    sweepIntervalMs: config.SWEEP_INTERVAL_MS,
    housekeepingIntervalMs: config.HOUSEKEEPING_INTERVAL_MS,
    settledRetentionSeconds: config.DELIVERED_RETENTION_SECONDS,
    historyRetentionSeconds: config.HISTORY_RETENTION_SECONDS ?? config.MESSAGE_TTL_SECONDS,
    historyMaxPerChannel: config.HISTORY_MAX_PER_CHANNEL,
    endedPresenceRetentionSeconds: config.ENDED_PRESENCE_RETENTION_SECONDS,
    auditRetentionSeconds: config.AUDIT_RETENTION_SECONDS,
    statusTtlSeconds: config.STATUS_TTL_SECONDS,
    freshWindowMs: config.HOOK_FRESH_WINDOW_SECONDS * 1000,
    stalledPresenceSeconds: config.STALLED_PRESENCE_SECONDS,
    webhookTimeoutMs: config.WEBHOOK_TIMEOUT_MS,
    webhookBackoffMinMs: config.WEBHOOK_BACKOFF_MIN_MS,
    webhookBackoffMaxMs: config.WEBHOOK_BACKOFF_MAX_MS,
  };
}

export async function startBroker(config: Config, log: Logger): Promise<Broker> {
  const clock = systemClock;
  const timing = timingOf(config);
  const instanceId = newInstanceId();
  const metrics = createMetrics();
  const readiness = new Readiness();
  const build = { version: VERSION, gitSha: resolveGitSha(config.GIT_SHA), instanceId, startedAt: clock() };
  // The port opens as soon as the database is this process's (in embedded
  // mode DATA_DIR is locked then), before migrations: /health answers 503
  // saying whether the database answered the last attempt, /health/ready
  // 503 while they run and /metrics answers, everything else 503 until the
  // full routes replace these below.
  let answered = false;
  let early: Server<Connection> | undefined;
  const cors = new CorsPolicy(config.CORS_ORIGINS);
  const listen = () =>
    (early ??= serveStarting(
      config.BROKER_PORT,
      config.HOST,
      opsRoutes({ build, serving: false, dbState: () => (answered ? "up" : "down"), readiness, metrics, metricsToken: config.METRICS_TOKEN }),
      cors,
    ));
  let db: Database;
  try {
    db = await connectAndMigrate(config, instanceId, log, listen, (up) => {
      answered = up;
      metrics.dbHealthy.set(up ? 1 : 0);
    });
  } catch (error) {
    await early?.stop(true);
    throw error;
  }
  const starting = listen();
  // Before anything else uses the pool, so that each statement it runs at
  // once finds a connection of its own.
  await warmUp(db, { connections: config.DB_POOL_SIZE, instanceId, leaseSeconds: timing.leaseSeconds }, log);
  // After connecting: in embedded mode DATA_DIR is then locked to this process.
  const adminToken = resolveAdminToken(config, log);
  const dbHealth = watchDbHealth(db, log, metrics, { intervalMs: 1000, timeoutMs: 2000, clock });

  // Told of each write a socket could not take at once, the budget of all their buffers checks the sum.
  const presences: LocalPresences = new LocalPresences(() => unsentBudget.grew());
  const unsentBudget = new UnsentBudget(presences, config.INSTANCE_SOCKET_BUFFER_BYTES, log);
  const bus = new InstanceBus(db, log);
  const queuedWork = new QueuedWork();
  const pump = new DeliveryPump(db, presences, bus, metrics, log, { leaseSeconds: timing.leaseSeconds, clock });
  queuedWork.subscribe({
    members: (ids) => pump.schedule(ids),
    meshes: (ids) => pump.schedule(ids.flatMap((meshId) => presences.membersOfMesh(meshId))),
  });
  const presenceEvents = new PresenceEvents(db, bus, instanceId, metrics, log);
  const tokenExpiry = new TokenExpiry(clock);
  const lifecycle = new PresenceLifecycle(db, presences, queuedWork, bus, log, instanceId, presenceEvents, tokenExpiry, pump);
  const status = new StatusService(db, bus, timing, presenceEvents, (member) => queuedWork.forMembers([member]));
  const endedPresences = new RecentEnds(clock);
  const releasedHolds = new RecentEnds(clock);
  const lease = new InstanceLease(db, bus, log, instanceId, { leaseSeconds: timing.instanceLeaseSeconds, clock, ended: endedPresences, releasedHolds }, presenceEvents, () =>
    lifecycle.endAll("lease_lost"),
  );
  const jwt = await JwtVerifier.create({ secret: config.JWT_SECRET, publicKey: config.JWT_PUBLIC_KEY });
  const helloRate = new HelloRate(config.HELLO_RATE_LIMIT_PER_MIN, clock);
  const hello = new HelloService(db, bus, jwt, presenceEvents, instanceId, {
    perMesh: config.MAX_CONNECTIONS_PER_MESH,
    perMember: config.MAX_CONNECTIONS_PER_MEMBER,
  }, helloRate, endedPresences, config.HELLO_AUDIENCES ? new Set(config.HELLO_AUDIENCES) : null);
  const history = new HistoryService(db, { retentionSeconds: timing.historyRetentionSeconds, bytesPerMin: config.HISTORY_BYTES_PER_MIN, clock });
  const sending = new SendService(db, presences, pump, queuedWork, bus, metrics, log, {
    maxMessageBytes: config.MAX_MESSAGE_BYTES,
    defaultTtlSeconds: config.MESSAGE_TTL_SECONDS,
    sendRateLimitPerMin: config.SEND_RATE_LIMIT_PER_MIN,
    sendRecipientsPerMin: config.SEND_RECIPIENTS_RATE_LIMIT_PER_MIN,
    instanceId,
    leaseSeconds: timing.leaseSeconds,
    clock,
    dbHealth,
  });
  const relayed = new RelayedEphemerals(db, presences, instanceId, clock, log);
  const hooks = new HookService(db, status, metrics, log, {
    rateLimitPerMin: config.HOOK_RATE_LIMIT_PER_MIN,
    rateLimitPerTokenPerMin: config.HOOK_RATE_LIMIT_PER_TOKEN_PER_MIN,
    clock,
  });
  const channels = new ChannelService(db, config.MAX_CHANNELS_PER_MEMBER);
  const limits = new FrameLimits({
    controlPerMin: config.CONTROL_RATE_LIMIT_PER_MIN,
    ackIdsPerMin: config.ACK_RATE_LIMIT_PER_MIN,
    clock,
  });
  const gate = new ConnectionGate({
    maxPending: config.MAX_PENDING_HELLOS,
    maxPendingPerAddress: config.MAX_PENDING_HELLOS_PER_ADDRESS,
    failuresPerAddressPerMin: config.HELLO_FAILURES_PER_ADDRESS_PER_MIN,
    clock,
  });
  const peers = new PeerDirectory(db);
  const apiSenders = new ApiSenders(db, { ttlMs: API_SENDER_TTL_MS, maxEntries: 10_000, clock });
  const admin = createAdminService({
    db,
    log,
    events: presenceEvents,
    onRevoked: (memberId) => {
      apiSenders.forget(memberId);
      void lifecycle.revoked(memberId);
    },
    bus,
    onTokenRevoked: (tokenId) => apiSenders.forgetToken(tokenId),
  });
  const waiters = new ReplyWaiters(db, queuedWork, bus, log, {
    maxWaiters: config.MAX_REPLY_WAITERS,
    maxWaitersPerMember: config.MAX_REPLY_WAITERS_PER_MEMBER,
    clock,
    releasedHolds,
  });
  queuedWork.subscribe(waiters);
  const messaging = new HttpMessaging(db, apiSenders, sending, waiters, clock, metrics, log);
  const dispatcher = new WebhookDispatcher(db, bus, queuedWork, createWebhookPoster(`switchboard/${VERSION}`), metrics, log, {
    timeoutMs: timing.webhookTimeoutMs,
    backoff: { minMs: timing.webhookBackoffMinMs, maxMs: timing.webhookBackoffMaxMs },
    leaseSeconds: timing.leaseSeconds,
    allowPrivate: config.WEBHOOK_ALLOW_PRIVATE,
    refreshIntervalMs: timing.catchUpIntervalMs,
    depthIntervalMs: timing.housekeepingIntervalMs,
    clock,
  });
  queuedWork.subscribe(dispatcher);
  const webhooks = createWebhookAdmin({
    db,
    admin,
    dispatcher,
    queuedWork,
    bus,
    log,
    allowPrivate: config.WEBHOOK_ALLOW_PRIVATE,
    lookupTimeoutMs: config.WEBHOOK_TIMEOUT_MS,
  });
  const sweepers = new Sweepers({
    db,
    queuedWork,
    bus,
    lease,
    lifecycle,
    unsentBudget,
    metrics,
    log,
    timing,
    clock,
    events: presenceEvents,
    ended: endedPresences,
    releasedHolds,
    maxQueuedPerMember: config.MAX_QUEUED_PER_MEMBER,
    onHousekeeping: () => {
      hooks.prune();
      sending.prune();
      limits.prune();
      gate.prune();
      helloRate.prune();
    },
  });

  const dashboard = new DashboardService(db, metrics, clock, {
    sampleIntervalMs: timing.housekeepingIntervalMs,
    instanceLeaseSeconds: timing.instanceLeaseSeconds,
  });

  const busHandlers: BusHandlers = {
    queuedWork: (members) => queuedWork.forMembers(members),
    queuedWorkInMeshes: (meshIds) => queuedWork.forMeshes(meshIds),
    leased: (to, pushes) => {
      if (to === instanceId) pump.leasedHere(pushes);
    },
    relayed: (to, messageIds) => {
      if (to === instanceId) relayed.take(messageIds);
    },
    replaced: (presenceId) => lifecycle.end(presenceId, "replaced"),
    revoked: (memberId) => {
      apiSenders.forget(memberId);
      lifecycle.endMember(memberId, "revoked");
    },
    tokenRevoked: (tokenId) => apiSenders.forgetToken(tokenId),
    presence: (changes, from) => presenceEvents.received(changes, from),
    stoppedElsewhere: (presenceIds) => endedPresences.add(presenceIds),
    holdsReleasedElsewhere: (requestIds) => releasedHolds.add(requestIds),
    // Everything local may have missed news: every consumer looks again.
    resubscribed: () => {
      pump.recoverMissedLeases();
      queuedWork.forMeshes(new Set(presences.all().map((p) => p.meshId)));
      waiters.wakeAll();
    },
  };
  // Registered again at each try: a wait for the listener longer than the
  // lease would have the others reap the instance before it serves.
  const unsubscribe = await whenTheDatabaseServes("register, listen", log, async () => {
    await lease.register();
    return bus.subscribe(busHandlers);
  });
  // An instance deaf to the bus would serve, but learn of other instances'
  // work only from the catch-up, and of leases they give its peers only once
  // each runs out; and a pooler that loses LISTEN loses its prepared
  // statements too. The operator must mend that: the start stops.
  let hears = false;
  try {
    hears = await whenTheDatabaseServes("hear the bus", log, () => bus.hearsItself());
  } finally {
    if (!hears) {
      await Promise.allSettled([unsubscribe(), lease.stop()]);
      dbHealth.stop();
      await starting.stop(true);
      await db.close();
    }
  }
  if (!hears) throw new BusUnheardError();
  sweepers.start();
  // An instance that says it listens knows the webhooks: news of work for one finds it.
  await dispatcher.start();
  dashboard.start();

  // One count of what the instance has read and not finished: sockets' frames and request bodies.
  const inflight = new InflightBudget(config.INSTANCE_INFLIGHT_BYTES);
  const ws = createWsHandler({
    log,
    metrics,
    dbHealth,
    clock,
    hello,
    lifecycle,
    pump,
    sending,
    status,
    channels,
    peers,
    history,
    presenceEvents,
    limits,
    gate,
    pushWindow: { pushes: PUSH_WINDOW, leaseSeconds: timing.leaseSeconds },
    maxMessageBytes: config.MAX_MESSAGE_BYTES,
    idRetentionSeconds: timing.settledRetentionSeconds,
    helloTimeoutMs: timing.helloTimeoutMs,
    inflight: {
      frames: config.CONNECTION_INFLIGHT_FRAMES,
      bytes: config.CONNECTION_INFLIGHT_BYTES,
      // The embedded database works on this thread too: its statements count
      // against the slice, and 2 ms slices made its test pass 20 % slower.
      sliceMs: db.kind === "embedded" ? FRAME_SLICE_MS_EMBEDDED : FRAME_SLICE_MS,
    },
    inflightBudget: inflight,
    socketBufferBytes: config.SOCKET_BUFFER_BYTES,
    maxRefusedFramesPerMin: config.MAX_REFUSED_FRAMES_PER_MIN,
    silentPeerMs: config.SILENT_PEER_SECONDS * 1000,
  });
  const descriptors = await Descriptors.watch(log);
  const streamsClosing = new AbortController();
  const server = serve(
    {
      port: config.BROKER_PORT,
      hostname: config.HOST,
      log,
      metrics,
      ws,
      gate,
      trusted: trustedProxies(config.TRUSTED_PROXIES),
      cors,
      descriptors,
      inflight,
      routes: [
        opsRoutes({ build, serving: true, dbState: () => dbHealth.state, readiness, metrics, metricsToken: config.METRICS_TOKEN }),
        adminRoutes({ admin, access: { adminToken, dbHealth }, log }),
        hookRoutes({ hooks, dbHealth, metrics, log, maxMessageBytes: config.MAX_MESSAGE_BYTES }),
        messagesRoutes({ messaging, dbHealth, metrics, log, adminToken, maxMessageBytes: config.MAX_MESSAGE_BYTES }),
        webhookRoutes({ webhooks, access: { adminToken, dbHealth }, log, lookupTimeoutMs: config.WEBHOOK_TIMEOUT_MS }),
        dashboardRoutes({
          dashboard,
          presenceEvents,
          access: { adminToken, dbHealth },
          stream: { maxUnsentBytes: config.SOCKET_BUFFER_BYTES, closing: streamsClosing.signal, log },
          page: config.DASHBOARD,
        }),
      ],
    },
    starting,
  );
  readiness.serving(dbHealth, descriptors);
  log.info({ port: server.port, host: config.HOST, instanceId, db: db.kind, version: VERSION }, "broker listening");

  // A step of the stop that needs the database: its failure is logged and
  // the stop goes on, and so it does at `until`, the step unsettled. A query
  // on a connection that went silent (a partition) never settles. Leaving it
  // loses nothing: the state is in Postgres, and the other instances reap
  // this one's lease and presences, and requeue what it held.
  const bestEffort = async (step: string, work: Promise<unknown>, until: number) => {
    try {
      if ((await settleWithin(work, until - Date.now(), () => TIMED_OUT)) === TIMED_OUT) log.warn({ step }, "shutdown step timed out");
    } catch (error) {
      log.warn({ err: error, step }, "shutdown step failed");
    }
  };

  return {
    server,
    instanceId,
    async stop(deadline) {
      readiness.draining();
      ws.refuseNew();
      // Still serving (its lease renewed, its sweeps running): a proxy whose
      // health check comes by now takes this instance out of its rotation
      // before the port closes.
      if (config.SHUTDOWN_DRAIN_MS > 0) await Bun.sleep(config.SHUTDOWN_DRAIN_MS);
      // Every step until the port closes ends by then, whatever the database does.
      const until = deadline - CLOSING_RESERVE_MS;
      const atMost = (work: Promise<unknown>, ms: number) => settleWithin(work, Math.min(ms, until - Date.now()), () => undefined);
      const sweeping = sweepers.stop();
      lifecycle.stop();
      ws.closeAll();
      // Attempts in flight are cut short; their outcome is written, or their lease runs out.
      await bestEffort("webhook attempts", dispatcher.stop(), until);
      tokenExpiry.stop();
      dashboard.stop();
      streamsClosing.abort();
      // Held replies a wait did not take go back when their hold runs out
      // even if this cannot return them now.
      await atMost(waiters.stop(), WAITS_GRACE_MS);
      // With the database away these cannot be written: the others reap this
      // instance's lease instead, and the stop goes on to close the port.
      await bestEffort("unlisten", unsubscribe(), until);
      await bestEffort("relayed ephemeral sends", relayed.stop(), until);
      // Acks not committed leave their pushes to be redelivered.
      await bestEffort("delivery pump", pump.stop(), until);
      // A sweep stuck on a lock is not waited for long: closing the pool ends it, and sweeps are idempotent.
      await atMost(sweeping, SWEEPS_GRACE_MS);
      // Sockets that closed by themselves just before: their ends are written, or given up on here.
      await bestEffort("presence ends", lifecycle.endsUnderWay(), until);
      await bestEffort("instance stop", lease.stop(), until);
      dbHealth.stop();
      descriptors?.stop();
      // Requests under way are answered before the port closes: a send cut
      // off after it was stored would be sent again by a caller without a key.
      await Promise.race([server.stop(), Bun.sleep(REQUESTS_GRACE_MS)]);
      await server.stop(true);
      // A server's connections are cut after a second, answered or not (connect.ts).
      await db.close();
    },
  };
}
