// A stop while the database stalls, as in a network partition: its
// connections stay open and no byte comes back, so a query on one never
// settles (a stopped server, which refuses connections, is db-outage.test.ts).
// The stop must not wait on one: the sockets close with 1001 and the process
// exits 0 within the 10 s the contract allows (PROTOCOL.md §4); what it could
// not write, the other instances reap.
import { describe, expect, test } from "bun:test";
import { backendKind, waitUntil } from "@switchboard/testkit";
import { pairBehindProxy } from "./support/behind-proxy.ts";

/** The contract's bound on a stop, from the signal to the exit. */
const STOP_BOUND_MS = 10_000;

describe.skipIf(backendKind !== "postgres")("SIGTERM while the database stalls (needs DATABASE_URL)", () => {
  test("the sockets close with 1001 and the process exits 0 within the bound, naming what it gave up on", async () => {
    // The compose file's drain, which leaves the least of the budget for the database steps;
    // sends, pushes and acks first, so the pools hold open connections for the stall to leave hanging.
    const { broker, proxy, sender, recipient, dispose } = await pairBehindProxy({ SHUTDOWN_DRAIN_MS: "5000" }, ["one", "two", "three"]);
    try {
      proxy.stall();
      await waitUntil(async () => (await fetch(`${broker.url}/health`)).status === 503, 15_000, "/health 503");
      const signalled = Date.now();
      // SIGTERM, and SIGKILL after 12 s: a stop past the bound shows as exit 1 (its deadline) or a kill.
      const code = await broker.stop();
      const withinBound = Date.now() - signalled < STOP_BOUND_MS;
      const closes = await Promise.all([sender.closed, recipient.closed]);
      const logs = broker.process.logs;
      expect({ code, withinBound, closes: closes.map((c) => c.code) }).toEqual({ code: 0, withinBound: true, closes: [1001, 1001] });
      expect(logs.filter((l) => l.msg === "shutdown deadline passed" || l.msg === "shutdown failed")).toEqual([]);
      expect(logs.some((l) => l.msg === "shutdown complete")).toBe(true);
      // Marking its presences gone needs the database: given up on (or failed), and said so.
      const unfinished = logs.filter((l) => l.msg === "shutdown step timed out" || l.msg === "shutdown step failed").map((l) => l.step);
      expect(unfinished).toContain("instance stop");
    } finally {
      await dispose();
    }
  });
});
