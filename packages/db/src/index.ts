export { connect, type ConnectOptions } from "./connect.ts";
export type { Database, Executor } from "./database.ts";
export { errorCode, isConnectionLost, neverReachedDatabase } from "./connection-errors.ts";
export { readableDatabaseUrl, UNREADABLE_DATABASE_URL } from "./database-url.ts";
export { DataDirLockedError, lockDataDir } from "./dir-lock.ts";
export { PLANNER_SETTINGS } from "./planner-settings.ts";
export { loadMigrations, migrate, type Migration } from "./migrate.ts";
export * as schema from "./schema.ts";
export { shapedStatement, toQuery, type Slot, type Statement } from "./statement.ts";
