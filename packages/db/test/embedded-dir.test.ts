// The embedded database's directory as operators arrange it: pgdata moved to
// another volume and linked back opens with its rows (PGlite's file system
// does not follow the link itself), a link inside pgdata is refused by name
// (PGlite failed to open it without saying why), and a DATA_DIR that cannot
// hold it is refused as such (DataDirUnusableError, exit 78 at a start), not
// failed with an error from cleaning up after the check.
import { afterAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, DataDirUnusableError } from "../src/index.ts";

const root = mkdtempSync(join(tmpdir(), "switchboard-embedded-dir-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("the embedded database's directory", () => {
  test("a pgdata moved elsewhere and linked back opens, with its rows", async () => {
    const dataDir = join(root, "linked");
    const first = await connect({ dataDir });
    try {
      await first.rows(sql`CREATE TABLE kept (v int)`);
      await first.rows(sql`INSERT INTO kept VALUES (7)`);
    } finally {
      await first.close();
    }
    const volume = join(root, "volume");
    mkdirSync(volume);
    renameSync(join(dataDir, "pgdata"), join(volume, "pgdata"));
    symlinkSync(join(volume, "pgdata"), join(dataDir, "pgdata"));
    const again = await connect({ dataDir });
    try {
      expect(await again.rows(sql`SELECT v FROM kept`)).toEqual([{ v: 7 }]);
    } finally {
      await again.close();
    }
  });

  test("a link inside pgdata is refused by name, and pgdata opens with its rows once the link is undone", async () => {
    const dataDir = join(root, "inner-link");
    const first = await connect({ dataDir });
    try {
      await first.rows(sql`CREATE TABLE kept (v int)`);
      await first.rows(sql`INSERT INTO kept VALUES (8)`);
    } finally {
      await first.close();
    }
    const wal = join(dataDir, "pgdata", "pg_wal");
    const moved = join(root, "wal-volume");
    renameSync(wal, moved);
    symlinkSync(moved, wal);
    const opened = connect({ dataDir });
    await expect(opened).rejects.toBeInstanceOf(DataDirUnusableError);
    await expect(opened).rejects.toThrow(`${wal} is a symbolic link, which it cannot follow inside pgdata`);
    unlinkSync(wal);
    renameSync(moved, wal);
    const again = await connect({ dataDir });
    try {
      expect(await again.rows(sql`SELECT v FROM kept`)).toEqual([{ v: 8 }]);
    } finally {
      await again.close();
    }
  });

  test("a pgdata that is a file is refused as a DATA_DIR that cannot hold the database", async () => {
    const dataDir = join(root, "file");
    mkdirSync(dataDir);
    writeFileSync(join(dataDir, "pgdata"), "not a directory");
    const opened = connect({ dataDir });
    await expect(opened).rejects.toBeInstanceOf(DataDirUnusableError);
    await expect(opened).rejects.toThrow(`DATA_DIR ${dataDir} cannot hold the embedded database`);
  });
});
