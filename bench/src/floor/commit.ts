// The floor's commit: one single-row INSERT after another from Bun through
// postgres.js, each its own transaction, waiting for the WAL flush as the
// broker's sends do (fsync on, synchronous_commit on).
import postgres from "postgres";
import { summarize, type Summary } from "../stats.ts";

export async function measureCommits(databaseUrl: string, count: number): Promise<Summary> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {}, connection: { synchronous_commit: "on" } });
  try {
    await sql`CREATE TABLE IF NOT EXISTS floor_commits (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`;
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const start = performance.now();
      await sql`INSERT INTO floor_commits DEFAULT VALUES`;
      samples.push(performance.now() - start);
    }
    const [row] = await sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM floor_commits`;
    if (row?.n !== count) throw new Error(`floor commits: ${row?.n} rows for ${count} inserts`);
    return summarize(samples);
  } finally {
    await sql.end();
  }
}
