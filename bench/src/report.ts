// Reports: the figures of a run, its ratios to the floor and to JetStream,
// and the same as Markdown tables (what bench/RESULTS.md is made of).
import { laneKeys, STATEMENT_KEYS } from "./counters.ts";
import type { FloorReport } from "./floor/index.ts";
import type { RowsResult } from "./floor/rows.ts";
import type { JetStreamReport } from "./jetstream/index.ts";
import type { DatabaseCost, Machine } from "./machine.ts";
import type { LoadResult } from "./plan.ts";
import type { ProfileWindow } from "./probe.ts";
import type { SwitchboardRun } from "./switchboard.ts";

export interface RunContext {
  command: string;
  size: "full" | "smoke";
  commit: string;
  machine: Machine;
  /** e.g. "Postgres 15.18, fsync on" or "embedded (PGlite)". */
  database: string;
}

/** ours ÷ theirs; for latencies above 1 means slower, for rates below 1 means less. */
export interface Ratio {
  /** The figure it compares, as the tables name their rows. */
  metric: Metric;
  what: string;
  ours: number;
  theirs: number;
  ratio: number;
}

type Metric = "send→ack" | "send→push" | "rate" | "connect" | "flush";

const ratio = (metric: Metric, what: string, ours: number, theirs: number): Ratio => ({
  metric,
  what,
  ours,
  theirs,
  ratio: theirs > 0 ? Math.round((ours / theirs) * 100) / 100 : Number.NaN,
});

/** Draining held messages needs their claims and acks, not their inserts: the slower of the two stages bounds it. */
function floorFlushSeconds(rows: RowsResult, messages: number): number {
  return messages / Math.min(rows.claimRowsPerSecond, rows.ackRowsPerSecond);
}

/** Broker ÷ floor, for whatever the scenario's workload measures. */
export function floorRatios(run: SwitchboardRun, floor: FloorReport | undefined): Ratio[] {
  if (!floor) return [];
  const load = run.load;
  const out: Ratio[] = [];
  if (load.kind === "rate") {
    const floorP50 = floor.message?.p50 ?? floor.relay?.sendToPush.p50 ?? 0;
    const floorP99 = floor.message?.p99 ?? floor.relay?.sendToPush.p99 ?? 0;
    out.push(ratio("send→push", "send→push p50 ÷ floor p50", load.sendToPush.p50, floorP50));
    out.push(ratio("send→push", "send→push p99 ÷ floor p99", load.sendToPush.p99, floorP99));
    if (load.steps) out.push(ratio("rate", "highest sustained rate ÷ ceiling", load.highestSustainedRate ?? 0, floor.ceiling));
  } else if (load.kind === "connect" && floor.relay?.connect) {
    out.push(ratio("connect", "connect time ÷ relay connect time", load.connect?.seconds ?? 0, floor.relay.connect.seconds));
  } else if (load.kind === "held" && load.held && floor.rows) {
    out.push(ratio("flush", "flush time ÷ floor flush time", load.held.flushSeconds, floorFlushSeconds(floor.rows, load.held.messages)));
  }
  return out;
}

/** One run's figures over another's on the same workload: Switchboard ÷ JetStream, or many instances ÷ one. */
export function loadRatios(ours: LoadResult, theirs: LoadResult): Ratio[] {
  const out = [
    ratio("send→push", "send→push p50", ours.sendToPush.p50, theirs.sendToPush.p50),
    ratio("send→push", "send→push p99", ours.sendToPush.p99, theirs.sendToPush.p99),
    ratio("send→ack", "send→ack p50", ours.sendToAck.p50, theirs.sendToAck.p50),
    ratio("send→ack", "send→ack p99", ours.sendToAck.p99, theirs.sendToAck.p99),
  ];
  if (ours.steps && theirs.steps) out.push(ratio("rate", "highest sustained rate", ours.highestSustainedRate ?? 0, theirs.highestSustainedRate ?? 0));
  return out;
}

// ---- Markdown ----

const n = (v: number | undefined, digits = 1) =>
  v === undefined || Number.isNaN(v) ? "—" : v.toLocaleString("en-US", { maximumFractionDigits: digits });
const x = (r: Ratio | undefined) => (r && !Number.isNaN(r.ratio) ? `${n(r.ratio, 2)}×` : "—");

export function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

export function contextLines(ctx: RunContext): string {
  const m = ctx.machine;
  return [
    `command: \`${ctx.command}\`${ctx.size === "smoke" ? " (smoke size)" : ""}`,
    `commit: ${ctx.commit}`,
    `machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.kernel}, Bun ${m.bun}; database: ${ctx.database}`,
  ].join("  \n");
}

/** The floor's own figures. */
export function floorTable(floor: FloorReport): string {
  const rows: string[][] = [];
  if (floor.relay?.kind === "connect") rows.push(["relay connect time (s), the scenario's peers", n(floor.relay.connect?.seconds, 2)]);
  else if (floor.relay) {
    rows.push(["relay send→push p50 / p99 (ms), the scenario's load", `${n(floor.relay.sendToPush.p50, 2)} / ${n(floor.relay.sendToPush.p99, 2)}`]);
    if (floor.relay.steps) rows.push(["relay highest sustained rate (msg/s)", n(floor.relay.highestSustainedRate, 0)]);
  }
  const max = floor.relayMax.closed;
  rows.push([`relay closed-loop maximum (msg/s, window ${max?.window ?? "?"} per peer)`, n(max?.messagesPerSecond, 0)]);
  if (floor.commitMs) rows.push(["one durable commit p50 / p99 (ms)", `${n(floor.commitMs.p50, 2)} / ${n(floor.commitMs.p99, 2)}`]);
  if (floor.rows) {
    const r = floor.rows;
    rows.push([`rows of a message, batches of ${r.batch} (msg/s; row writes/s)`, `${n(r.messagesPerSecond, 0)}; ${n(r.rowWritesPerSecond, 0)}`]);
    rows.push(["rows loop: Postgres cores busy; msg per Postgres core-second", `${n(r.postgresCores, 2)}; ${n(r.messagesPerPostgresCoreSecond, 0)}`]);
    rows.push(["rows loop, claim / ack statements alone (rows/s)", `${n(r.claimRowsPerSecond, 0)} / ${n(r.ackRowsPerSecond, 0)}`]);
    if (floor.rowsCost) rows.push(["rows loop, per message: commits; row writes; WAL bytes", costCell(floor.rowsCost)]);
  }
  if (floor.message) rows.push(["**floor of a durable message** p50 / p99 (ms)", `**${n(floor.message.p50, 2)} / ${n(floor.message.p99, 2)}**`]);
  rows.push(["**ceiling of throughput** (msg/s)", `**${n(floor.ceiling, 0)}**`]);
  return table(["floor", "measured"], rows);
}

export const costCell = (c: DatabaseCost) => `${n(c.commitsPerMessage, 2)}; ${n(c.rowWritesPerMessage, 2)}; ${n(c.walBytesPerMessage, 0)}`;

/** The brokers' RSS grown over a connect, per connection (the `connections` target is at most 8 KB each). */
export const rssPerConnectionLine = (bytes: number) => `Broker RSS grown per connection: ${n(bytes, 0)} bytes (${n(bytes / 1024, 1)} KiB).`;

interface Column {
  name: string;
  load: LoadResult;
}

/** The floor's value of each figure: relay plus one durable commit, the ceiling, the relay's connect time. */
function floorCell(floor: FloorReport, load: LoadResult, metric: Metric | undefined): string {
  const commit = floor.commitMs ?? { p50: 0, p99: 0 };
  const relay = floor.relay;
  switch (metric) {
    case "send→ack":
      return relay ? `${n(relay.sendToAck.p50 + commit.p50, 2)} / ${n(relay.sendToAck.p99 + commit.p99, 2)}` : "—";
    case "send→push":
      return floor.message ? `${n(floor.message.p50, 2)} / ${n(floor.message.p99, 2)}` : relay ? `${n(relay.sendToPush.p50, 2)} / ${n(relay.sendToPush.p99, 2)}` : "—";
    case "rate":
      return n(floor.ceiling, 0);
    case "connect":
      return n(relay?.connect?.seconds, 2);
    case "flush":
      return floor.rows && load.held ? n(floorFlushSeconds(floor.rows, load.held.messages), 2) : "—";
    default:
      return "";
  }
}

/** One row per figure of the workload: the floor, one column per system, then the ratios. */
export function comparisonTable(floor: FloorReport | undefined, columns: Column[], ratios: Array<{ name: string; ratios: Ratio[] }>): string {
  const first = columns[0]!.load;
  const metrics: Array<[string, (l: LoadResult) => string, Metric?]> = [];
  if (first.kind === "rate" || first.kind === "closed") {
    metrics.push(["sent / acked", (l) => `${n(l.counts.sent, 0)} / ${n(l.counts.acked, 0)}`]);
    metrics.push(["delivered / lost / duplicates", (l) => `${n(l.counts.delivered, 0)} / ${n(l.counts.lost, 0)} / ${n(l.counts.duplicates, 0)}`]);
    metrics.push(["send→ack p50 / p99 (ms)", (l) => `${n(l.sendToAck.p50, 2)} / ${n(l.sendToAck.p99, 2)}`, "send→ack"]);
    metrics.push(["send→push p50 / p99 (ms)", (l) => `${n(l.sendToPush.p50, 2)} / ${n(l.sendToPush.p99, 2)}`, "send→push"]);
    if (first.steps) metrics.push(["highest sustained rate (msg/s)", (l) => n(l.highestSustainedRate, 0), "rate"]);
  } else if (first.kind === "connect") {
    metrics.push(["peers connected", (l) => n(l.connect?.peers, 0)]);
    metrics.push(["connect time (s)", (l) => n(l.connect?.seconds, 2), "connect"]);
  } else if (first.kind === "held") {
    metrics.push(["held messages / lost", (l) => `${n(l.held?.messages, 0)} / ${n(l.counts.lost, 0)}`]);
    metrics.push(["flush time (s)", (l) => n(l.held?.flushSeconds, 2), "flush"]);
  }
  const head = ["", ...(floor ? ["floor"] : []), ...columns.map((c) => c.name), ...ratios.map((r) => r.name)];
  const rows = metrics.map(([label, value, key]) => [
    label,
    ...(floor ? [floorCell(floor, first, key)] : []),
    ...columns.map((c) => value(c.load)),
    ...ratios.map((r) => (key ? r.ratios.filter((q) => q.metric === key).map(x).join(" / ") : "")),
  ]);
  return table(head, rows);
}

export function jetStreamSettingsLines(reports: JetStreamReport[]): string {
  return reports
    .map((r) =>
      [
        `- **${r.settings.server}, ${r.settings.variant}**: ${r.settings.storage}; ${r.settings.mapping}.`,
        `  fsync: ${r.settings.fsync}. Ack: ${r.settings.ack}.` +
          (r.settings.ackAfterFsync ? "" : " **Its ack comes before the fsync; Switchboard's comes after the WAL flush.**"),
        `  CPU during the load: ${Object.entries(r.profile.cpuPercent).map(([k, v]) => `${k} ${n(v, 0)} %`).join(", ")}; ` +
          `nats-server RSS ${n(r.serverRssBytes / 2 ** 20, 0)} MiB; ${r.messagesLeft} messages left in the stream.`,
      ].join("\n"),
    )
    .join("\n");
}

/**
 * The send lanes of a window: how busy each broker's was (seconds writing
 * batches per second), each broker's mean event-loop delay, sends per
 * batch, and Postgres's execution time per message sent, the send
 * statement's and all statements'. With the floor's rows loop beside it,
 * the deliveries pushed per second of Postgres's CPU (the rows loop writes
 * one delivery a message): where the two are alike, what Postgres does per
 * message is not what holds the rate back, but the CPU it is left.
 */
function laneCells(p: ProfileWindow, brokers: number, floorPerCore: number | undefined): string[] {
  const per = p.perSecond;
  const lanes = Array.from({ length: brokers }, (_, i) => laneKeys(`broker-${i + 1}`));
  const busy = lanes.map((k) => n(per[k.seconds], 2)).join(", ");
  const delay = lanes.map((k) => n((per[k.delay] ?? Number.NaN) * 1000, 2)).join(", ");
  const sends = lanes.reduce((sum, k) => sum + (per[k.sends] ?? 0), 0);
  const batches = lanes.reduce((sum, k) => sum + (per[k.batches] ?? 0), 0);
  const perMessage = (key: string) => (sends > 0 && per[key] !== undefined ? (per[key]! * 1000) / sends : undefined);
  const pushes = lanes.reduce((sum, k) => sum + (per[k.pushes] ?? 0), 0);
  const postgresCores = (p.cpuPercent.postgres ?? 0) / 100;
  const perCore = postgresCores > 0 && pushes > 0 ? pushes / postgresCores : undefined;
  return [
    busy,
    delay,
    batches > 0 ? n(sends / batches, 1) : "—",
    `${n(perMessage(STATEMENT_KEYS.send), 3)} / ${n(perMessage(STATEMENT_KEYS.all), 3)}`,
    ...(floorPerCore === undefined ? [] : [perCore === undefined ? "—" : `${n(perCore, 0)} (${n(perCore / floorPerCore, 2)}×)`]),
  ];
}

/**
 * Where the CPU went, what Postgres waited on and how busy the send lanes
 * were, per step of a rising rate (or the whole run); with the floor, what
 * a core of Postgres carried beside what it carries in the rows loop.
 */
export function profileTable(run: SwitchboardRun, floor?: FloorReport): string {
  const rowsLoop = floor?.rows;
  const floorPerCore = rowsLoop && rowsLoop.messagesPerPostgresCoreSecond > 0 ? rowsLoop.messagesPerPostgresCoreSecond : undefined;
  const windows = run.stepProfiles && run.load.steps
    ? run.load.steps.map((s, i) => ({ label: `${n(s.rate, 0)} msg/s`, p: run.stepProfiles![i]!, s }))
    : [{ label: "whole run", p: run.profile, s: undefined }];
  // The machine's total goes last: what it holds beyond the parts was used by other processes.
  const parts = [...new Set(windows.flatMap((w) => Object.keys(w.p.cpuPercent)))].sort((a, b) =>
    a === "machine" ? 1 : b === "machine" ? -1 : a.localeCompare(b),
  );
  const rows = windows.map(({ label, p, s }) => {
    const waits = Object.entries(p.activeBackends)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 4)
      .map(([w, v]) => `${w} ${n(v, 2)}`)
      .join(", ");
    return [
      label,
      s ? `${n(s.sendToPush.p50, 1)} / ${n(s.sendToPush.p99, 1)}` : "",
      ...parts.map((k) => `${n(p.cpuPercent[k], 0)} %`),
      waits,
      ...laneCells(p, run.brokers.length, floorPerCore),
    ];
  });
  const name = (k: string) => (k === "machine" ? "whole machine CPU" : `${k} CPU`);
  return table(
    [
      "load",
      "send→push p50 / p99 (ms)",
      ...parts.map(name),
      "Postgres active backends (avg) by wait",
      "send lane busy (s/s, per instance)",
      "event-loop delay, mean (ms, per instance)",
      "sends per batch",
      "Postgres execution per message: send statement / all (ms)",
      ...(floorPerCore === undefined ? [] : ["deliveries per Postgres core-second (÷ the floor's rows loop)"]),
    ],
    rows,
  );
}
