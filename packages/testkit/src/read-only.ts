// A Postgres database that refuses writes as read-only (SQLSTATE 25006), as a
// hot standby or a primary demoted by a failover does: its
// default_transaction_read_only is turned on, which a connection takes as it
// opens, so the database's other sessions (a broker's pool and listener
// among them) are ended and open again.
import postgres from "postgres";

/** Turns the database read-only; the returned function turns it writable again, the same way. */
export async function makeDatabaseReadOnly(databaseUrl: string): Promise<() => Promise<void>> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const set = async (on: boolean) => {
    const [row] = await sql<{ name: string }[]>`SELECT current_database() AS name`;
    const name = sql(row!.name);
    await (on ? sql`ALTER DATABASE ${name} SET default_transaction_read_only = on` : sql`ALTER DATABASE ${name} RESET default_transaction_read_only`);
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
  };
  try {
    await set(true);
  } catch (error) {
    await sql.end();
    throw error;
  }
  return async () => {
    try {
      await set(false);
    } finally {
      await sql.end();
    }
  };
}
