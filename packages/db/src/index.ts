export { BROKER_SETTINGS, connect, PLANNER_SETTINGS, type ConnectOptions, type Database, type Executor } from "./connect.ts";
export { applicationNameOf } from "./application-name.ts";
export { errorCode, isConnectionLost, isDiskFull, isOutOfResources, isReadOnly, neverReachedDatabase } from "./connection-errors.ts";
export { isPostgresUrl, readableDatabaseUrl, UNREADABLE_DATABASE_URL, withoutSettings } from "./database-url.ts";
export { DataDirLockedError, DataDirUnusableError, lockDataDir } from "./dir-lock.ts";
export { loadMigrations, migrate, MIGRATION_LOCK_KEY, type Migration } from "./migrate.ts";
export * as schema from "./schema.ts";
export { shapedStatement, toQuery, type Slot, type Statement } from "./statement.ts";
