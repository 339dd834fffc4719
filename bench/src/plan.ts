// What the orchestrator asks of the load generator, and what it reports. A
// plan is a workload (the same for every system it is run against) and the
// system to run it against.
import type { BenchIdentity } from "./peer.ts";
import type { Summary } from "./stats.ts";

export interface PlanMesh {
  slug: string;
  members: BenchIdentity[];
}

/** A Switchboard broker, or the floor's relay, which speaks the same frames. */
export interface SwitchboardSystem {
  kind: "switchboard";
  urls: string[];
  meshes: PlanMesh[];
}

/** NATS JetStream: each peer publishes to `${subjectPrefix}.${address}` and consumes its own durable consumer. */
export interface JetStreamSystem {
  kind: "jetstream";
  url: string;
  stream: string;
  subjectPrefix: string;
  /** One address per peer: its subject token and its consumer's name. */
  peers: string[];
}

export type System = SwitchboardSystem | JetStreamSystem;

export interface RateWorkload {
  kind: "rate";
  target: "direct" | "broadcast";
  steps: Array<{ rate: number; seconds: number }>;
  /** Stop rising once a step's send→push p99 passes this (ms). */
  stopAboveP99Ms?: number;
  drainMs: number;
}

export interface ConnectWorkload {
  kind: "connect";
  concurrency: number;
  holdMs: number;
}

export interface HeldWorkload {
  kind: "held";
  messages: number;
  drainMs: number;
}

/** Closed loop: every peer keeps `window` direct messages in flight for `seconds`. */
export interface ClosedWorkload {
  kind: "closed";
  window: number;
  seconds: number;
  drainMs: number;
}

export type Workload = RateWorkload | ConnectWorkload | HeldWorkload | ClosedWorkload;

export type Plan = Workload & { system: System };

export interface StepResult {
  rate: number;
  /** Wall-clock bounds of the step (ms since the epoch), for the profile. */
  startedAt: number;
  endedAt: number;
  sent: number;
  acked: number;
  sendToAck: Summary;
  sendToPush: Summary;
  lost: number;
}

export interface Counts {
  sent: number;
  acked: number;
  errors: Record<string, number>;
  expectedDeliveries: number;
  delivered: number;
  duplicates: number;
  lost: number;
}

export interface LoadResult {
  kind: Workload["kind"];
  /** Wall-clock bounds of the load (ms since the epoch), for the profile. */
  startedAt: number;
  endedAt: number;
  seconds: number;
  counts: Counts;
  throughput: { sendsPerSecond: number; deliveriesPerSecond: number };
  sendToAck: Summary;
  sendToPush: Summary;
  steps?: StepResult[];
  highestSustainedRate?: number;
  /** When the peers began to connect (ms since the epoch) and how long it took them all. */
  connect?: { peers: number; seconds: number; startedAt: number };
  held?: { messages: number; flushSeconds: number };
  closed?: { window: number; seconds: number; messagesPerSecond: number };
}
