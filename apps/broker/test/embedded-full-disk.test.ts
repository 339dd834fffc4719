// An embedded DATA_DIR on a full file system: the start stops with one line
// the operator can act on, and once there is room again the broker starts
// with its data; a broker whose disk fills while it runs refuses what it
// cannot store as stored nothing, and says so on /health and /health/ready
// until it writes again. A small tmpfs is the full disk; mounting one needs
// root, so the test is skipped elsewhere. On an embedded database whatever
// backend the run is on: it is the default a newcomer gets.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { PeerPool, setupMesh, spawnBroker, spawnRaw, tempDir, TestBroker, waitUntil, within, type BrokerProcess, type SetupMember, type TestBackend } from "@switchboard/testkit";
import { closeSync, openSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { sendFrame, sendMany } from "./support/messaging.ts";

function mountTmpfs(dir: string, megabytes: number): boolean {
  if (process.getuid?.() !== 0) return false;
  return Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${megabytes}m`, "tmpfs", dir]).exitCode === 0;
}

/** Writes a file until the file system has no room left. */
function fill(path: string): void {
  const fd = openSync(path, "w");
  const chunk = new Uint8Array(64 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
  } finally {
    closeSync(fd);
  }
}

const mountPoint = tempDir("full-disk");
// Room for the two tests' databases.
const mounted = mountTmpfs(mountPoint, 192);
const started: BrokerProcess[] = [];
afterEach(async () => {
  for (const b of started.splice(0)) await b.stop();
});
afterAll(() => {
  if (mounted) Bun.spawnSync(["umount", mountPoint]);
  rmSync(mountPoint, { recursive: true, force: true });
});

describe.skipIf(!mounted)("an embedded broker on a full disk (needs root, to mount a tmpfs)", () => {
  test("a start that cannot write its database exits 78 with one line naming DATA_DIR and why; with room again it starts, data kept", async () => {
    const env = { DATA_DIR: join(mountPoint, "data") };
    const first = await spawnBroker(env);
    started.push(first);
    expect(first.logs.some((l) => l.msg === "migrations applied")).toBe(true);
    // Killed: the next start must recover, which writes.
    first.kill("SIGKILL");
    await first.exited;

    const filler = join(mountPoint, "filler");
    fill(filler);
    const refused = spawnRaw(env);
    // A start that is not refused would serve for good: it is given a minute, then killed.
    const [stderr, code] = await within(Promise.all([new Response(refused.stderr).text(), refused.exited]), 60_000, "the refused start's exit").finally(
      () => refused.kill("SIGKILL"),
    );
    expect({ code, stderr }).toEqual({ code: 78, stderr: expect.stringContaining(`DATA_DIR ${env.DATA_DIR} cannot hold the embedded database: ENOSPC`) });
    const lines = stderr.trimEnd().split("\n");
    expect(lines.filter((l) => l.startsWith("{")).length).toBe(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ code: "data_dir_unusable" });

    unlinkSync(filler);
    const again = await spawnBroker(env);
    started.push(again);
    expect((await fetch(`${again.url}/health`)).status).toBe(200);
    // The same database: nothing left to migrate.
    expect(again.logs.some((l) => l.msg === "migrations applied")).toBe(false);
  });

  test("a disk that fills while it runs: sends are refused as not stored, /health says full; with room again it stores and says up", async () => {
    // On the tmpfs, whichever backend the run is on.
    const dataDir = join(mountPoint, "running");
    const backend: TestBackend = { kind: "embedded", env: { DATA_DIR: dataDir }, dataDir, dispose: async () => rmSync(dataDir, { recursive: true, force: true }) };
    const broker = await TestBroker.start({}, { backend });
    const pool = new PeerPool();
    const filler = join(mountPoint, "filler-running");
    try {
      const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
      const [a, b] = members as [SetupMember, SetupMember];
      const sender = await pool.connect(broker.wsUrl, a, mesh.id);
      fill(filler);
      // Messages that do not compress, more than the tables' free pages hold.
      const body = () => Buffer.from(crypto.getRandomValues(new Uint8Array(40_000))).toString("base64");
      const replies = await sendMany(sender, Array.from({ length: 200 }, () => sendFrame(b.pubkey, { ciphertext: body() })), 120_000);
      const refused = replies.filter((r) => r.type === "error");
      expect(refused.length).toBeGreaterThan(0);
      for (const reply of refused) {
        expect(reply).toMatchObject({
          code: "internal",
          message: "the database has no disk space left to store it; nothing was stored; send it again with the same id",
        });
      }
      const read = async (path: string) => (await (await fetch(`${broker.url}${path}`)).json()) as { status: string; db?: string };
      const health = async () => ({ health: await read("/health"), ready: await read("/health/ready") });
      expect(await health()).toMatchObject({ health: { status: "degraded", db: "full" }, ready: { status: "db_full" } });
      expect(broker.process.logs.filter((l) => l.msg === "db full").length).toBe(1);

      unlinkSync(filler);
      const stored = await sender.send(b.pubkey, { ciphertext: body() });
      expect(stored).toMatchObject({ type: "ack", queued: true });
      await waitUntil(async () => ((await health()).health.db === "up" ? true : undefined), 30_000, "/health to say up again");
      expect(await health()).toMatchObject({ health: { status: "ok", db: "up" }, ready: { status: "ready" } });
    } finally {
      rmSync(filler, { force: true });
      await pool.closeAll();
      await broker.dispose();
      await backend.dispose();
    }
  });
});
