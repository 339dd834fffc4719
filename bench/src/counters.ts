// Counters a profile samples beside CPU: how busy each broker's send lane is
// and how long its event loop is delayed (its /metrics), and how long
// Postgres executed the run's statements (pg_stat_statements, where the
// server preloads it). The profile reports each as its increase per second
// over a window.
import { findPgBin, parsePrometheusText } from "@switchboard/testkit";
import { existsSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import postgres from "postgres";

export interface CounterSource {
  read(): Promise<Record<string, number>>;
  close?(): Promise<void>;
}

/** Settings for a benchmark's Postgres: pg_stat_statements preloaded where the server has it. */
export function statementStatsSettings(): Record<string, string> {
  const bin = findPgBin();
  // initdb may be a link on the PATH to the server's own bin directory, whose sibling lib holds the modules.
  const lib = bin ? join(dirname(realpathSync(join(bin, "initdb"))), "..", "lib") : null;
  return lib && existsSync(join(lib, "pg_stat_statements.so")) ? { shared_preload_libraries: "pg_stat_statements" } : {};
}

/** Keys of a broker's counters, by the broker's name in the profile. */
export const laneKeys = (broker: string) => ({
  seconds: `${broker} send batch seconds`,
  sends: `${broker} sends in batches`,
  batches: `${broker} send batches`,
  pushes: `${broker} first pushes`,
  delay: `${broker} event-loop delay seconds`,
});

/**
 * A broker's send lane (broker_send_batch_*: seconds spent writing batches,
 * sends written, batches), its deliveries pushed for the first time (the
 * count of broker_push_latency_seconds) and its event loop's mean delay.
 * That mean is of the delays since the scrape before (each scrape starts it
 * again), so it is summed here weighted by the time between reads: its
 * increase per second over a window is the window's mean delay.
 */
export function sendLaneCounters(broker: string, baseUrl: string): CounterSource {
  const keys = laneKeys(broker);
  let delaySeconds = 0;
  let lastRead: number | null = null;
  return {
    async read() {
      const families = parsePrometheusText(await (await fetch(`${baseUrl}/metrics`)).text());
      const now = performance.now();
      const sample = (family: string, name = family) => families.get(family)?.samples.find((s) => s.name === name)?.value;
      const mean = sample("nodejs_eventloop_lag_mean_seconds");
      if (lastRead !== null && mean !== undefined && Number.isFinite(mean)) delaySeconds += mean * ((now - lastRead) / 1000);
      lastRead = now;
      const values = {
        [keys.seconds]: sample("broker_send_batch_seconds", "broker_send_batch_seconds_sum"),
        [keys.sends]: sample("broker_send_batch_size", "broker_send_batch_size_sum"),
        [keys.batches]: sample("broker_send_batch_size", "broker_send_batch_size_count"),
        [keys.pushes]: sample("broker_push_latency_seconds", "broker_push_latency_seconds_count"),
        [keys.delay]: delaySeconds,
      };
      return Object.fromEntries(Object.entries(values).filter((e): e is [string, number] => e[1] !== undefined));
    },
  };
}

export const STATEMENT_KEYS = { all: "postgres execution seconds", send: "send statement execution seconds" } as const;

/**
 * Postgres's execution time of the statements run in this database, all
 * of them and the send statement's alone (its input names
 * "replyWaitSeconds"); the samplers' own reads of the statistics views are
 * left out. Null when the server does not have pg_stat_statements loaded.
 */
export async function statementCounters(databaseUrl: string): Promise<CounterSource | null> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`;
    await sql`SELECT 1 FROM pg_stat_statements LIMIT 1`;
  } catch {
    await sql.end();
    return null;
  }
  return {
    async read() {
      const [row] = await sql<Array<{ all: number; send: number }>>`
        SELECT coalesce(sum(total_exec_time), 0)::float8 / 1000 AS "all",
               coalesce(sum(total_exec_time) FILTER (WHERE query LIKE '%"replyWaitSeconds" int%'), 0)::float8 / 1000 AS send
        FROM pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%pg_stat_%'`;
      return { [STATEMENT_KEYS.all]: row!.all, [STATEMENT_KEYS.send]: row!.send };
    },
    close: () => sql.end(),
  };
}
