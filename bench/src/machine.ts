// Where and on what a run happened: the machine, the commit, the database.
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import type { RunContext } from "./report.ts";
import type { Size } from "./scenarios.ts";

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  bun: string;
}

export function machine(): Machine {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: Bun.spawnSync(["uname", "-sr"]).stdout.toString().trim(),
    bun: Bun.version,
  };
}

/** The commit the run measured; "+changes" when the working tree differs from it. */
export function commit(): string {
  const cwd = join(import.meta.dir, "..", "..");
  const head = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd }).stdout.toString().trim();
  if (!head) return "unknown";
  const dirty = Bun.spawnSync(["git", "status", "--porcelain", "--untracked-files=no"], { cwd }).stdout.toString().trim();
  return dirty ? `${head}+changes` : head;
}

export interface DatabaseCounters {
  at: number;
  walBytes: number;
  commits: number;
  rowsInserted: number;
  rowsUpdated: number;
  rowsDeleted: number;
}

export interface DatabaseCost {
  /** Per unit of the run: an acked message, or a hello where the run only connects. */
  commitsPerMessage: number;
  walBytesPerMessage: number;
  rowWritesPerMessage: number;
}

/** Cumulative counters of one database (statistics reach them within about a second of each commit). */
export async function databaseCounters(databaseUrl: string): Promise<DatabaseCounters> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<Array<Omit<DatabaseCounters, "at">>>`
      SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS "walBytes",
             xact_commit::float8 AS commits, tup_inserted::float8 AS "rowsInserted",
             tup_updated::float8 AS "rowsUpdated", tup_deleted::float8 AS "rowsDeleted"
      FROM pg_stat_database WHERE datname = current_database()`;
    return { at: Date.now(), ...row! };
  } finally {
    await sql.end();
  }
}

export function databaseCost(before: DatabaseCounters, after: DatabaseCounters, messages: number): DatabaseCost {
  const per = (v: number) => (messages > 0 ? Math.round((v / messages) * 100) / 100 : 0);
  return {
    commitsPerMessage: per(after.commits - before.commits),
    walBytesPerMessage: per(after.walBytes - before.walBytes),
    rowWritesPerMessage: per(
      after.rowsInserted - before.rowsInserted + after.rowsUpdated - before.rowsUpdated + after.rowsDeleted - before.rowsDeleted,
    ),
  };
}

export async function postgresVersion(serverUrl: string): Promise<string> {
  const sql = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<Array<{ v: string }>>`SELECT current_setting('server_version') AS v`;
    return row!.v;
  } finally {
    await sql.end();
  }
}

/** The command that runs it again: `args` as given to `bun run bench`. */
export const benchCommand = (args: string, size: Size) => `bun run bench ${args}${size === "smoke" ? " --smoke" : ""}`;

/** A run's context: the command that runs it again, the commit, the machine and the database. */
export function runContext(args: string, size: Size, database: string): RunContext {
  return { command: benchCommand(args, size), size, commit: commit(), machine: machine(), database };
}
