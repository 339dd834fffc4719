// `bun run bench floor`, and the first part of every scenario: what Bun and
// Postgres themselves do on this machine at this moment. The relay takes the
// scenario's own workload (same peers, same load generator, no database); the
// database part measures one durable commit and the rows of a message in the
// broker's batches on a fresh database of the same server.
import { connect, migrate } from "@switchboard/db";
import { postgresBackend, tempDir } from "@switchboard/testkit";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { runLoad } from "../load.ts";
import { databaseCost, databaseCounters, type DatabaseCost } from "../machine.ts";
import type { LoadResult, PlanMesh, Workload } from "../plan.ts";
import { postmasterPid, Profiler, treeCpuSeconds, type ProfileWindow } from "../probe.ts";
import type { Size } from "../scenarios.ts";
import type { Summary } from "../stats.ts";
import { measureCommits } from "./commit.ts";
import { startRelay } from "./relay.ts";
import { measureRows, type RowsResult } from "./rows.ts";

export interface FloorReport {
  /** The scenario's workload through the bare relay; absent where it has no relay form (held messages need statuses). */
  relay?: LoadResult;
  relayProfile?: ProfileWindow;
  /** The relay's closed-loop maximum: every peer of one mesh keeps a window of messages in flight. */
  relayMax: LoadResult;
  relayMaxProfile: ProfileWindow;
  /** One durable single-row commit, ms (on a Postgres server; absent for the embedded default). */
  commitMs?: Summary;
  rows?: RowsResult;
  /** What the rows loop wrote per message, to set beside the broker's. */
  rowsCost?: DatabaseCost;
  /** The floor of one durable message: relay send→push plus one durable commit (p99: the sum of the p99s). */
  message?: { p50: number; p99: number };
  /** The ceiling of throughput: the lower of the rows' rate and the relay's closed-loop maximum, msg/s. */
  ceiling: number;
}

/** The relay form of a scenario's workload: the same load, each step at most 10 s (the relay's figures settle fast). */
function relayWorkload(workload: Workload, size: Size): Workload | null {
  if (workload.kind === "held") return null;
  if (workload.kind !== "rate") return workload;
  return { ...workload, steps: workload.steps.map((s) => ({ rate: s.rate, seconds: Math.min(s.seconds, size === "smoke" ? 1 : 10) })) };
}

async function measureDatabase(serverUrl: string, size: Size): Promise<{ commitMs: Summary; rows: RowsResult; rowsCost: DatabaseCost }> {
  const backend = await postgresBackend(serverUrl);
  const url = backend.databaseUrl!;
  try {
    const db = await connect({ databaseUrl: url, dataDir: backend.dataDir! });
    try {
      await migrate(db);
    } finally {
      await db.close();
    }
    const postmaster = await postmasterPid(url);
    const commitMs = await measureCommits(url, size === "smoke" ? 50 : 2000);
    const before = await databaseCounters(url);
    const rows = await measureRows(url, {
      members: size === "smoke" ? 10 : 100,
      seconds: size === "smoke" ? 0.5 : 10,
      postgresCpuSeconds: () => treeCpuSeconds(postmaster),
    });
    return { commitMs, rows, rowsCost: databaseCost(before, await databaseCounters(url), rows.messages) };
  } finally {
    await backend.dispose();
  }
}

export async function runFloor(options: {
  /** The Postgres server of the scenario; null for the embedded default. */
  serverUrl: string | null;
  meshes: PlanMesh[];
  workload: Workload;
  size: Size;
}): Promise<FloorReport> {
  const dir = tempDir("floor");
  const relay = await startRelay();
  const profiler = new Profiler(null);
  profiler.track("relay", relay.pid);
  profiler.start();
  try {
    const system = { kind: "switchboard" as const, urls: [relay.wsUrl], meshes: options.meshes };
    const onSpawn = (pid: number) => profiler.track("loadgen", pid);
    const workload = relayWorkload(options.workload, options.size);
    const relayRun = workload ? await runLoad({ ...workload, system }, join(dir, "relay.json"), { onSpawn }) : undefined;
    const first = options.meshes[0]!;
    const relayMax = await runLoad(
      {
        kind: "closed",
        window: 32,
        seconds: options.size === "smoke" ? 0.5 : 5,
        drainMs: 10_000,
        system: { ...system, meshes: [{ slug: first.slug, members: first.members.slice(0, 100) }] },
      },
      join(dir, "relay-max.json"),
      { onSpawn },
    );
    await profiler.stop();
    const database = options.serverUrl ? await measureDatabase(options.serverUrl, options.size) : undefined;
    const relayMaxRate = relayMax.closed?.messagesPerSecond ?? 0;
    return {
      ...(relayRun ? { relay: relayRun, relayProfile: profiler.window(relayRun.startedAt, relayRun.endedAt) } : {}),
      relayMax,
      relayMaxProfile: profiler.window(relayMax.startedAt, relayMax.endedAt),
      ...(database ?? {}),
      ...(database && relayRun?.kind === "rate"
        ? {
            message: {
              p50: relayRun.sendToPush.p50 + database.commitMs.p50,
              p99: relayRun.sendToPush.p99 + database.commitMs.p99,
            },
          }
        : {}),
      ceiling: database ? Math.min(database.rows.messagesPerSecond, relayMaxRate) : relayMaxRate,
    };
  } finally {
    await profiler.stop();
    await relay.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
