// An embedded database that already has the schema, for the many tests that
// start a broker but do not test migrations. Migrating a new embedded database
// costs a broker seconds of CPU in WebAssembly; copying one migrated database
// costs milliseconds. The migrated copy is made once per schema (and lockfile,
// which pins PGlite) by `db:migrate`, and kept under .cache/.
import { DataDirLockedError, lockDataDir } from "@switchboard/db/dir-lock";
import { createHash } from "node:crypto";
import { cpSync, existsSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./broker-process.ts";

const MIGRATIONS_DIR = join(REPO_ROOT, "packages", "db", "drizzle");
const MIGRATE_CLI = join(REPO_ROOT, "packages", "db", "src", "cli", "migrate.ts");
const CACHE_DIR = join(import.meta.dir, "..", ".cache");
const PREFIX = "embedded-schema-";

function schemaKey(): string {
  const hash = createHash("sha256");
  const files = readdirSync(MIGRATIONS_DIR, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
  for (const file of [...files, join(REPO_ROOT, "bun.lock")]) hash.update(file).update(readFileSync(file));
  return hash.digest("hex").slice(0, 16);
}

const WAIT_FOR_BUILDER_MS = 180_000;

/**
 * The migrated DATA_DIR to copy from, made on first use. The test workers
 * all start at once: one makes it while the others wait for it, rather than
 * each spending seconds of CPU on the same migration. The lock only saves
 * work; two workers that both make it still both succeed.
 */
function migratedTemplate(): string {
  const name = `${PREFIX}${schemaKey()}`;
  const template = join(CACHE_DIR, name);
  if (existsSync(template)) return template;
  // The data directory's own lock (a pid file, taken over from a dead holder), on a directory of its own.
  const lockDir = join(CACHE_DIR, `${name}.lock`);
  let release: (() => void) | null;
  for (const deadline = Date.now() + WAIT_FOR_BUILDER_MS; (release = tryLock(lockDir)) === null; Bun.sleepSync(100)) {
    if (existsSync(template)) return template;
    if (Date.now() > deadline) throw new Error(`waited ${WAIT_FOR_BUILDER_MS} ms for another process to make ${template}`);
  }
  try {
    return existsSync(template) ? template : buildTemplate(name, template);
  } finally {
    release();
  }
}

/** The lock's release, or null while another live process holds it. */
function tryLock(dir: string): (() => void) | null {
  try {
    return lockDataDir(dir);
  } catch (error) {
    if (error instanceof DataDirLockedError) return null;
    throw error;
  }
}

function buildTemplate(name: string, template: string): string {
  const building = join(CACHE_DIR, `building-${process.pid}-${crypto.randomUUID()}`);
  const run = Bun.spawnSync(["bun", MIGRATE_CLI], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", DATA_DIR: building },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (run.exitCode !== 0) {
    rmSync(building, { recursive: true, force: true });
    throw new Error(`db:migrate into ${building} exited ${run.exitCode}: ${run.stderr.toString()}`);
  }
  try {
    renameSync(building, template);
  } catch (error) {
    // Another worker made it first; theirs is as good.
    rmSync(building, { recursive: true, force: true });
    if (!existsSync(template)) throw error;
  }
  for (const old of readdirSync(CACHE_DIR)) {
    // Older schemas' templates and lock directories; this one's lock is released by the caller.
    if (old.startsWith(PREFIX) && old !== name && old !== `${name}.lock`) rmSync(join(CACHE_DIR, old), { recursive: true, force: true });
  }
  return template;
}

/** Fills an empty DATA_DIR with a copy of the migrated embedded database. */
export function copyMigratedDatabase(dataDir: string): void {
  cpSync(join(migratedTemplate(), "pgdata"), join(dataDir, "pgdata"), { recursive: true });
}
