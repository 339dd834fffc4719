// The benchmark scenarios: full size for `bun run bench <name>`, and a tiny
// smoke size that the test suite runs so the harness cannot rot.
import type { Workload } from "./plan.ts";

export interface Scenario {
  name: string;
  description: string;
  instances: number;
  /** On the embedded default (PGlite in a temporary DATA_DIR) instead of a Postgres server. */
  embedded?: boolean;
  /** Meshes × members per mesh of peers. */
  meshes: number;
  membersPerMesh: number;
  brokerEnv?: Record<string, string>;
  workload: Workload;
}

export type Size = "full" | "smoke";

/**
 * Whether a run keeps its databases on disk. A full run is measured, on disk
 * as a user's would be; a smoke run only proves the harness works, and keeps
 * them in memory, where creating and writing them costs the test suite less
 * CPU.
 */
export const onDisk = (size: Size): boolean => size === "full";

const rate = (rate: number, seconds: number) => [{ rate, seconds }];

/** Open-loop direct sends at a rising rate until send→push p99 passes 100 ms (smoke: two short, small steps). */
function risingRate(smoke: boolean, rates: number[]): Workload {
  return {
    kind: "rate",
    target: "direct",
    steps: (smoke ? [200, 400] : rates).map((r) => ({ rate: r, seconds: smoke ? 0.5 : 5 })),
    stopAboveP99Ms: 100,
    drainMs: 30_000,
  };
}

/** The scaling run: the throughput load against 1, 2 and 3 instances on one Postgres, one after the other. */
export function scalingScenario(size: Size): Scenario & { instanceCounts: number[] } {
  const smoke = size === "smoke";
  return {
    name: "scaling",
    description: `${smoke ? 10 : 100} peers, direct sends at a rising rate, against 1, 2 and 3 broker instances on one Postgres`,
    instances: 1,
    instanceCounts: smoke ? [1, 2] : [1, 2, 3],
    meshes: 1,
    membersPerMesh: smoke ? 10 : 100,
    workload: risingRate(smoke, [1000, 2000, 3000, 4000, 5000, 6000, 8000, 10_000, 12_000, 15_000]),
  };
}

export function scenarios(size: Size): Record<string, Scenario> {
  const smoke = size === "smoke";
  const latency = (instances: number): Scenario => ({
    name: instances === 1 ? "latency" : "cross-instance",
    description: `${smoke ? 10 : 100} peers in one mesh, direct messages at ${smoke ? 100 : 1000} msg/s for ${smoke ? 1 : 30} s` +
      (instances > 1 ? `, over ${instances} instances, and over one just before on the same Postgres` : ""),
    instances,
    meshes: 1,
    membersPerMesh: smoke ? 10 : 100,
    workload: { kind: "rate", target: "direct", steps: rate(smoke ? 100 : 1000, smoke ? 1 : 30), drainMs: 20_000 },
  });
  return {
    latency: latency(1),
    "embedded-latency": {
      ...latency(1),
      name: "embedded-latency",
      description: `latency on the embedded default: ${smoke ? 10 : 100} peers, ${smoke ? 100 : 1000} msg/s for ${smoke ? 1 : 30} s`,
      embedded: true,
    },
    "cross-instance": latency(3),
    throughput: {
      name: "throughput",
      description: `${smoke ? 10 : 100} peers, open-loop direct sends at a rising rate until send→push p99 passes 100 ms`,
      instances: 1,
      meshes: 1,
      membersPerMesh: smoke ? 10 : 100,
      workload: risingRate(smoke, [2000, 4000, 6000, 8000, 10_000, 12_000, 15_000, 20_000, 25_000, 30_000]),
    },
    "embedded-throughput": {
      name: "embedded-throughput",
      description: `throughput on the embedded default: ${smoke ? 10 : 100} peers, open-loop direct sends at a rising rate until send→push p99 passes 100 ms`,
      instances: 1,
      embedded: true,
      meshes: 1,
      membersPerMesh: smoke ? 10 : 100,
      workload: risingRate(smoke, [500, 1000, 2000, 3000, 4000, 6000, 8000, 10_000]),
    },
    fanout: {
      name: "fanout",
      description: `broadcast (*) in a ${smoke ? 10 : 100}-member mesh at ${smoke ? 10 : 50} msg/s for ${smoke ? 1 : 10} s`,
      instances: 1,
      meshes: 1,
      membersPerMesh: smoke ? 10 : 100,
      workload: { kind: "rate", target: "broadcast", steps: rate(smoke ? 10 : 50, smoke ? 1 : 10), drainMs: 30_000 },
    },
    connections: {
      name: "connections",
      description: `${smoke ? 50 : 10_000} peers (meshes of 100) connect with signed hellos and stay idle`,
      instances: 1,
      meshes: smoke ? 1 : 100,
      membersPerMesh: smoke ? 50 : 100,
      workload: { kind: "connect", concurrency: 200, holdMs: smoke ? 500 : 3000 },
    },
    held: {
      name: "held",
      description: `${smoke ? 10 : 100} working peers while ${smoke ? 500 : 100_000} next messages queue, then all go idle`,
      instances: 1,
      meshes: 1,
      // The first half sends, the second half receives.
      membersPerMesh: smoke ? 20 : 200,
      brokerEnv: { STATUS_TTL_SECONDS: "3600" },
      workload: { kind: "held", messages: smoke ? 500 : 100_000, drainMs: 120_000 },
    },
  };
}
