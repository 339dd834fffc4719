// A migrated embedded database in a scratch directory for one test file,
// for tests that drive a service directly against a real database.
import { afterAll, beforeAll } from "bun:test";
import { connect, migrate, type Database } from "@switchboard/db";
import { scratchDir } from "@switchboard/testkit";
import { rmSync } from "node:fs";

export function useScratchDatabase(name: string): { readonly db: Database } {
  let dir: string | undefined;
  let db: Database | undefined;
  beforeAll(async () => {
    dir = scratchDir(name);
    db = await connect({ dataDir: dir });
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return {
    get db(): Database {
      if (!db) throw new Error("the scratch database is opened before the file's tests");
      return db;
    },
  };
}
