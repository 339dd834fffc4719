// The benchmark smoke runs: a tiny run of every scenario, of the floor, of
// the JetStream comparison, of the scaling run, of the statement costs and of
// the question of the presences a send must not lease to, so the harness
// cannot rot.
// Figures are not judged here (that is the benchmark's job); completeness is:
// everything sent arrives, once, and every ratio has both of its sides.
//
// Together they take minutes, so they are split over several test files (the
// groups below), which the test run's workers take side by side.
import { describe, expect, test } from "bun:test";
import { ownPostgresTestsRun } from "@switchboard/testkit";
import { laneKeys, statementStatsSettings, STATEMENT_KEYS } from "../../src/counters.ts";
import { natsServerBinary } from "../../src/jetstream/server.ts";
import type { LoadResult } from "../../src/plan.ts";
import type { Ratio } from "../../src/report.ts";
import { markdown, runFloorReport, runJetStreamComparison, runScaling, runScenarioReport } from "../../src/run.ts";
import { scenarios } from "../../src/scenarios.ts";
import { HOOK_SHAPE, runHookReport } from "../../src/hook.ts";
import { PRESENCES_SHAPE, runPresencesReport } from "../../src/presences.ts";
import { runStatementReport, STATEMENT_SHAPE, type StatementBackend } from "../../src/statement.ts";

const haveNats = natsServerBinary() !== null;
if (!haveNats && process.env.CI) throw new Error("CI must provide nats-server (the JetStream comparison)");

/** Which runs each smoke test file takes, about a third of a minute each on this machine class. */
export const SMOKE_GROUPS: Record<string, string[]> = {
  jetstream: ["jetstream", "latency"],
  scaling: ["scaling", "embedded-latency"],
  throughput: ["throughput", "embedded-throughput"],
  fanout: ["fanout", "cross-instance"],
  floor: ["floor", "connections", "held", "statement", "embedded-statement", "presences", "hook"],
};

/** Every acked message reached each of its recipients exactly once. */
function expectComplete(load: LoadResult): void {
  expect(load.counts.sent).toBeGreaterThan(0);
  expect(load.counts.acked).toBe(load.counts.sent);
  expect(load.counts.errors).toEqual({});
  expect(load.counts.lost).toBe(0);
  expect(load.counts.duplicates).toBe(0);
  expect(load.counts.delivered).toBe(load.counts.expectedDeliveries);
}

/**
 * Both sides of every ratio were measured. Our sustained rate may be 0 on a
 * loaded machine (no step kept up), and so may another system's under the
 * same load (`loadedPeer`); a floor, a latency or a duration never is.
 */
function expectMeasured(ratios: Ratio[], loadedPeer = false): void {
  expect(ratios.length).toBeGreaterThan(0);
  for (const r of ratios) {
    expect(Number.isFinite(r.ours)).toBe(true);
    if (r.metric === "rate" && loadedPeer) expect(r.theirs).toBeGreaterThanOrEqual(0);
    else expect(r.theirs).toBeGreaterThan(0);
    if (r.metric === "rate") continue;
    expect(Number.isFinite(r.ratio)).toBe(true);
  }
}

async function checkScenario(name: string): Promise<void> {
  const scenario = scenarios("smoke")[name]!;
  const report = await runScenarioReport(name, "smoke");
  const { load } = report.switchboard;
  if (load.kind === "connect") {
    expect(load.counts.sent).toBe(0);
    expect(load.counts.errors).toEqual({});
    // Its target is per connection too: the report says what each cost.
    expect(report.switchboard.rssPerConnectionBytes).toBeNumber();
    expect(markdown(report)).toContain("Broker RSS grown per connection: ");
  } else expectComplete(load);
  expect(load.connect?.peers).toBe(scenario.meshes * scenario.membersPerMesh);
  expect(report.switchboard.brokers.length).toBe(scenario.instances);
  if (!scenario.embedded) {
    expect(report.switchboard.rowsLeft.presences_live).toBe(0);
    expect(report.switchboard.rowsLeft.deliveries_unacked).toBe(0);
    expect(report.floor?.commitMs?.count).toBe(50);
  }
  if (name === "held") expect(load.held?.messages).toBe(500);
  // The profile read the send lane and event loop of each broker and, on a server with
  // pg_stat_statements, the statements' execution.
  if (load.kind !== "connect") {
    const per = report.switchboard.profile.perSecond;
    expect(per[laneKeys("broker-1").sends]).toBeGreaterThan(0);
    expect(per[laneKeys("broker-1").seconds]).toBeGreaterThan(0);
    expect(per[laneKeys("broker-1").delay]).toBeGreaterThan(0);
    expect(per[laneKeys("broker-1").pushes]).toBeGreaterThan(0);
    // On a Postgres server, what a core of it carried beside the floor's rows loop.
    if (!scenario.embedded) expect(markdown(report)).toContain("deliveries per Postgres core-second (÷ the floor's rows loop)");
    if (!scenario.embedded && statementStatsSettings().shared_preload_libraries) {
      const send = per[STATEMENT_KEYS.send]!;
      expect(send).toBeGreaterThan(0);
      // All statements' time holds the send statement's. While messages are
      // held the sends may be the only statements of the run's window: the
      // two sums are then equal but for the order of their float additions.
      expect(per[STATEMENT_KEYS.all]).toBeGreaterThanOrEqual(send * (1 - 1e-9));
      if (name !== "held") expect(per[STATEMENT_KEYS.all]).toBeGreaterThan(send);
    }
  }
  if (name === "throughput") expect(load.steps?.length).toBeGreaterThan(0);
  // Every scenario's workload is also run through the relay, held messages excepted.
  const relay = report.floor!.relay;
  if (load.kind === "held") expect(relay).toBeUndefined();
  else if (relay!.kind === "connect") expect(relay!.connect?.peers).toBe(load.connect?.peers);
  else expectComplete(relay!);
  expectMeasured(report.ratios);
  // Over several instances, the same load over one as well, and the ratio of the two.
  if (scenario.instances > 1) {
    expect(report.oneInstance?.run.brokers.length).toBe(1);
    expectComplete(report.oneInstance!.run.load);
    expectMeasured(report.oneInstance!.ratios);
  } else expect(report.oneInstance).toBeUndefined();
}

async function checkFloor(): Promise<void> {
  const { floor } = await runFloorReport("smoke");
  expectComplete(floor.relay!);
  expectComplete(floor.relayMax);
  // The closed loop's first window alone is 32 messages from each of the 10 peers.
  expect(floor.relayMax.counts.delivered).toBeGreaterThanOrEqual(32 * 10);
  expect(floor.commitMs?.count).toBe(50);
  // The rows loop checks the table itself; it reports whole batches, every one acked.
  expect(floor.rows!.messages).toBeGreaterThan(0);
  expect(floor.rows!.messages % floor.rows!.batch).toBe(0);
  // A durable message's floor is the relay's hop plus a measured commit.
  expect(floor.commitMs!.p50).toBeGreaterThan(0);
  expect(floor.message!.p50).toBe(floor.relay!.sendToPush.p50 + floor.commitMs!.p50);
  // The ceiling is the lower of two measured rates, neither of them zero.
  expect(floor.rows!.messagesPerSecond).toBeGreaterThan(0);
  expect(floor.relayMax.closed!.messagesPerSecond).toBeGreaterThan(0);
  expect(floor.ceiling).toBe(Math.min(floor.rows!.messagesPerSecond, floor.relayMax.closed!.messagesPerSecond));
}

async function checkJetStream(): Promise<void> {
  const { comparisons } = await runJetStreamComparison("smoke", ["throughput"]);
  expect(comparisons.length).toBe(1);
  const [c] = comparisons;
  expectComplete(c!.scenario.switchboard.load);
  expect(c!.jetstream.length).toBeGreaterThan(0);
  for (const js of c!.jetstream) {
    expectComplete(js.load);
    expect(js.load.steps?.length).toBeGreaterThan(0);
    // A work-queue stream keeps a message until its consumer acks it.
    expect(js.messagesLeft).toBe(0);
    expect(js.settings.server).toMatch(/^nats-server \d+\.\d+\.\d+$/);
  }
  if (c!.switchboardFsyncOff) expectComplete(c!.switchboardFsyncOff.load);
  expect(c!.ratios.length).toBe(c!.jetstream.length + (c!.switchboardFsyncOff ? 1 : 0));
  for (const r of c!.ratios) expectMeasured(r.ratios, true);
}

async function checkScaling(): Promise<void> {
  const report = await runScaling("smoke");
  expect(report.runs.map((r) => r.run.instances)).toEqual([1, 2]);
  for (const { run, ratios } of report.runs) {
    expectComplete(run.load);
    expect(run.brokers.length).toBe(run.instances);
    expect(run.rowsLeft.deliveries_unacked).toBe(0);
    expect(run.databaseCost!.rowWritesPerMessage).toBeGreaterThan(0);
    expectMeasured(ratios);
  }
}

async function checkStatement(backend: StatementBackend): Promise<void> {
  const report = await runStatementReport("smoke", backend);
  const { rounds, calls } = STATEMENT_SHAPE.smoke;
  // A round trip, a commit, two bare writes, six cases of each send statement, three of housekeeping.
  expect(report.cases.length).toBe(19);
  for (const c of report.cases) {
    expect(c.wallMs.count).toBe(rounds * calls);
    expect(c.wallMs.p50).toBeGreaterThan(0);
    expect(c.clientCpuMs).toBeGreaterThan(0);
  }
  // Batches of 1, 3, 10, 100 and 400 sends by each send statement, each send one delivery.
  expect(report.deliveries.expected).toBe(rounds * calls * 2 * 514);
  expect(report.deliveries.written).toBe(report.deliveries.expected);
}

async function checkPresences(): Promise<void> {
  const report = runPresencesReport("smoke");
  // A few engaged and half engaged, for each count of presences.
  expect(report.cases.map((c) => c.presences)).toEqual(PRESENCES_SHAPE.smoke.counts.flatMap((n) => [n, n]));
  for (const c of report.cases) {
    expect(c.agreed).toBe(true);
    expect(c.scanUs).toBeGreaterThan(0);
    expect(c.engagedOnlyUs).toBeGreaterThan(0);
  }
}

async function checkHook(): Promise<void> {
  // Each run of each case did its job, or the report would not have come: the hook's answered 200.
  const report = await runHookReport("smoke");
  const { rounds, calls } = HOOK_SHAPE.smoke;
  expect(report.cases.map((c) => c.wallMs.count)).toEqual([rounds * calls, rounds * calls, rounds * calls]);
  for (const c of report.cases) expect(c.ratio).toBeGreaterThan(0);
}

/** The runs besides the scenarios. */
const OTHER_RUNS: Record<string, () => Promise<void>> = {
  floor: checkFloor,
  jetstream: checkJetStream,
  scaling: checkScaling,
  statement: () => checkStatement("postgres"),
  "embedded-statement": () => checkStatement("embedded"),
  presences: checkPresences,
  hook: checkHook,
};

/** Every run of the benchmark's smoke size: the groups together must take each once. */
export const allSmokeRuns = (): string[] => [...Object.keys(scenarios("smoke")), ...Object.keys(OTHER_RUNS)];

/** The smoke runs of one group, as tests of the file that calls it. */
export function smokeGroup(group: string): void {
  const runs = SMOKE_GROUPS[group];
  if (!runs) throw new Error(`no smoke group ${group}`);
  describe.skipIf(!ownPostgresTestsRun())(`benchmark smoke runs (${group})`, () => {
    for (const name of runs) {
      const check = OTHER_RUNS[name] ?? (() => checkScenario(name));
      test.skipIf(name === "jetstream" && !haveNats)(name, check);
    }
  });
}
