// What the orchestrator asks of the load generator, and what it reports.
import type { BenchIdentity } from "./peer.ts";
import type { Summary } from "./stats.ts";

export interface PlanMesh {
  slug: string;
  members: BenchIdentity[];
}

interface PlanBase {
  urls: string[];
  meshes: PlanMesh[];
}

export interface RatePlan extends PlanBase {
  kind: "rate";
  target: "direct" | "broadcast";
  steps: Array<{ rate: number; seconds: number }>;
  /** Stop rising once a step's send→push p99 passes this (ms). */
  stopAboveP99Ms?: number;
  drainMs: number;
}

export interface ConnectPlan extends PlanBase {
  kind: "connect";
  concurrency: number;
  holdMs: number;
}

export interface HeldPlan extends PlanBase {
  kind: "held";
  messages: number;
  drainMs: number;
}

export type Plan = RatePlan | ConnectPlan | HeldPlan;

export interface StepResult {
  rate: number;
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
  kind: Plan["kind"];
  seconds: number;
  counts: Counts;
  throughput: { sendsPerSecond: number; deliveriesPerSecond: number };
  sendToAck: Summary;
  sendToPush: Summary;
  steps?: StepResult[];
  highestSustainedRate?: number;
  connect?: { peers: number; seconds: number };
  held?: { messages: number; flushSeconds: number };
}
