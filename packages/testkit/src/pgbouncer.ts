// A real PgBouncer (Debian's package) in front of one database of a test's
// Postgres server, in the pool mode a test asks for. Runs as the `postgres`
// user when we are root: PgBouncer refuses to run as root.
import { chownSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { userInfo } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { scratchDir } from "./backend.ts";
import { freePort } from "./ports.ts";

export function findPgBouncer(): string | null {
  return Bun.which("pgbouncer") ?? (existsSync("/usr/sbin/pgbouncer") ? "/usr/sbin/pgbouncer" : null);
}

export interface PgBouncerOptions {
  /** The database it pools, as a client would reach it directly. */
  databaseUrl: string;
  poolMode: "session" | "transaction";
  /** Its `ignore_startup_parameters` line's value. */
  ignoreStartupParameters: string;
}

export interface PgBouncer {
  /** `databaseUrl` with PgBouncer's host and port in place of the server's. */
  readonly url: string;
  /** What it has logged so far. */
  log(): string;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

export async function startPgBouncer(options: PgBouncerOptions): Promise<PgBouncer> {
  const binary = findPgBouncer();
  if (!binary) throw new Error("no pgbouncer on this machine");
  const server = new URL(options.databaseUrl);
  const database = decodeURIComponent(server.pathname.slice(1));
  const user = decodeURIComponent(server.username || "postgres");
  const dir = scratchDir("pgbouncer");
  const port = await freePort();
  const logFile = join(dir, "pgbouncer.log");
  // Clients are trusted; the file's password is what PgBouncer logs in to the server with.
  writeFileSync(join(dir, "users.txt"), `"${user}" "${decodeURIComponent(server.password)}"\n`);
  writeFileSync(
    join(dir, "pgbouncer.ini"),
    [
      "[databases]",
      `${database} = host=${server.hostname} port=${server.port || 5432} dbname=${database}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${join(dir, "users.txt")}`,
      `pool_mode = ${options.poolMode}`,
      `ignore_startup_parameters = ${options.ignoreStartupParameters}`,
      `logfile = ${logFile}`,
      "",
    ].join("\n"),
  );
  const asPostgres = userInfo().uid === 0;
  if (asPostgres) {
    const uid = Number(Bun.spawnSync(["id", "-u", "postgres"]).stdout.toString().trim());
    const gid = Number(Bun.spawnSync(["id", "-g", "postgres"]).stdout.toString().trim());
    for (const path of [dir, join(dir, "users.txt"), join(dir, "pgbouncer.ini")]) chownSync(path, uid, gid);
  }
  const command = [binary, join(dir, "pgbouncer.ini")];
  const proc: Subprocess = Bun.spawn(asPostgres ? ["runuser", "-u", "postgres", "--", ...command] : command, {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  // Kept as the directory goes, for a failure's message.
  let logged = "";
  const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : logged);
  const stop = async () => {
    proc.kill("SIGTERM");
    await proc.exited;
    logged = log();
    rmSync(dir, { recursive: true, force: true });
  };
  const until = Date.now() + START_TIMEOUT_MS;
  while (!(await accepts(port))) {
    if (proc.exitCode !== null || Date.now() > until) {
      const stderr = await new Response(proc.stderr as ReadableStream<Uint8Array>).text().catch(() => "");
      await stop();
      throw new Error(`pgbouncer did not start on port ${port}:\n${stderr}\n${logged}`);
    }
    await Bun.sleep(50);
  }
  const url = new URL(options.databaseUrl);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return {
    url: url.toString(),
    log,
    stop,
  };
}
