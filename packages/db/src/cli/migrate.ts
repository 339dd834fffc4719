// `bun run db:migrate`: applies pending migrations to DATABASE_URL, or to the
// embedded database in DATA_DIR when it is unset.
import { connect } from "../connect.ts";
import { migrate } from "../migrate.ts";

// Empty counts as unset, as for the broker (compose files often pass "").
const db = await connect({ databaseUrl: process.env.DATABASE_URL || undefined, dataDir: process.env.DATA_DIR || "./.switchboard" });
try {
  const applied = await migrate(db);
  console.log(applied.length ? `applied: ${applied.join(", ")}` : "schema is current");
} finally {
  await db.close();
}
