// `bun run db:migrate`: applies pending migrations to DATABASE_URL, or to the
// embedded database in DATA_DIR when it is unset.
import { connect } from "../connect.ts";
import { readableDatabaseUrl, UNREADABLE_DATABASE_URL } from "../database-url.ts";
import { migrate } from "../migrate.ts";

// Empty counts as unset, as for the broker (compose files often pass "").
const databaseUrl = process.env.DATABASE_URL || undefined;
if (databaseUrl !== undefined && !readableDatabaseUrl(databaseUrl)) {
  // The driver's own error would quote the URL, password included.
  console.error(`DATABASE_URL is ${UNREADABLE_DATABASE_URL}`);
  process.exit(78);
}
const db = await connect({ databaseUrl, dataDir: process.env.DATA_DIR || "./.switchboard" });
try {
  const applied = await migrate(db);
  console.log(applied.length ? `applied: ${applied.join(", ")}` : "schema is current");
} finally {
  await db.close();
}
