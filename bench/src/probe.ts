// What the processes of a run cost, read from /proc — resident memory and CPU
// time — and a profile sampled through the run: the CPU of each part (broker,
// Postgres, load generator, …) and what Postgres's active backends wait on.
import { readdirSync, readFileSync } from "node:fs";
import postgres from "postgres";
import { now } from "./clock.ts";
import type { CounterSource } from "./counters.ts";

const TICKS_PER_SECOND = 100;

export interface ProcessSample {
  rssBytes: number;
  cpuSeconds: number;
  at: number;
}

interface Stat {
  ppid: number;
  /** utime + stime, and the same of its reaped children, in seconds. */
  own: number;
  reaped: number;
}

function readStat(pid: number): Stat | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command in parentheses: state is field 3, ppid 4, utime 14, stime 15, cutime 16, cstime 17.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return {
      ppid: Number(f[1]),
      own: (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND,
      reaped: (Number(f[13]) + Number(f[14])) / TICKS_PER_SECOND,
    };
  } catch {
    return null;
  }
}

export function sampleProcess(pid: number): ProcessSample {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(status.match(/^VmRSS:\s+(\d+)/m)?.[1] ?? 0);
  return { rssBytes: rssKb * 1024, cpuSeconds: readStat(pid)?.own ?? 0, at: performance.now() };
}

export function cpuPercent(a: ProcessSample, b: ProcessSample): number {
  const wall = (b.at - a.at) / 1000;
  return wall > 0 ? Math.round(((b.cpuSeconds - a.cpuSeconds) / wall) * 1000) / 10 : 0;
}

/** CPU seconds of a process and all its descendants, living or reaped. */
export function treeCpuSeconds(root: number): number {
  const stats = new Map<number, Stat>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const s = readStat(pid);
    if (s) stats.set(pid, s);
  }
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  let total = stats.get(root)?.reaped ?? 0;
  const walk = (pid: number) => {
    total += stats.get(pid)?.own ?? 0;
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return total;
}

/** CPU seconds the whole machine has been busy (every process, every core): the rest shows what else ran. */
export function machineBusySeconds(): number {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal …: busy is all but idle and iowait.
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
}

/** The postmaster of the server at databaseUrl: the parent of a backend (the server runs on this machine). */
export async function postmasterPid(databaseUrl: string): Promise<number> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<Array<{ pid: number }>>`SELECT pg_backend_pid() AS pid`;
    const stat = readStat(row!.pid);
    if (!stat) throw new Error("the Postgres server is not on this machine");
    return stat.ppid;
  } finally {
    await sql.end();
  }
}

interface Sample {
  at: number;
  /** Cumulative CPU seconds per part. */
  cpu: Record<string, number>;
  /** Active backends (other than the sampler) per wait event; "CPU" when not waiting. */
  waits: Record<string, number>;
  /** Cumulative values of the tracked counters (trackCounters). */
  counters: Record<string, number>;
  /** When the counters' reads answered: a busy broker answers its /metrics late, with values of then. */
  countersAt: number;
}

export interface ProfileWindow {
  /** CPU of each part, in percent of one core. */
  cpuPercent: Record<string, number>;
  /** Average active Postgres backends by wait event over the window. */
  activeBackends: Record<string, number>;
  /** Each tracked counter's increase per second over the window. */
  perSecond: Record<string, number>;
}

export class Profiler {
  /** "machine" is every process on the machine, the run's own parts included. */
  private readonly parts = new Map<string, () => number>([["machine", machineBusySeconds]]);
  private readonly samples: Sample[] = [];
  private timer: Timer | null = null;
  private sampling: Promise<void> | null = null;
  private readonly sql: postgres.Sql | null;
  private readonly counterSources: CounterSource[] = [];

  constructor(databaseUrl: string | null, private readonly intervalMs = 250) {
    this.sql = databaseUrl ? postgres(databaseUrl, { max: 1, onnotice: () => {} }) : null;
  }

  /**
   * Tracks a part: a process alone, or with its descendants (Postgres). A
   * process gone keeps the CPU it had used when last read: read as none, the
   * load generator, which exits before a run's last sample, came out at -1 %.
   */
  track(name: string, pid: number, withChildren = false): void {
    let last = 0;
    this.parts.set(name, () => {
      const stat = readStat(pid);
      if (stat !== null) last = withChildren ? treeCpuSeconds(pid) : stat.own;
      return last;
    });
  }

  /** Samples a source of cumulative counters with the rest; a read that fails leaves that sample without them. */
  trackCounters(source: CounterSource): void {
    this.counterSources.push(source);
  }

  start(): void {
    this.timer ??= setInterval(() => {
      this.sampling ??= this.sample().finally(() => (this.sampling = null));
    }, this.intervalMs);
  }

  private async sample(): Promise<void> {
    const at = now();
    const cpu: Record<string, number> = {};
    for (const [name, read] of this.parts) cpu[name] = read();
    const waits: Record<string, number> = {};
    if (this.sql) {
      const rows = await this.sql<Array<{ wait: string; n: number }>>`
        SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS wait, count(*)::int AS n
        FROM pg_stat_activity
        WHERE state = 'active' AND pid <> pg_backend_pid() AND backend_type = 'client backend'
        GROUP BY 1`.catch(() => []);
      for (const r of rows) waits[r.wait] = r.n;
    }
    const counters: Record<string, number> = {};
    const reads = await Promise.all(this.counterSources.map((c) => c.read().catch(() => ({}))));
    for (const values of reads) Object.assign(counters, values);
    this.samples.push({ at, cpu, waits, counters, countersAt: now() });
  }

  /** Samples once more now, after any sample under way: a window may then end with it. */
  async sampleNow(): Promise<void> {
    while (this.sampling) await this.sampling;
    const sampling = this.sample().finally(() => (this.sampling = null));
    this.sampling = sampling;
    await sampling;
  }

  /** The profile between two times on the bench's clock (clock.ts). */
  window(from: number, to: number): ProfileWindow {
    const inside = this.samples.filter((s) => s.at >= from && s.at <= to);
    const first = inside[0];
    const last = inside[inside.length - 1];
    const cpuPercent: Record<string, number> = {};
    const perSecond: Record<string, number> = {};
    if (first && last && last.at > first.at) {
      const seconds = (last.at - first.at) / 1000;
      for (const name of Object.keys(last.cpu)) {
        const used = (last.cpu[name] ?? 0) - (first.cpu[name] ?? 0);
        cpuPercent[name] = Math.round((used / seconds) * 1000) / 10;
      }
      // From the last reading of each counter known before the window (a
      // broker stalled through the window's start answers its first samples
      // only after the work they were to precede), or else the first inside,
      // to the last inside, over the time between their answers.
      const keys = new Set(inside.flatMap((s) => Object.keys(s.counters)));
      for (const key of keys) {
        const read = inside.filter((s) => key in s.counters);
        const before = this.samples.filter((s) => key in s.counters && s.countersAt <= from).at(-1);
        const [a, b] = [before ?? read[0]!, read[read.length - 1]!];
        if (b.countersAt > a.countersAt) perSecond[key] = (b.counters[key]! - a.counters[key]!) / ((b.countersAt - a.countersAt) / 1000);
      }
    }
    const activeBackends: Record<string, number> = {};
    for (const s of inside) for (const [w, n] of Object.entries(s.waits)) activeBackends[w] = (activeBackends[w] ?? 0) + n;
    for (const w of Object.keys(activeBackends)) activeBackends[w] = Math.round((activeBackends[w]! / inside.length) * 100) / 100;
    return { cpuPercent, activeBackends, perSecond };
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sampling;
    await this.sql?.end();
    await Promise.all(this.counterSources.splice(0).map((c) => c.close?.()));
  }
}
