// What the broker does with hostile or broken surroundings at start and at
// a crash: secrets never echoed, the admin token file refused when others can
// read it or when it is a link, Postgres error fields that quote data never
// logged, an unexpected exception ends the process (the supervisor restarts it).
import { describe, expect, test } from "bun:test";
import { brokerEnv, embeddedBackend, freePort, freshBackend, readLog, REPO_ROOT, spawnRaw, tempDir, waitUntil, type LogLine } from "@switchboard/testkit";
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig, withoutPassword } from "../src/config.ts";
import { errorWithoutParams } from "../src/log.ts";

async function startFailure(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const proc = spawnRaw(env);
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  return { code, stderr };
}

describe("secrets in configuration errors", () => {
  test("a bad ADMIN_TOKEN or METRICS_TOKEN is named, its value never shown", () => {
    for (const name of ["ADMIN_TOKEN", "METRICS_TOKEN"]) {
      const value = "hunter2-short";
      let message = "";
      try {
        loadConfig({ [name]: value });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toContain(`invalid environment variable ${name}`);
      expect(message).not.toContain(value);
    }
  });

  test("a bad DATABASE_URL is shown with its password replaced, or not at all when it does not parse", () => {
    const cases = [
      "mysql://admin:hunter2@db.example:3306/app",
      "postgres//admin:hunter2@db/app",
      "hunter2",
      "jdbc:postgresql://db:5432/app?user=app&password=hunter2",
      "jdbc:postgresql://db:5432/app?sslpassword=hunter2&user=app",
    ];
    for (const value of cases) {
      let message = "";
      try {
        loadConfig({ DATABASE_URL: value });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toContain("invalid environment variable DATABASE_URL");
      expect(message).not.toContain("hunter2");
    }
    expect(withoutPassword("mysql://admin:hunter2@db.example:3306/app")).toBe("mysql://admin:****@db.example:3306/app");
  });

  test("the process's own error line holds no secret either", async () => {
    const { code, stderr } = await startFailure({ ADMIN_TOKEN: "hunter2", DATABASE_URL: "mysql://u:hunter2@h/d" });
    expect(code).toBe(78);
    expect(stderr).toContain("invalid environment variable ADMIN_TOKEN");
    expect(stderr).toContain("invalid environment variable DATABASE_URL");
    expect(stderr).not.toContain("hunter2");
  });
});

describe("log serializer", () => {
  test("a Postgres error's detail, where and params never reach the log; its code and message do", () => {
    const error = Object.assign(new Error("duplicate key value violates unique constraint"), {
      code: "23505",
      detail: "Key (ciphertext)=(c2VjcmV0) already exists.",
      where: "SQL statement with c2VjcmV0",
      params: ["c2VjcmV0"],
    });
    const out = errorWithoutParams(error);
    expect(JSON.stringify(out)).not.toContain("c2VjcmV0");
    expect(out.code).toBe("23505");
    expect(out.message).toBe("duplicate key value violates unique constraint");
  });
});

describe("a DATA_DIR the broker cannot use", () => {
  // A file in its place stands for any directory that cannot be created or
  // written (a volume mounted read-only, or owned by another user): the start
  // stops with one line naming the variable. Embedded, the lock is taken
  // there; on a server, the generated admin token is kept there.
  test("stops the start with one line on stderr naming DATA_DIR, exit 78, not a stack trace", async () => {
    const backend = await freshBackend();
    const dir = tempDir("not-a-dir");
    const file = join(dir, "data");
    writeFileSync(file, "");
    try {
      const { code, stderr } = await startFailure({ ...backend.env, DATA_DIR: file });
      expect(code).toBe(78);
      const plain = stderr.split("\n").filter((line) => line !== "" && !line.startsWith("{"));
      expect(plain).toEqual([expect.stringContaining(`DATA_DIR ${file}`)]);
      expect(stderr).not.toContain("broker failed to start");
    } finally {
      await backend.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the generated admin token file", () => {
  test("readable by others: the broker refuses to start and says how to fix it", async () => {
    const own = embeddedBackend({ withSchema: true });
    try {
      mkdirSync(own.dataDir!, { recursive: true });
      const path = join(own.dataDir!, "admin-token");
      writeFileSync(path, `${"a".repeat(64)}\n`);
      chmodSync(path, 0o644);
      const { code, stderr } = await startFailure(own.env);
      expect(code).toBe(78);
      expect(stderr).toContain("readable by others");
      expect(stderr).not.toContain("a".repeat(64));
    } finally {
      await own.dispose();
    }
  });

  test("one that holds a token no Authorization header carries (spaces, beyond ASCII): the broker refuses to start and says how to fix it", async () => {
    for (const token of ["correct horse battery staple", "admin-t\u00f6k\u00e9n-0123456789"]) {
      const own = embeddedBackend({ withSchema: true });
      try {
        mkdirSync(own.dataDir!, { recursive: true });
        writeFileSync(join(own.dataDir!, "admin-token"), `${token}\n`, { mode: 0o600 });
        const { code, stderr } = await startFailure(own.env);
        expect({ token, code }).toEqual({ token, code: 78 });
        expect(stderr).toContain("outside printable ASCII, which no Authorization header carries as written; fix or delete it");
        expect(stderr).not.toContain(token);
      } finally {
        await own.dispose();
      }
    }
  });

  test("a link in its place is refused, not followed", async () => {
    const own = embeddedBackend({ withSchema: true });
    const elsewhere = tempDir("elsewhere");
    try {
      mkdirSync(own.dataDir!, { recursive: true });
      const target = join(elsewhere, "token");
      writeFileSync(target, `${"b".repeat(64)}\n`, { mode: 0o600 });
      symlinkSync(target, join(own.dataDir!, "admin-token"));
      const { code, stderr } = await startFailure(own.env);
      expect(code).toBe(78);
      expect(stderr).toContain("not a regular file");
    } finally {
      await own.dispose();
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  test("another writer's draft — a broker with the same pid in another container, or a planted link — is neither followed nor removed", async () => {
    const own = embeddedBackend();
    const elsewhere = tempDir("elsewhere");
    try {
      // Named as a writer with this process's pid would name its draft: the
      // function runs in this process.
      const { resolveAdminToken } = await import("../src/services/admin-token.ts");
      const { createLogger } = await import("../src/log.ts");
      mkdirSync(own.dataDir!, { recursive: true });
      const target = join(elsewhere, "victim");
      writeFileSync(target, "untouched\n");
      const draft = join(own.dataDir!, `admin-token.${process.pid}.tmp`);
      symlinkSync(target, draft);
      const token = resolveAdminToken({ ADMIN_TOKEN: undefined, DATA_DIR: own.dataDir! }, createLogger("silent", {}));
      expect(readFileSync(target, "utf8")).toBe("untouched\n");
      expect(readFileSync(join(own.dataDir!, "admin-token"), "utf8").trim()).toBe(token);
      // Left as it was; and no draft of its own is left behind.
      expect(lstatSync(draft).isSymbolicLink()).toBe(true);
      expect(readdirSync(own.dataDir!).sort()).toEqual(["admin-token", `admin-token.${process.pid}.tmp`]);
    } finally {
      await own.dispose();
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});

/** A log line of the broker's, with the error fields these tests read. */
type BrokerLog = LogLine & { err?: { message?: string; code?: string } };

/** The broker as it is always started, with one more module loaded first; its stderr as JSON lines. */
function brokerWithPreload(dir: string, source: string, env: Record<string, string>) {
  const preload = join(dir, "preload.ts");
  writeFileSync(preload, source);
  const proc = Bun.spawn(["bun", "--preload", preload, join(REPO_ROOT, "apps", "broker", "src", "index.ts")], {
    env: brokerEnv(env),
    stdout: "ignore",
    stderr: "pipe",
  });
  const { lines, done: read } = readLog(proc.stderr);
  return { proc, lines: lines as BrokerLog[], read };
}

/** Code that runs once the broker has its handler for `event` in place (a fixed delay raced its loading on a busy machine). */
const onceHandled = (event: string, body: string) => `const wait = setInterval(() => {
  if (process.listenerCount(${JSON.stringify(event)}) === 0) return;
  clearInterval(wait);
  ${body}
}, 50);
`;

describe("an uncaught exception", () => {
  test("ends the broker with a non-zero status after logging it as fatal", async () => {
    const own = embeddedBackend({ withSchema: true });
    const dir = tempDir("preload");
    try {
      const { proc, lines, read } = brokerWithPreload(dir, onceHandled("uncaughtException", `throw new Error("boom from a timer");`), own.env);
      expect(await proc.exited).toBe(70);
      await read;
      const fatal = lines.find((l) => l.msg === "uncaught exception");
      expect(fatal?.level).toBe(60);
      expect(fatal?.err?.message).toBe("boom from a timer");
    } finally {
      await own.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// postgres.js leaves a promise of its own unhandled when a new connection is
// lost during its first query (db-connection-loss.test.ts cuts one for
// real); the error is the socket's own when the socket failed rather than
// closed. A broken pipe ended the broker as a bug.
describe("an unhandled rejection with a lost socket's code", () => {
  const codes = ["EPIPE", "ECONNRESET", "ECONNABORTED", "ENOTCONN", "EHOSTUNREACH", "ENETUNREACH"];

  test(`is a lost database connection: logged, and the broker stays up (${codes.join(", ")})`, async () => {
    const own = embeddedBackend({ withSchema: true });
    const dir = tempDir("preload");
    const port = await freePort();
    const rejections = codes.map((code) => `Promise.reject(Object.assign(new Error("socket: ${code}"), { code: "${code}" }));`).join("\n  ");
    const { proc, lines, read } = brokerWithPreload(dir, onceHandled("unhandledRejection", rejections), { ...own.env, BROKER_PORT: String(port) });
    try {
      await waitUntil(() => lines.filter((l) => l.msg === "db connection lost").length === codes.length || proc.exitCode !== null, 30_000, "each rejection logged");
      expect(lines.filter((l) => l.msg === "db connection lost").map((l) => l.err?.code)).toEqual(codes);
      await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => null))?.status === 200, 30_000, "/health 200");
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
      await read;
      expect(lines.filter((l) => (l.level ?? 0) >= 60)).toEqual([]);
    } finally {
      proc.kill("SIGKILL");
      await own.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
