// Embedded mode (no DATABASE_URL) whatever backend the run is on: it is the
// default a newcomer gets.
import { afterEach, describe, expect, test } from "bun:test";
import { lockDataDir } from "@switchboard/db";
import { embeddedBackend, spawnBroker, spawnRaw, waitUntil, type BrokerProcess, type TestBackend } from "@switchboard/testkit";
import { cpSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";

const started: BrokerProcess[] = [];
let backend: TestBackend | undefined;
afterEach(async () => {
  for (const b of started.splice(0)) await b.stop();
  await backend?.dispose();
  backend = undefined;
});

describe("embedded default", () => {
  test("a second process on the same DATA_DIR fails, naming the holder", async () => {
    backend = embeddedBackend({ withSchema: true });
    const first = await spawnBroker(backend.env);
    started.push(first);
    const second = spawnRaw(backend.env);
    const [stderr, code] = await Promise.all([new Response(second.stderr).text(), second.exited]);
    expect(code).not.toBe(0);
    expect(stderr).toContain(`is in use by another broker (pid ${first.pid}`);
    expect(stderr).toContain(backend.dataDir!);
    // The first one is unharmed.
    expect((await fetch(`${first.url}/health`)).status).toBe(200);
  });

  // A careless backup: DATA_DIR copied while its broker runs. The copy is not
  // in use, but its database may be half-written; the refusal said another
  // broker used it, and that deleting the lock was for a host gone.
  test("a broker on a copy of a running broker's DATA_DIR is refused, saying it is a copy taken while that broker ran", async () => {
    backend = embeddedBackend({ withSchema: true });
    const first = await spawnBroker(backend.env);
    started.push(first);
    const copy = mkdtempSync(join(tmpdir(), "switchboard-data-copy-"));
    try {
      cpSync(backend.dataDir!, copy, { recursive: true });
      const second = spawnRaw({ ...backend.env, DATA_DIR: copy });
      const [stderr, code] = await Promise.all([new Response(second.stderr).text(), second.exited]);
      expect(code).toBe(75);
      expect(stderr).toContain(`DATA_DIR ${copy} is a copy of ${realpathSync(backend.dataDir!)}, taken while a broker used it (pid ${first.pid}`);
      expect(stderr).toContain(`delete ${join(copy, "broker.lock")}`);
      expect(stderr).not.toContain("is in use by another broker");
      // The original is still refused as in use, and still serves.
      const again = spawnRaw(backend.env);
      const [againErr] = await Promise.all([new Response(again.stderr).text(), again.exited]);
      expect(againErr).toContain(`is in use by another broker (pid ${first.pid}`);
      expect((await fetch(`${first.url}/health`)).status).toBe(200);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  test("before it listens, an embedded broker has run both send statements on its one connection (the first sends after a start meet no cold statement)", async () => {
    backend = embeddedBackend({ withSchema: true });
    const broker = await spawnBroker(backend.env);
    started.push(broker);
    const warmed = broker.logs.findIndex((l) => l.msg === "pool warmed" && l.connections === 1);
    expect(warmed).toBeGreaterThanOrEqual(0);
    expect(warmed).toBeLessThan(broker.logs.findIndex((l) => l.msg === "broker listening"));
  });

  test("a lock naming this very pid is a leftover (a restarted container's broker is pid 1 each time) and is taken over", () => {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-lock-"));
    try {
      const leftover = { pid: process.pid, hostname: hostname(), since: "2026-01-01T00:00:00.000Z" };
      writeFileSync(join(dir, "broker.lock"), JSON.stringify(leftover));
      const release = lockDataDir(dir);
      expect(JSON.parse(readFileSync(join(dir, "broker.lock"), "utf8")).since).not.toBe(leftover.since);
      release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // A live process that is not the holder: the pid of a holder gone in a
  // crash of the machine, given after the reboot to another process.
  test.skipIf(process.platform !== "linux")(
    "a lock naming a live pid of another process (a holder gone with a reboot, its pid reused) is taken over; one naming that process is not",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "switchboard-lock-"));
      const other = Bun.spawn(["sleep", "60"]);
      try {
        const stat = readFileSync(`/proc/${other.pid}/stat`, "utf8");
        const startTime = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
        const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
        const lock = (fields: object) =>
          writeFileSync(join(dir, "broker.lock"), JSON.stringify({ pid: other.pid, hostname: hostname(), since: "2026-01-01T00:00:00.000Z", ...fields }));

        for (const gone of [{ bootId: "an-earlier-boot", startTime }, { bootId, startTime: "1" }]) {
          lock(gone);
          const release = lockDataDir(dir);
          expect(JSON.parse(readFileSync(join(dir, "broker.lock"), "utf8")).pid).toBe(process.pid);
          release();
        }
        lock({ bootId, startTime });
        expect(() => lockDataDir(dir)).toThrow(`is in use by another broker (pid ${other.pid}`);
      } finally {
        other.kill();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  // A holder killed whose parent has not reaped it yet (a supervisor that
  // restarts it at once): its pid answers signals, but nothing runs there.
  test.skipIf(process.platform !== "linux")("a lock whose holder is dead but not yet reaped (a zombie) is taken over", async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-lock-"));
    // The shell starts a child, then becomes a sleep that never waits for it: once it exits, the child stays a zombie.
    const parent = Bun.spawn(["bash", "-c", "sleep 0.2 & echo $!; exec sleep 60"], { stdout: "pipe" });
    try {
      const { value } = await parent.stdout.getReader().read();
      const pid = Number(new TextDecoder().decode(value).trim());
      const stat = () => readFileSync(`/proc/${pid}/stat`, "utf8");
      const startTime = stat().slice(stat().lastIndexOf(")") + 2).split(" ")[19]!;
      const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
      await waitUntil(() => stat().slice(stat().lastIndexOf(")") + 2).startsWith("Z"), 10_000, "the child a zombie");
      writeFileSync(join(dir, "broker.lock"), JSON.stringify({ pid, hostname: hostname(), since: "2026-01-01T00:00:00.000Z", bootId, startTime }));
      const release = lockDataDir(dir);
      expect(JSON.parse(readFileSync(join(dir, "broker.lock"), "utf8")).pid).toBe(process.pid);
      release();
    } finally {
      parent.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the lock of a killed broker is taken over, and the data survives the restart", async () => {
    backend = embeddedBackend();
    const first = await spawnBroker(backend.env);
    const firstApplied = first.logs.find((l) => l.msg === "migrations applied");
    expect(firstApplied).toBeDefined();
    first.kill("SIGKILL");
    await first.exited;

    const second = await spawnBroker(backend.env);
    started.push(second);
    expect((await fetch(`${second.url}/health`)).status).toBe(200);
    // Same database: nothing left to migrate.
    expect(second.logs.some((l) => l.msg === "migrations applied")).toBe(false);
  });
});
