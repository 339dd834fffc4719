// What a test runs against: a fresh database on the server named by
// DATABASE_URL when it is set, else a fresh embedded DATA_DIR.
import { accessSync, constants, mkdtempSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { copyMigratedDatabase } from "./embedded-schema.ts";

export interface TestBackend {
  readonly kind: "postgres" | "embedded";
  /** Environment for a broker on this backend. */
  readonly env: Record<string, string>;
  readonly databaseUrl?: string;
  readonly dataDir?: string;
  dispose(): Promise<void>;
}

export const backendKind: "postgres" | "embedded" = process.env.DATABASE_URL ? "postgres" : "embedded";

let open = 0;

/** Backends made in this process and not yet disposed of: what a failed start must not leave. */
export function openBackends(): number {
  return open;
}

function counted(backend: TestBackend): TestBackend {
  open++;
  let disposed = false;
  return {
    ...backend,
    async dispose() {
      if (!disposed) open--;
      disposed = true;
      await backend.dispose();
    },
  };
}

/** A new directory on disk, where the machine keeps its temporary files. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `switchboard-${prefix}-`));
}

const MEMORY_FS = "/dev/shm";
// The test workers' databases at about 40 MB each, with room to grow; containers
// often give /dev/shm only 64 MB, and there the tests stay on disk.
const MEMORY_FS_NEEDED = 2 * 1024 ** 3;

function memoryFsUsable(): boolean {
  try {
    accessSync(MEMORY_FS, constants.W_OK);
    const { bavail, bsize } = statfsSync(MEMORY_FS);
    return bavail * bsize >= MEMORY_FS_NEEDED;
  } catch {
    return false;
  }
}

const scratchRoot = memoryFsUsable() ? MEMORY_FS : tmpdir();

/**
 * A new directory for a test's database or secrets: in memory where the
 * machine has room in /dev/shm, else on disk. Copying and writing a
 * database's thousand files costs several times the CPU on a journaling
 * disk, and the tests kill processes, not machines: a killed process's
 * writes survive in memory as on disk. Full benchmark runs keep what they
 * measure on disk (tempDir).
 */
export function scratchDir(prefix: string): string {
  return mkdtempSync(join(scratchRoot, `switchboard-${prefix}-`));
}

export interface BackendOptions {
  /**
   * Start the embedded database with the schema already applied (a copy), as
   * tests that do not test migrations may. A Postgres database starts empty
   * either way: a broker migrates it in milliseconds.
   */
  withSchema?: boolean;
  /** Keep DATA_DIR on disk, as a user's is (full benchmark runs), rather than in scratchDir. */
  onDisk?: boolean;
}

export function embeddedBackend(options: BackendOptions = {}): TestBackend {
  const dataDir = options.onDisk ? tempDir("data") : scratchDir("data");
  if (options.withSchema) copyMigratedDatabase(dataDir);
  return counted({
    kind: "embedded",
    env: { DATA_DIR: dataDir },
    dataDir,
    async dispose() {
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

/** A new, empty database on the server at serverUrl. */
export async function postgresBackend(serverUrl: string): Promise<TestBackend> {
  const name = `sb_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  // Generated secrets (the admin token) go to DATA_DIR even with a server.
  const dataDir = scratchDir("secrets");
  return counted({
    kind: "postgres",
    env: { DATABASE_URL: databaseUrl, DATA_DIR: dataDir },
    databaseUrl,
    async dispose() {
      rmSync(dataDir, { recursive: true, force: true });
      const sql = postgres(serverUrl, { max: 1, onnotice: () => {} });
      try {
        await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await sql.end();
      }
    },
  });
}

export async function freshBackend(options: BackendOptions = {}): Promise<TestBackend> {
  const serverUrl = process.env.DATABASE_URL;
  return serverUrl ? postgresBackend(serverUrl) : embeddedBackend(options);
}
