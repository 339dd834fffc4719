// `bun run bench <name…> [--smoke]`. Every run starts a throwaway Postgres
// (fsync on), measures the floor on it, then the scenario; `jetstream` runs
// the latency and throughput scenarios and the same load against NATS
// JetStream in the same invocation; `scaling` runs 1, 2 and 3 instances on
// one Postgres; `floor` measures the floor alone. Prints Markdown tables and
// writes the report as JSON and Markdown to bench/out/.
import { startPostgresCluster, type PostgresCluster } from "@switchboard/testkit";
import { parseArgs } from "node:util";
import { statementStatsSettings } from "./counters.ts";
import { runFloor, type FloorReport } from "./floor/index.ts";
import { runJetStream, type JetStreamReport } from "./jetstream/index.ts";
import { natsServerBinary, natsServerVersion, supportsSyncAlways } from "./jetstream/server.ts";
import { benchCommand, postgresVersion, runContext } from "./machine.ts";
import { writeReport } from "./out.ts";
import {
  comparisonTable,
  contextLines,
  costCell,
  floorRatios,
  floorTable,
  loadRatios,
  jetStreamSettingsLines,
  profileTable,
  rssPerConnectionLine,
  type Ratio,
  type RunContext,
} from "./report.ts";
import { onDisk, scalingScenario, scenarios, type Scenario, type Size } from "./scenarios.ts";
import { identities, runSwitchboard, type SwitchboardRun } from "./switchboard.ts";

export interface ScenarioReport {
  kind: "scenario";
  context: RunContext;
  scenario: string;
  description: string;
  floor?: FloorReport;
  switchboard: SwitchboardRun;
  ratios: Ratio[];
  /**
   * For a scenario over several instances: the same load against one
   * instance on the same Postgres, run just before, and the several's
   * figures over the one's.
   */
  oneInstance?: { run: SwitchboardRun; ratios: Ratio[] };
}

export interface FloorOnlyReport {
  kind: "floor";
  context: RunContext;
  description: string;
  floor: FloorReport;
}

export interface JetStreamComparison {
  scenario: ScenarioReport;
  jetstream: JetStreamReport[];
  /** Switchboard on Postgres with fsync off (acks after write(2), as JetStream's), where no JetStream with fsync before its ack can be run. */
  switchboardFsyncOff?: SwitchboardRun;
  /** Each set names what it divides: "Switchboard ÷ JetStream (default)", … */
  ratios: Array<{ name: string; ratios: Ratio[] }>;
}

export interface JetStreamReportSet {
  kind: "jetstream";
  context: RunContext;
  comparisons: JetStreamComparison[];
}

export interface ScalingReport {
  kind: "scaling";
  context: RunContext;
  description: string;
  floor: FloorReport;
  runs: Array<{ run: SwitchboardRun; ratios: Ratio[] }>;
}

export type Report = ScenarioReport | FloorOnlyReport | JetStreamReportSet | ScalingReport;

function scenarioOf(name: string, size: Size): Scenario {
  const scenario = scenarios(size)[name];
  if (!scenario) throw new Error(`unknown scenario ${name}; one of: ${Object.keys(scenarios(size)).join(", ")}, floor, jetstream, scaling`);
  return scenario;
}

async function withCluster<T>(fsync: boolean, work: (cluster: PostgresCluster, context: RunContext) => Promise<T>, args: string, size: Size): Promise<T> {
  const cluster = await startPostgresCluster({ fsync, onDisk: onDisk(size), settings: statementStatsSettings() });
  try {
    const database = `Postgres ${await postgresVersion(cluster.url())}, fsync ${fsync ? "on" : "off"}`;
    return await work(cluster, runContext(args, size, database));
  } finally {
    await cluster.destroy();
  }
}

export async function runScenarioReport(name: string, size: Size, options: { floor?: boolean } = {}): Promise<ScenarioReport> {
  const scenario = scenarioOf(name, size);
  const work = async (serverUrl: string | null, context: RunContext): Promise<ScenarioReport> => {
    const meshes = await identities(scenario);
    const floor = options.floor === false ? undefined : await runFloor({ serverUrl, meshes, workload: scenario.workload, size });
    const one = scenario.instances > 1 ? await runSwitchboard({ scenario, serverUrl, meshes, instances: 1, size }) : undefined;
    const switchboard = await runSwitchboard({ scenario, serverUrl, meshes, instances: scenario.instances, size });
    return {
      kind: "scenario",
      context,
      scenario: name,
      description: scenario.description,
      floor,
      switchboard,
      ratios: floorRatios(switchboard, floor),
      ...(one ? { oneInstance: { run: one, ratios: loadRatios(switchboard.load, one.load) } } : {}),
    };
  };
  if (scenario.embedded) {
    return work(null, runContext(name, size, "embedded (PGlite)"));
  }
  return withCluster(true, (cluster, context) => work(cluster.url(), context), name, size);
}

export async function runFloorReport(size: Size): Promise<FloorOnlyReport> {
  const scenario = scenarioOf("latency", size);
  return withCluster(
    true,
    async (cluster, context) => ({
      kind: "floor",
      context,
      description: `the floor under the latency scenario's load: ${scenario.description}`,
      floor: await runFloor({ serverUrl: cluster.url(), meshes: await identities(scenario), workload: scenario.workload, size }),
    }),
    "floor",
    size,
  );
}

export async function runJetStreamComparison(size: Size, names: string[] = ["latency", "throughput"]): Promise<JetStreamReportSet> {
  const binary = natsServerBinary();
  if (!binary) throw new Error("nats-server is not installed (Debian package nats-server)");
  const syncAlways = supportsSyncAlways(natsServerVersion(binary));
  const comparisons: JetStreamComparison[] = [];
  let context: RunContext | undefined;
  for (const name of names) {
    const scenario = await runScenarioReport(name, size);
    context ??= { ...scenario.context, command: benchCommand(["jetstream", ...names].join(" "), size) };
    const definition = scenarioOf(name, size);
    const same = { workload: definition.workload, peers: definition.membersPerMesh };
    const jetstream = [await runJetStream({ ...same, variant: "default" })];
    if (syncAlways) jetstream.push(await runJetStream({ ...same, variant: "sync-always" }));
    const switchboardFsyncOff = syncAlways
      ? undefined
      : await withCluster(
          false,
          async (cluster) => runSwitchboard({ scenario: definition, serverUrl: cluster.url(), meshes: await identities(definition), instances: 1, size }),
          `jetstream ${name}`,
          size,
        );
    const ratios = jetstream.map((js) => ({
      name: `Switchboard ÷ JetStream (${js.settings.variant})`,
      ratios: loadRatios(scenario.switchboard.load, js.load),
    }));
    if (switchboardFsyncOff) {
      ratios.push({
        name: "Switchboard fsync off ÷ JetStream (default): both ack before fsync",
        ratios: loadRatios(switchboardFsyncOff.load, jetstream[0]!.load),
      });
    }
    comparisons.push({ scenario, jetstream, ...(switchboardFsyncOff ? { switchboardFsyncOff } : {}), ratios });
  }
  return { kind: "jetstream", context: context!, comparisons };
}

export async function runScaling(size: Size): Promise<ScalingReport> {
  const scenario = scalingScenario(size);
  return withCluster(
    true,
    async (cluster, context) => {
      const meshes = await identities(scenario);
      const floor = await runFloor({ serverUrl: cluster.url(), meshes, workload: scenario.workload, size });
      const runs: ScalingReport["runs"] = [];
      for (const instances of scenario.instanceCounts) {
        const run = await runSwitchboard({ scenario, serverUrl: cluster.url(), meshes, instances, size });
        runs.push({ run, ratios: floorRatios(run, floor) });
      }
      return { kind: "scaling", context, description: scenario.description, floor, runs };
    },
    "scaling",
    size,
  );
}

/** Where a Switchboard run's time went: CPU per part and Postgres waits, and what it wrote per message. */
function runDetails(run: SwitchboardRun, floor: FloorReport | undefined): string[] {
  const cost = run.databaseCost ? [`Switchboard per ${run.costPer}: ${costCell(run.databaseCost)} (commits; row writes; WAL bytes).`, ""] : [];
  const memory = run.rssPerConnectionBytes === undefined ? [] : [rssPerConnectionLine(run.rssPerConnectionBytes), ""];
  return [profileTable(run, floor), "", ...cost, ...memory];
}

export function markdown(report: Report): string {
  const out: string[] = [contextLines(report.context), ""];
  if (report.kind === "floor") {
    out.push(`The floor: ${report.description}.`, "", floorTable(report.floor));
  } else if (report.kind === "scenario") {
    out.push(`**${report.scenario}**: ${report.description}.`, "");
    if (report.floor) out.push(floorTable(report.floor), "");
    const one = report.oneInstance;
    const instances = report.switchboard.instances;
    out.push(
      comparisonTable(
        report.floor,
        one
          ? [
              { name: `Switchboard, ${instances} instances`, load: report.switchboard.load },
              { name: "Switchboard, 1 instance", load: one.run.load },
            ]
          : [{ name: "Switchboard", load: report.switchboard.load }],
        [
          { name: "Switchboard ÷ floor", ratios: report.ratios },
          ...(one ? [{ name: `${instances} instances ÷ 1`, ratios: one.ratios }] : []),
        ],
      ),
      "",
      ...(one ? ["1 instance:", "", ...runDetails(one.run, report.floor), `${instances} instances:`, ""] : []),
      ...runDetails(report.switchboard, report.floor),
    );
  } else if (report.kind === "jetstream") {
    for (const c of report.comparisons) {
      const s = c.scenario;
      out.push(`**${s.scenario}**: ${s.description}.`, "");
      if (s.floor) out.push(floorTable(s.floor), "");
      out.push(
        comparisonTable(
          s.floor,
          [
            { name: "Switchboard", load: s.switchboard.load },
            ...c.jetstream.map((j) => ({ name: `JetStream (${j.settings.variant})`, load: j.load })),
            ...(c.switchboardFsyncOff ? [{ name: "Switchboard, fsync off", load: c.switchboardFsyncOff.load }] : []),
          ],
          [{ name: "Switchboard ÷ floor", ratios: s.ratios }, ...c.ratios],
        ),
        "",
        jetStreamSettingsLines(c.jetstream),
        "",
        ...runDetails(s.switchboard, s.floor),
      );
    }
  } else {
    out.push(`**scaling**: ${report.description}.`, "", floorTable(report.floor), "");
    for (const { run, ratios } of report.runs) {
      out.push(`${run.instances} instance${run.instances > 1 ? "s" : ""}:`, "");
      out.push(comparisonTable(report.floor, [{ name: "Switchboard", load: run.load }], [{ name: "÷ floor", ratios }]), "");
      out.push(...runDetails(run, report.floor));
    }
  }
  return out.join("\n");
}

async function runNamed(name: string, rest: string[], size: Size): Promise<Report> {
  if (name === "floor") return runFloorReport(size);
  if (name === "scaling") return runScaling(size);
  if (name === "jetstream") return runJetStreamComparison(size, rest.length > 0 ? rest : undefined);
  return runScenarioReport(name, size);
}

/** The names a run takes besides the scenarios. */
const OTHER_RUNS = ["floor", "jetstream", "scaling", "statement", "embedded-statement", "hook", "presences", "robust", "http", "webhook"];

function usage(): string {
  return `usage: bun run bench [--smoke] [name …]; a name is a scenario (${Object.keys(scenarios("full")).join(", ")}; none runs them all) or one of ${OTHER_RUNS.join(", ")} (README.md, Benchmarks)`;
}

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { smoke: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    console.log(usage());
    return;
  }
  const size: Size = values.smoke ? "smoke" : "full";
  const isScenario = (n: string) => n in scenarios(size);
  const [first, ...more] = positionals;
  // After robust its one part; after jetstream scenarios.
  const unknown = [
    ...(first === undefined || isScenario(first) || OTHER_RUNS.includes(first) ? [] : [first]),
    ...(first === "robust" ? more.filter((n) => n !== "floods") : more.filter((n) => !isScenario(n) && (first === "jetstream" || !OTHER_RUNS.includes(n)))),
  ];
  if (unknown.length > 0) throw new UsageError(`unknown name ${unknown.join(", ")}`);
  if (positionals[0] === "robust") {
    await (await import("./robust.ts")).main(size, positionals[1]);
    return;
  }
  if (positionals[0] === "statement" || positionals[0] === "embedded-statement") {
    await (await import("./statement.ts")).main(size, positionals[0] === "statement" ? "postgres" : "embedded");
    return;
  }
  if (positionals[0] === "hook") {
    await (await import("./hook.ts")).main(size);
    return;
  }
  if (positionals[0] === "presences") {
    await (await import("./presences.ts")).main(size);
    return;
  }
  if (positionals[0] === "http" || positionals[0] === "webhook") {
    await (await import("./http-run.ts")).main(positionals[0], size);
    return;
  }
  // `jetstream` takes the scenario names after it; any other name stands alone.
  const jobs: Array<[string, string[]]> =
    positionals[0] === "jetstream"
      ? [["jetstream", positionals.slice(1)]]
      : (positionals.length > 0 ? positionals : Object.keys(scenarios(size))).map((n) => [n, []]);
  for (const [name, rest] of jobs) {
    const report = await runNamed(name, rest, size);
    await writeReport(name, size, report, markdown(report));
  }
}

class UsageError extends Error {}

if (import.meta.main) {
  try {
    await main(process.argv.slice(2));
    process.exit(0);
  } catch (error) {
    // A wrong name or option is the caller's: one line and the usage, not a stack.
    const theirs = error instanceof UsageError || (error instanceof TypeError && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS"));
    if (!theirs) throw error;
    console.error(`bench: ${error.message}\n${usage()}`);
    process.exit(2);
  }
}
