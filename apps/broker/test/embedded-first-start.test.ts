// A broker killed while it lays down a new embedded database (the first start
// on an empty DATA_DIR) must not leave a directory no later start can open:
// nothing was stored in it yet, so the next start lays it down again.
import { afterEach, describe, expect, test } from "bun:test";
import { embeddedBackend, spawnBroker, spawnRaw, within, type BrokerProcess, type TestBackend } from "@switchboard/testkit";
import { existsSync, mkdirSync, watch } from "node:fs";
import { join } from "node:path";

const started: BrokerProcess[] = [];
const backends: TestBackend[] = [];
afterEach(async () => {
  for (const b of started.splice(0)) await b.stop();
  for (const b of backends.splice(0)) await b.dispose();
});

/**
 * Starts a broker on an empty DATA_DIR and freezes it (SIGSTOP) as soon as
 * the cluster's PG_VERSION appears, then kills it. True when the freeze came
 * before the last database of the cluster was written: a crash mid-way.
 */
async function killWhileLaidDown(dataDir: string): Promise<boolean> {
  const pgdata = join(dataDir, "pgdata");
  mkdirSync(pgdata, { recursive: true });
  const proc = spawnRaw({ DATA_DIR: dataDir });
  // Frozen as PG_VERSION appears (true), or ended by itself first (false: no start was cut short).
  const frozen = new Promise<boolean>((resolve) => {
    const watcher = watch(pgdata, (_event, name) => {
      if (name !== "PG_VERSION") return;
      proc.kill("SIGSTOP");
      watcher.close();
      resolve(true);
    });
    void proc.exited.then(() => {
      watcher.close();
      resolve(false);
    });
  });
  try {
    // base/1 (template1) comes late in the cluster's files.
    return (await within(frozen, 60_000, "PG_VERSION written, or the broker ended")) && !existsSync(join(pgdata, "base", "1"));
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

describe("a first start killed mid-way", () => {
  test("the next start on that DATA_DIR lays the database down again and serves", async () => {
    // The freeze races the writes of the files; a few tries catch one mid-way.
    let backend: TestBackend | undefined;
    for (let attempt = 0; attempt < 5 && backend === undefined; attempt++) {
      const candidate = embeddedBackend();
      backends.push(candidate);
      if (await killWhileLaidDown(candidate.dataDir!)) backend = candidate;
    }
    expect(backend).toBeDefined();

    const broker = await spawnBroker(backend!.env);
    started.push(broker);
    expect((await fetch(`${broker.url}/health`)).status).toBe(200);
    expect(broker.logs.some((l) => l.msg === "migrations applied")).toBe(true);
  });
});
