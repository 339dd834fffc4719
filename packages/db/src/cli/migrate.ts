// `bun run db:migrate`: applies pending migrations to DATABASE_URL, or to the
// embedded database in DATA_DIR when it is unset.
import { connect } from "../connect.ts";
import { isPostgresUrl, readableDatabaseUrl, UNREADABLE_DATABASE_URL } from "../database-url.ts";
import { DataDirLockedError, DataDirUnusableError } from "../dir-lock.ts";
import { migrate } from "../migrate.ts";

// Empty counts as unset, as for the broker (compose files often pass "").
const databaseUrl = process.env.DATABASE_URL || undefined;
const dataDir = process.env.DATA_DIR || "./.switchboard";
if (databaseUrl !== undefined && !isPostgresUrl(databaseUrl)) {
  console.error("DATABASE_URL is not a postgres:// or postgresql:// URL");
  process.exit(78);
}
if (databaseUrl !== undefined && !readableDatabaseUrl(databaseUrl)) {
  // The driver's own error would quote the URL, password included.
  console.error(`DATABASE_URL is ${UNREADABLE_DATABASE_URL}`);
  process.exit(78);
}

try {
  const db = await connect({ databaseUrl, dataDir });
  try {
    const applied = await migrate(db, undefined, (holderPid) =>
      console.error(`waiting for the migration lock, held by another process${holderPid === null ? "" : ` (Postgres backend pid ${holderPid})`}`),
    );
    console.log(applied.length ? `applied: ${applied.join(", ")}` : "schema is current");
  } finally {
    await db.close();
  }
} catch (error) {
  // The exit statuses are the broker's for the same causes.
  if (error instanceof DataDirLockedError) {
    console.error(error.message);
    process.exit(75);
  }
  if (error instanceof DataDirUnusableError) {
    console.error(error.message);
    process.exit(78);
  }
  // The driver's messages name the host, port or database, never the password.
  const reason = (error instanceof Error ? error.message : String(error)).replace(/\s+/g, " ");
  const target = databaseUrl === undefined ? `the embedded database in DATA_DIR ${dataDir}` : "the database of DATABASE_URL";
  console.error(`cannot migrate ${target}: ${reason}`);
  process.exit(1);
}
