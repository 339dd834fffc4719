// Every metric named in the contract, registered at start so a scrape shows
// them before the first event. Labelled series are created at zero for the
// label values the broker knows of.
import { FRAME_ERROR_CODES, HELLO_ERROR_CODES, prioritySchema, UPGRADE_REFUSAL_CODES, WEBHOOK_OUTCOMES } from "@switchboard/protocol";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { openDescriptors } from "./open-files.ts";

// Seconds, from well under a millisecond (a group commit on a quiet server)
// to half an hour (a next or low message held while its recipient worked).
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];

// Reasons a send is refused for: the frames' error codes, and unavailable,
// a send refused before anything was stored (its database unreachable, which
// a socket is answered as internal; or over HTTP, the reply waits full).
const SEND_REJECTION_REASONS = [...FRAME_ERROR_CODES, "unavailable"] as const;

// Sends per batch: one alone on a quiet instance, up to MAX_SENDS_PER_COMMIT.
const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

// Default metrics left out:
// - gauges named like counters: promtool's lint rejects them, and their
//   per-type siblings (nodejs_active_handles, …) stay;
// - the heap-space gauges: under Bun, v8.getHeapSpaceStatistics walks the
//   whole heap, about 40 ms with 300,000 live objects, and every scrape would
//   stall the event loop that long. nodejs_heap_size_* stay: they come from
//   process.memoryUsage(), which costs microseconds;
// - process_open_fds, read by a synchronous listing of /proc/self/fd: about
//   12 ms with 10,000 sockets open. openFileDescriptors() lists it off the
//   event loop instead.
const LEFT_OUT_DEFAULTS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
  "nodejs_heap_space_size_total_bytes",
  "nodejs_heap_space_size_used_bytes",
  "nodejs_heap_space_size_available_bytes",
  "process_open_fds",
];

// prom-client's process_open_fds, its name, help and meaning kept (Linux
// only, as prom-client's); the count leaves out the descriptor of the
// listing itself.
function openFileDescriptors(registry: Registry): void {
  if (process.platform !== "linux") return;
  new Gauge({
    name: "process_open_fds",
    help: "Number of open file descriptors.",
    registers: [registry],
    async collect() {
      const open = await openDescriptors();
      if (typeof open === "number") this.set(open);
    },
  });
}

export function createMetrics() {
  const registry = new Registry();
  // The event-loop delay is sampled every 100 ms, not prom-client's 10: a
  // timer every 10 ms cost an idle broker about 1 % of a core by itself.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
  for (const name of LEFT_OUT_DEFAULTS) registry.removeSingleMetric(name);
  openFileDescriptors(registry);
  const metrics = {
    registry,
    connectionsActive: new Gauge({
      name: "broker_connections_active",
      help: "WebSocket presences open on this instance",
      registers: [registry],
    }),
    connectionsTotal: new Counter({
      name: "broker_connections_total",
      help: "Presences admitted by hello since start",
      registers: [registry],
    }),
    connectionsSilent: new Counter({
      name: "broker_connections_silent_total",
      help: "WebSocket connections dropped because the peer sent nothing, not even a pong, for SILENT_PEER_SECONDS",
      registers: [registry],
    }),
    connectionsRejected: new Counter({
      name: "broker_connections_rejected_total",
      help: "WebSocket connections refused, at the upgrade or by hello, by reason",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
    messagesRouted: new Counter({
      name: "broker_messages_routed_total",
      help: "Messages accepted and routed, by priority",
      labelNames: ["priority"] as const,
      registers: [registry],
    }),
    messagesRejected: new Counter({
      name: "broker_messages_rejected_total",
      help: "Sends refused, by reason",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: "broker_queue_depth",
      help: "Deliveries not yet acknowledged by their recipient (all instances)",
      registers: [registry],
    }),
    membersQueueFull: new Gauge({
      name: "broker_members_queue_full",
      help: "Members whose queue holds MAX_QUEUED_PER_MEMBER deliveries or more, sent nothing new until they take some (all instances)",
      registers: [registry],
    }),
    presencesCongested: new Gauge({
      name: "broker_presences_congested",
      help: "Presences on this instance whose socket is backed up (no pushes until it drains)",
      registers: [registry],
    }),
    socketUnsentBytes: new Gauge({
      name: "broker_socket_unsent_bytes",
      help: "Bytes this instance's backed-up sockets hold unsent, together (INSTANCE_SOCKET_BUFFER_BYTES bounds them)",
      registers: [registry],
    }),
    presenceSubscribers: new Gauge({
      name: "broker_presence_subscribers",
      help: "Subscribers to presence events on this instance: sockets, and dashboard presence streams",
      registers: [registry],
    }),
    pushesUnwritten: new Counter({
      name: "broker_pushes_unwritten_total",
      help: "Pushes not written to a socket (its buffer was full, it closed, or its push window had no room for them), returned to the queue at once",
      registers: [registry],
    }),
    redeliveries: new Counter({
      name: "broker_redeliveries_total",
      help: "Pushes of a message to a recipient that had it pushed before (attempt > 1)",
      registers: [registry],
    }),
    messagesExpired: new Counter({
      name: "broker_messages_expired_total",
      help: "Deliveries whose message expired before its recipient acknowledged it",
      registers: [registry],
    }),
    ttlSweeps: new Counter({
      name: "broker_ttl_sweeps_total",
      help: "Runs of the status TTL sweeper, by whether the run flipped any stuck working status to idle",
      labelNames: ["flipped"] as const,
      registers: [registry],
    }),
    hookRequests: new Counter({
      name: "broker_hook_requests_total",
      help: "Requests to /hook/set-status",
      registers: [registry],
    }),
    hookRateLimited: new Counter({
      name: "broker_hook_requests_rate_limited_total",
      help: "Requests to /hook/set-status refused with 429",
      registers: [registry],
    }),
    sendCommitSeconds: new Histogram({
      name: "broker_send_commit_seconds",
      help: "From a durable send's arrival to the commit of its message and deliveries (what the sender waits for its ack)",
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    // The send lane's own time: rate(sum) near 1 means each send waits for
    // the batch under way (group commit at work under steady traffic);
    // overload shows in the batch size growing toward its limit.
    sendBatchSeconds: new Histogram({
      name: "broker_send_batch_seconds",
      help: "Time the instance spends writing one batch of sends (its statement and commit, and writing them one by one if it fails)",
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    sendBatchSize: new Histogram({
      name: "broker_send_batch_size",
      help: "Sends written together in one batch",
      buckets: BATCH_SIZE_BUCKETS,
      registers: [registry],
    }),
    pushLatencySeconds: new Histogram({
      name: "broker_push_latency_seconds",
      help: "From a message's commit to its first push written to a recipient's socket (held messages included)",
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    webhookRequests: new Counter({
      name: "broker_webhook_requests_total",
      help: "Requests to webhook recipients, by outcome (ok, http_error, timeout, network)",
      labelNames: ["outcome"] as const,
      registers: [registry],
    }),
    webhookQueueDepth: new Gauge({
      name: "broker_webhook_queue_depth",
      help: "Deliveries owed to webhook recipients, not yet acknowledged and not expired (all instances)",
      registers: [registry],
    }),
    dbHealthy: new Gauge({
      name: "broker_db_healthy",
      help: "1 while the database answers the health ping, else 0",
      registers: [registry],
    }),
    dbFull: new Gauge({
      name: "broker_db_full",
      help: "1 while the database refuses writes for want of disk space (one refused in the last 10 s), else 0",
      registers: [registry],
    }),
    dbReadOnly: new Gauge({
      name: "broker_db_read_only",
      help: "1 while the database is read-only (a standby, a demoted primary, default_transaction_read_only), else 0 (also while the ping fails)",
      registers: [registry],
    }),
  };
  for (const p of prioritySchema.options) metrics.messagesRouted.labels(p).inc(0);
  for (const r of new Set([...HELLO_ERROR_CODES, ...UPGRADE_REFUSAL_CODES, "internal"])) metrics.connectionsRejected.labels(r).inc(0);
  for (const r of SEND_REJECTION_REASONS) metrics.messagesRejected.labels(r).inc(0);
  for (const o of WEBHOOK_OUTCOMES) metrics.webhookRequests.labels(o).inc(0);
  for (const f of ["true", "false"]) metrics.ttlSweeps.labels(f).inc(0);
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
