// A throwaway Postgres server the test owns: it can stop and start it at will
// (the health test does). Runs as the `postgres` user when we are root, since
// Postgres refuses to run as root.
import { chownSync, existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { scratchDir, tempDir } from "./backend.ts";
import { freePort } from "./ports.ts";

export interface PostgresCluster {
  readonly port: number;
  url(database?: string): string;
  /** What the server has logged so far. */
  log(): string;
  start(): Promise<void>;
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

export function findPgBin(): string | null {
  const fromPath = Bun.which("initdb");
  if (fromPath) return fromPath.replace(/\/initdb$/, "");
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], "bin") : null;
}

async function run(cmd: string[], asPostgres: boolean): Promise<void> {
  const argv = asPostgres ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd;
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited ${code}\n${out}\n${err}`);
}

export interface ClusterOptions {
  /** Tests run with fsync off for speed; benchmarks keep it on, as production does. */
  fsync?: boolean;
  /**
   * Where the files live: on disk (tempDir) or in memory (scratchDir). By
   * default a server with fsync on is one being measured, and on disk.
   */
  onDisk?: boolean;
  maxConnections?: number;
  /** The port to try first (a free one by default); taken, the server starts on another. */
  port?: number;
  /** More server settings (`-c name=value`): values without spaces or shell characters. */
  settings?: Record<string, string>;
}

// freePort() hands out a port nothing listens on *now*; another test's
// server or broker may bind it before this server starts. Such a start is
// retried on another port; any other failure carries the server's log.
const START_ATTEMPTS = 5;
const PORT_TAKEN = "Address already in use";

export async function startPostgresCluster(options: ClusterOptions = {}): Promise<PostgresCluster> {
  const bin = findPgBin();
  if (!bin) throw new Error("no Postgres server binaries (initdb) on this machine");
  const asPostgres = userInfo().uid === 0;
  const dir = (options.onDisk ?? options.fsync) ? tempDir("pg") : scratchDir("pg");
  const data = join(dir, "data");
  const logFile = join(dir, "server.log");
  const logSince = (offset: number) => (existsSync(logFile) ? readFileSync(logFile, "utf8").slice(offset) : "");
  const pgCtlStart = (port: number) =>
    run(
      [
        join(bin, "pg_ctl"),
        "-D",
        data,
        "-l",
        logFile,
        "-w",
        "-o",
        // lc_messages=C: the retry below reads the log's words.
        `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=${options.fsync ? "on" : "off"} ` +
          `-c max_connections=${options.maxConnections ?? 300} -c lc_messages=C` +
          Object.entries(options.settings ?? {})
            .map(([name, value]) => ` -c ${name}=${value}`)
            .join(""),
        "start",
      ],
      asPostgres,
    );
  /** Starts the server on `port`; a failure's error carries what the server logged. */
  const start = async (port: number) => {
    const offset = logSince(0).length;
    try {
      await pgCtlStart(port);
    } catch (error) {
      throw new Error(`${(error as Error).message}\nserver log:\n${logSince(offset)}`);
    }
  };

  const stop = () => run([join(bin, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"], asPostgres);

  let port = options.port ?? (await freePort());
  try {
    if (asPostgres) {
      const pg = Bun.spawnSync(["id", "-u", "postgres"]).stdout.toString().trim();
      const gid = Bun.spawnSync(["id", "-g", "postgres"]).stdout.toString().trim();
      chownSync(dir, Number(pg), Number(gid));
    }
    await run([join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"], asPostgres);
    for (let attempt = 1; ; attempt++) {
      try {
        await start(port);
        break;
      } catch (error) {
        if (attempt === START_ATTEMPTS || !(error as Error).message.includes(PORT_TAKEN)) throw error;
        port = await freePort();
      }
    }
  } catch (error) {
    // A start that timed out may still have left a server running.
    await stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  const cluster: PostgresCluster = {
    port,
    url: (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${database}`,
    log: () => logSince(0),
    // A restart keeps the port: the brokers' DATABASE_URL names it.
    start: () => start(port),
    stop,
    async destroy() {
      await cluster.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}

/**
 * Whether the tests that start a Postgres server of their own run here. They
 * need the server binaries, which CI must have. They use neither the run's
 * DATABASE_URL nor its embedded default, so CI, which runs the suite once on
 * each, runs them in its DATABASE_URL pass only.
 */
export function ownPostgresTestsRun(): boolean {
  const haveServer = findPgBin() !== null;
  if (!process.env.CI) return haveServer;
  if (!haveServer) throw new Error("CI must provide Postgres server binaries (initdb)");
  return Boolean(process.env.DATABASE_URL);
}
