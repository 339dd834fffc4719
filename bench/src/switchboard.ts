// One Switchboard run: the broker(s) on a fresh database of the given server
// (or on the embedded default), the peers enrolled, the load generator in a
// process of its own, a profile sampled throughout, and what was left behind.
import {
  AdminClient,
  embeddedBackend,
  postgresBackend,
  spawnBroker,
  type BrokerProcess,
  type TestBackend,
} from "@switchboard/testkit";
import { generateKeypair } from "@switchboard/protocol";
import { join } from "node:path";
import postgres from "postgres";
import { now } from "./clock.ts";
import { sendLaneCounters, statementCounters } from "./counters.ts";
import { runLoad } from "./load.ts";
import { databaseCost, databaseCounters, type DatabaseCost } from "./machine.ts";
import type { LoadResult, PlanMesh } from "./plan.ts";
import { cpuPercent, postmasterPid, Profiler, sampleProcess, type ProcessSample, type ProfileWindow } from "./probe.ts";
import { onDisk, type Scenario, type Size } from "./scenarios.ts";

const ADMIN_TOKEN = "bench-admin-token-0123456789";
const BROKER_ENV = {
  ADMIN_TOKEN,
  SEND_RATE_LIMIT_PER_MIN: "100000000",
  SEND_RECIPIENTS_RATE_LIMIT_PER_MIN: "100000000",
  MAX_CONNECTIONS_PER_MESH: "10000",
};

export interface SwitchboardRun {
  instances: number;
  load: LoadResult;
  /** CPU of each part and Postgres's active backends over the whole load; per step for a rising rate. */
  profile: ProfileWindow;
  stepProfiles?: ProfileWindow[];
  brokers: Array<{ rssBeforeBytes: number; rssAfterBytes: number; cpuPercent: number }>;
  rssPerConnectionBytes?: number;
  rowsLeft: Record<string, number>;
  /** What the database wrote per acked message, or per hello where the workload only connects (on a Postgres server). */
  databaseCost?: DatabaseCost;
  costPer: "message" | "hello";
}

/** The scenario's peers: key pairs in meshes named bench-0, bench-1, … */
export async function identities(scenario: Scenario): Promise<PlanMesh[]> {
  return Promise.all(
    Array.from({ length: scenario.meshes }, async (_, m) => ({
      slug: `bench-${m}`,
      members: await Promise.all(Array.from({ length: scenario.membersPerMesh }, () => generateKeypair())),
    })),
  );
}

async function enroll(admin: AdminClient, meshes: PlanMesh[]): Promise<void> {
  for (const mesh of meshes) {
    await admin.createMesh(mesh.slug);
    for (let i = 0; i < mesh.members.length; i += 50) {
      await Promise.all(
        mesh.members.slice(i, i + 50).map((k, j) => admin.addMember(mesh.slug, { pubkey: k.publicKey, displayName: `peer-${i + j}` })),
      );
    }
  }
}

/**
 * Table sizes once the broker has handled the load generator's last acks and
 * closes (at most 30 s). Acks are group-committed apart from the closes, so a
 * socket's last acks may commit after its presence has ended.
 */
async function rowsLeft(databaseUrl: string): Promise<Record<string, number>> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    for (const until = Date.now() + 30_000; Date.now() < until; await Bun.sleep(200)) {
      const [left] = await sql<Array<{ live: number; unacked: number }>>`
        SELECT (SELECT count(*)::int FROM presences WHERE disconnected_at IS NULL) AS live,
               (SELECT count(*)::int FROM deliveries) AS unacked`;
      if (left?.live === 0 && left.unacked === 0) break;
    }
    const [row] = await sql<Array<Record<string, number>>>`
      SELECT (SELECT count(*)::int FROM messages) AS messages,
             (SELECT count(*)::int FROM deliveries) + (SELECT count(*)::int FROM acked_deliveries) AS deliveries,
             (SELECT count(*)::int FROM deliveries) AS deliveries_unacked,
             (SELECT count(*)::int FROM presences WHERE disconnected_at IS NULL) AS presences_live,
             (SELECT count(*)::int FROM presences) AS presences,
             (SELECT count(*)::int FROM hello_replays) AS hello_replays,
             (SELECT count(*)::int FROM audit_log) AS audit_log`;
    return row ?? {};
  } finally {
    await sql.end();
  }
}

export async function runSwitchboard(options: {
  scenario: Scenario;
  /** The Postgres server to make a fresh database on; null for the embedded default. */
  serverUrl: string | null;
  meshes: PlanMesh[];
  instances: number;
  size: Size;
}): Promise<SwitchboardRun> {
  const { scenario, serverUrl, meshes, instances } = options;
  const brokers: BrokerProcess[] = [];
  let backend: TestBackend | undefined;
  let profiler: Profiler | undefined;
  try {
    backend = serverUrl ? await postgresBackend(serverUrl) : embeddedBackend({ onDisk: onDisk(options.size) });
    for (let i = 0; i < instances; i++) {
      brokers.push(await spawnBroker({ ...backend.env, ...BROKER_ENV, ...scenario.brokerEnv }));
    }
    await enroll(new AdminClient(brokers[0]!.url, ADMIN_TOKEN), meshes);

    const databaseUrl = backend.databaseUrl ?? null;
    profiler = new Profiler(databaseUrl);
    brokers.forEach((b, i) => profiler!.track(`broker-${i + 1}`, b.pid));
    brokers.forEach((b, i) => profiler!.trackCounters(sendLaneCounters(`broker-${i + 1}`, b.url)));
    if (databaseUrl) {
      profiler.track("postgres", await postmasterPid(databaseUrl), true);
      const statements = await statementCounters(databaseUrl);
      if (statements) profiler.trackCounters(statements);
    }
    const countersBefore = databaseUrl ? await databaseCounters(databaseUrl) : null;
    profiler.start();
    // And begins with one: every window of the load then has a reading of
    // each counter answered before it (Profiler.window).
    await profiler.sampleNow();

    const before = brokers.map((b) => sampleProcess(b.pid));
    let connected: ProcessSample[] = before;
    const load = await runLoad(
      { ...scenario.workload, system: { kind: "switchboard", urls: brokers.map((b) => b.wsUrl), meshes } },
      join(backend.env.DATA_DIR!, "plan.json"),
      {
        onSpawn: (pid) => profiler!.track("loadgen", pid),
        onConnected: () => (connected = brokers.map((b) => sampleProcess(b.pid))),
        failureLogs: () => `broker logs end with:\n${brokers.map((b) => b.stderrText().split("\n").slice(-40).join("\n")).join("\n---\n")}`,
      },
    );
    const after = brokers.map((b) => sampleProcess(b.pid));
    // The run's profile ends with a sample of its own: a broker stalled
    // through the periodic samples of a short run (its reads of /metrics wait
    // for it) would otherwise be read once in the window, or not at all.
    await profiler.sampleNow();
    const profiledTo = now();
    await profiler.stop();
    // The embedded database is locked by its broker; its rows are not counted.
    const rows = databaseUrl ? await rowsLeft(databaseUrl) : {};
    // A backend reports its statistics when its session ends at the latest.
    for (const b of brokers) await b.stop();
    const countersAfter = databaseUrl ? await databaseCounters(databaseUrl) : null;
    // Connecting is the whole of a connect workload; elsewhere the load is what follows it.
    const connecting = load.kind === "connect" && load.connect;
    const costPer = connecting ? "hello" : "message";
    const units = connecting ? load.connect!.peers : load.counts.acked;
    const run: SwitchboardRun = {
      instances,
      load,
      profile: connecting
        ? profiler.window(load.connect!.startedAt, load.connect!.startedAt + load.connect!.seconds * 1000)
        : profiler.window(load.startedAt, profiledTo),
      ...(load.steps ? { stepProfiles: load.steps.map((s) => profiler!.window(s.startedAt, s.endedAt)) } : {}),
      brokers: brokers.map((_, i) => ({
        rssBeforeBytes: before[i]!.rssBytes,
        rssAfterBytes: after[i]!.rssBytes,
        cpuPercent: cpuPercent(connected[i]!, after[i]!),
      })),
      rowsLeft: rows,
      ...(countersBefore && countersAfter ? { databaseCost: databaseCost(countersBefore, countersAfter, units) } : {}),
      costPer,
    };
    if (load.kind === "connect" && (load.connect?.peers ?? 0) > 0) {
      const grown = connected.reduce((n, s, i) => n + s.rssBytes - before[i]!.rssBytes, 0);
      run.rssPerConnectionBytes = Math.round(grown / load.connect!.peers);
    }
    return run;
  } finally {
    await profiler?.stop();
    for (const b of brokers) await b.stop();
    await backend?.dispose().catch(() => {});
  }
}
