// A broker whose start failed is held by nobody: neither its process nor a
// backend made for it may outlive the failure.
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { freshBackend, openBackends } from "../src/backend.ts";
import { spawnBroker } from "../src/broker-process.ts";
import { TEST_ADMIN_TOKEN, TestBroker } from "../src/test-broker.ts";

/** The processes whose environment holds `entry`. */
function processesWith(entry: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, "latin1").split("\0").includes(entry)) pids.push(Number(name));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return pids;
}

test("a broker refused at start (exit 78) leaves no backend behind", async () => {
  const before = openBackends();
  const refused = await TestBroker.start({ BROKER_PORT: "not-a-port" }).catch((error: unknown) => error);
  expect(String(refused)).toContain("BROKER_PORT");
  expect(openBackends()).toBe(before);
});

test.skipIf(process.platform !== "linux")("a broker that did not come up in time is killed, not left running", async () => {
  const backend = await freshBackend({ withSchema: true });
  const mark = `SWITCHBOARD_TEST_MARK=${crypto.randomUUID()}`;
  try {
    const late = await spawnBroker({ ...backend.env, ADMIN_TOKEN: TEST_ADMIN_TOKEN, SWITCHBOARD_TEST_MARK: mark.split("=")[1]! }, { startTimeoutMs: 1 }).catch(
      (error: unknown) => error,
    );
    expect(String(late)).toContain('no "broker listening" log within 1 ms');
    expect(processesWith(mark)).toEqual([]);
  } finally {
    await backend.dispose();
  }
});
