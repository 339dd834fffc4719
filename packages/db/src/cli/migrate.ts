// `bun run db:migrate`: applies pending migrations to DATABASE_URL, or to the
// embedded database in DATA_DIR when it is unset.
import { connect } from "../connect.ts";
import { migrate } from "../migrate.ts";

const db = await connect({ databaseUrl: process.env.DATABASE_URL, dataDir: process.env.DATA_DIR ?? "./.switchboard" });
try {
  const applied = await migrate(db);
  console.log(applied.length ? `applied: ${applied.join(", ")}` : "schema is current");
} finally {
  await db.close();
}
