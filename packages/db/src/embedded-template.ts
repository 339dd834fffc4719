// A fresh PGlite cluster takes seconds to initialise (initdb in WebAssembly).
// `bun install` prepares one empty cluster once, as a tarball; a broker on an
// empty DATA_DIR starts from a copy of it in well under a second.
import { PGlite } from "@electric-sql/pglite";
import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function pgliteVersion(): string {
  // The package does not export its package.json: find it beside its entry.
  let dir = dirname(fileURLToPath(import.meta.resolve("@electric-sql/pglite")));
  while (!existsSync(join(dir, "package.json"))) dir = dirname(dir);
  return (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string }).version;
}

const TEMPLATE_DIR = join(import.meta.dir, "..", ".cache");
export const TEMPLATE_PATH = join(TEMPLATE_DIR, `pglite-${pgliteVersion()}.tar.gz`);

export async function loadTemplate(): Promise<Blob | undefined> {
  return existsSync(TEMPLATE_PATH) ? Bun.file(TEMPLATE_PATH) : undefined;
}

// Present while a start lays down a new cluster: a start that finds it knows
// the last one died mid-way (the files it left, PG_VERSION among them, make a
// cluster PGlite cannot open) and that nothing was stored there yet.
const LAYING_DOWN = "pgdata.incomplete";

/** Opens the cluster in dataDir/pgdata, laying a new one down where there is none or where a start died doing so. */
export async function openCluster(dataDir: string, startParams: string[]): Promise<PGlite> {
  const pgdata = join(dataDir, "pgdata");
  const marker = join(dataDir, LAYING_DOWN);
  if (existsSync(marker)) rmSync(pgdata, { recursive: true, force: true });
  // PGlite writes its files readable and writable by anyone: its directory
  // alone keeps other users out (webhook secrets are stored in the clear),
  // whatever the modes of the DATA_DIR around it, which an operator may have
  // made. An existing one is closed too: older brokers left it open.
  mkdirSync(pgdata, { recursive: true, mode: 0o700 });
  chmodSync(pgdata, 0o700);
  // PGlite's file system does not follow a symbolic link (pgdata moved to
  // another volume and linked back): it is given the directory itself.
  const cluster = realpathSync(pgdata);
  if (existsSync(join(cluster, "PG_VERSION"))) return PGlite.create(cluster, { startParams });
  writeFileSync(marker, "");
  const template = await loadTemplate();
  const client = await PGlite.create(cluster, { startParams, ...(template ? { loadDataDir: template } : {}) });
  unlinkSync(marker);
  return client;
}

export async function prepareTemplate(): Promise<boolean> {
  if (existsSync(TEMPLATE_PATH)) return false;
  mkdirSync(TEMPLATE_DIR, { recursive: true });
  const scratch = join(tmpdir(), `switchboard-template-${process.pid}`);
  const pg = await PGlite.create(scratch);
  try {
    const dump = await pg.dumpDataDir("gzip");
    const partial = `${TEMPLATE_PATH}.${process.pid}`;
    await Bun.write(partial, dump);
    renameSync(partial, TEMPLATE_PATH);
  } finally {
    await pg.close();
    rmSync(scratch, { recursive: true, force: true });
  }
  return true;
}
