// The database the broker runs on, reached and migrated before any service
// starts. A database that is away or still starting is waited for; what can
// never succeed by waiting (missing migration files, a locked embedded
// directory, a port in use) stops the start.
import {
  applicationNameOf,
  BROKER_SETTINGS,
  connect,
  isConnectionLost,
  isOutOfResources,
  isReadOnly,
  loadMigrations,
  migrate,
  withoutSettings,
  type Database,
} from "@switchboard/db";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import { pingDatabase } from "./store/health.ts";

/** How long a start waits before its next try: 1 s, 2 s, … at most 5 s. */
const retryDelayMs = (attempt: number): number => Math.min(1000 * attempt, 5000);

/**
 * `onConnected` runs once the database is this process's (it opens the port);
 * a throw from it is final. `reached` says after each attempt whether the
 * database answered. Every connection is named for `instanceId`.
 */
export async function connectAndMigrate(
  config: Config,
  instanceId: string,
  log: Logger,
  onConnected: () => void,
  reached: (up: boolean) => void,
): Promise<Database> {
  // Read first: missing migration files (an incomplete image) stop the start
  // instead of being retried below as if the database were away.
  const migrations = loadMigrations();
  if (config.DATABASE_URL !== undefined) {
    // Names only: a value in the URL could be anything, the password's neighbour.
    const { removed } = withoutSettings(config.DATABASE_URL, BROKER_SETTINGS);
    if (removed.length > 0) log.warn({ settings: removed }, "db url settings replaced");
  }
  // The database may still be starting (compose, a rebooted host): wait for it
  // instead of exiting. A locked embedded directory is final, though.
  // The port opening (onConnected) is final too: a port in use is no database outage.
  // Once a ping failed, the one that answers says so, as the health ping does
  // later: each `db ping failed` is followed by a `db healthy`.
  let pingFailed = false;
  for (let attempt = 1; ; attempt++) {
    const db = await connect({
      databaseUrl: config.DATABASE_URL,
      dataDir: config.DATA_DIR,
      poolSize: config.DB_POOL_SIZE,
      applicationName: applicationNameOf(instanceId),
    });
    try {
      onConnected();
    } catch (error) {
      await db.close().catch(() => {});
      throw error;
    }
    let answered = false;
    try {
      await pingDatabase(db);
      answered = true;
      if (pingFailed) log.info("db healthy");
      pingFailed = false;
      reached(true);
      const applied = await migrate(db, migrations, (holderPid) => log.info({ holderPid }, "db migrations wait for the migration lock"));
      if (applied.length > 0) log.info({ applied }, "migrations applied");
      db.closeSilentConnectionsAfter(config.DB_ANSWER_TIMEOUT_SECONDS);
      return db;
    } catch (error) {
      if (config.DATABASE_URL === undefined) throw error;
      await db.close().catch(() => {});
      // A database away, starting, refusing the login or not created yet is
      // one thing; a migration statement it refuses (a conflicting object,
      // missing rights) another, retried too (it may be mended meanwhile)
      // but not under the outage's name.
      if (!answered) reached(false);
      const refused = answered && !isConnectionLost(error);
      if (!refused) pingFailed = true;
      log.error({ err: error, attempt }, refused ? "db migration failed" : "db ping failed");
      await Bun.sleep(retryDelayMs(attempt));
    }
  }
}

/**
 * A step of the start after the migrations (the instance's registration,
 * the listening connection), tried again as connectAndMigrate tries while
 * the database cannot serve it: away, without a connection left for it
 * (max_connections, a role's limit), which an instance added to a busy
 * server meets, or read-only (a standby not promoted yet). Anything else
 * stops the start.
 */
export async function whenTheDatabaseServes<T>(step: string, log: Logger, run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      const done = await run();
      if (attempt > 1) log.info({ step }, "db healthy");
      return done;
    } catch (error) {
      if (!isConnectionLost(error) && !isOutOfResources(error) && !isReadOnly(error)) throw error;
      log.error({ err: error, attempt, step }, "db ping failed");
      await Bun.sleep(retryDelayMs(attempt));
    }
  }
}
