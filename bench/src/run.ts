// `bun run bench <scenario> [--smoke]`: starts a throwaway Postgres (fsync
// on), the broker(s) on it and the load generator in a process of its own;
// prints the result and writes it as JSON to bench/out/.
import {
  AdminClient,
  embeddedBackend,
  postgresBackend,
  spawnBroker,
  startPostgresCluster,
  type BrokerProcess,
  type PostgresCluster,
  type TestBackend,
} from "@switchboard/testkit";
import { generateKeypair } from "@switchboard/protocol";
import { mkdirSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import postgres from "postgres";
import type { LoadResult, PlanMesh } from "./plan.ts";
import { cpuPercent, sampleProcess, type ProcessSample } from "./probe.ts";
import { scenarios, type Scenario } from "./scenarios.ts";

const ADMIN_TOKEN = "bench-admin-token-0123456789";
const BROKER_ENV = {
  ADMIN_TOKEN,
  SEND_RATE_LIMIT_PER_MIN: "100000000",
  MAX_CONNECTIONS_PER_MESH: "10000",
};

export interface BenchReport {
  scenario: string;
  description: string;
  size: "full" | "smoke";
  machine: { cpus: number; cpuModel: string; memoryGiB: number; bun: string };
  load: LoadResult;
  brokers: Array<{ rssBeforeBytes: number; rssAfterBytes: number; cpuPercent: number }>;
  rssPerConnectionBytes?: number;
  rowsLeft: Record<string, number>;
}

async function enroll(admin: AdminClient, scenario: Scenario): Promise<PlanMesh[]> {
  const meshes: PlanMesh[] = [];
  for (let m = 0; m < scenario.meshes; m++) {
    const slug = `bench-${m}`;
    await admin.createMesh(slug);
    const members = await Promise.all(Array.from({ length: scenario.membersPerMesh }, () => generateKeypair()));
    for (let i = 0; i < members.length; i += 50) {
      await Promise.all(
        members.slice(i, i + 50).map((k, j) => admin.addMember(slug, { pubkey: k.publicKey, displayName: `peer-${i + j}` })),
      );
    }
    meshes.push({ slug, members });
  }
  return meshes;
}

async function runLoad(planPath: string, brokers: BrokerProcess[], onConnected: () => void): Promise<LoadResult> {
  const proc = Bun.spawn(["bun", join(import.meta.dir, "loadgen.ts"), planPath], { stdout: "pipe", stderr: "inherit" });
  let result: LoadResult | undefined;
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of proc.stdout) {
    buffer += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = JSON.parse(buffer.slice(0, nl)) as { event: string; result?: LoadResult };
      buffer = buffer.slice(nl + 1);
      if (line.event === "connected") onConnected();
      if (line.event === "result") result = line.result;
    }
  }
  const code = await proc.exited;
  if (!result) {
    const tail = brokers.map((b) => b.stderrText().split("\n").slice(-40).join("\n")).join("\n---\n");
    throw new Error(`load generator exited ${code} without a result; broker logs end with:\n${tail}`);
  }
  return result;
}

/** Table sizes once the broker has handled the load generator's last acks and closes (at most 30 s). */
async function rowsLeft(databaseUrl: string): Promise<Record<string, number>> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    for (const until = Date.now() + 30_000; Date.now() < until; await Bun.sleep(200)) {
      const [live] = await sql<Array<{ n: number }>>`
        SELECT count(*)::int AS n FROM presences WHERE disconnected_at IS NULL`;
      if (live?.n === 0) break;
    }
    const [row] = await sql<Array<Record<string, number>>>`
      SELECT (SELECT count(*)::int FROM messages) AS messages,
             (SELECT count(*)::int FROM deliveries) AS deliveries,
             (SELECT count(*)::int FROM deliveries WHERE state <> 'acked') AS deliveries_unacked,
             (SELECT count(*)::int FROM presences WHERE disconnected_at IS NULL) AS presences_live,
             (SELECT count(*)::int FROM presences) AS presences,
             (SELECT count(*)::int FROM hello_replays) AS hello_replays,
             (SELECT count(*)::int FROM audit_log) AS audit_log`;
    return row ?? {};
  } finally {
    await sql.end();
  }
}

export async function runScenario(name: string, size: "full" | "smoke"): Promise<BenchReport> {
  const scenario = scenarios(size)[name];
  if (!scenario) throw new Error(`unknown scenario ${name}; one of: ${Object.keys(scenarios(size)).join(", ")}`);
  const cluster: PostgresCluster | null = scenario.embedded ? null : await startPostgresCluster({ fsync: true });
  const brokers: BrokerProcess[] = [];
  let backend: TestBackend | undefined;
  try {
    backend = cluster ? await postgresBackend(cluster.url()) : embeddedBackend();
    for (let i = 0; i < scenario.instances; i++) {
      brokers.push(await spawnBroker({ ...backend.env, ...BROKER_ENV, ...scenario.brokerEnv }));
    }
    const admin = new AdminClient(brokers[0]!.url, ADMIN_TOKEN);
    const meshes = await enroll(admin, scenario);
    const plan = scenario.plan({ urls: brokers.map((b) => b.wsUrl), meshes });
    const planPath = join(backend.env.DATA_DIR!, "plan.json");
    await Bun.write(planPath, JSON.stringify(plan));

    const before = brokers.map((b) => sampleProcess(b.pid));
    let connected: ProcessSample[] = before;
    const load = await runLoad(planPath, brokers, () => {
      connected = brokers.map((b) => sampleProcess(b.pid));
    });
    const after = brokers.map((b) => sampleProcess(b.pid));
    // The embedded database is locked by its broker; its rows are not counted.
    const rows = backend.databaseUrl ? await rowsLeft(backend.databaseUrl) : {};
    const peers = load.connect?.peers ?? 0;
    const report: BenchReport = {
      scenario: name,
      description: scenario.description,
      size,
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model ?? "unknown",
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        bun: Bun.version,
      },
      load,
      brokers: brokers.map((_, i) => ({
        rssBeforeBytes: before[i]!.rssBytes,
        rssAfterBytes: after[i]!.rssBytes,
        cpuPercent: cpuPercent(connected[i]!, after[i]!),
      })),
      rowsLeft: rows,
    };
    if (name === "connections" && peers > 0) {
      const grown = connected.reduce((n, s, i) => n + s.rssBytes - before[i]!.rssBytes, 0);
      report.rssPerConnectionBytes = Math.round(grown / peers);
    }
    return report;
  } finally {
    for (const b of brokers) await b.stop();
    await backend?.dispose().catch(() => {});
    await cluster?.destroy();
  }
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { smoke: { type: "boolean" } } });
  const size = values.smoke ? "smoke" : "full";
  if (positionals[0] === "robust") {
    await (await import("./robust.ts")).main(size);
    process.exit(0);
  }
  const names = positionals.length > 0 ? positionals : Object.keys(scenarios(size));
  mkdirSync(join(import.meta.dir, "..", "out"), { recursive: true });
  for (const name of names) {
    const report = await runScenario(name, size);
    const path = join(import.meta.dir, "..", "out", `${name}-${size}-${new Date().toISOString().replaceAll(":", "-")}.json`);
    await Bun.write(path, JSON.stringify(report, null, 2));
    console.log(JSON.stringify(report, null, 2));
    console.log(`written to ${path}`);
  }
}
