// A small run of `bun run bench robust`: a slow consumer, floods while a
// probe measures latency, fuzzing, and Postgres restarted and an instance
// SIGKILLed under load. Its guarantees are checked here; its figures (memory,
// latency ratios, recovery times) are the benchmark's to report.
import { describe, expect, test } from "bun:test";
import { ownPostgresTestsRun } from "@switchboard/testkit";
import { runRobust } from "../src/robust.ts";

// Every part starts its own Postgres server.
describe.skipIf(!ownPostgresTestsRun())("robustness, small", () => {
  test("nothing acked is lost or delivered twice; every hostile input answered; the broker stays up", async () => {
    const report = await runRobust("smoke");
    expect(report.slowConsumer.allArrivedInOrder).toBe(true);
    expect(report.floods.floods.map((f) => [f.name, f.healthDuring])).toEqual([
      ["pipelined sends of 60 KB", 200],
      ["client_ack frames of 1,000 ids", 200],
      ["pipelined control frames", 200],
      ["sockets that never say hello", 200],
    ]);
    const sends = report.floods.floods.find((f) => f.name === "pipelined sends of 60 KB")!;
    expect(sends.detail.acked).toBe(sends.count);
    const sockets = report.floods.floods.find((f) => f.name === "sockets that never say hello")!;
    expect((sockets.detail.opened ?? 0) + (sockets.detail.refused ?? 0)).toBe(sockets.count);
    expect(report.fuzz.unanswered).toBe(0);
    expect(report.faults.sendsAcked).toBeGreaterThan(0);
    expect(report.faults.lostAcked).toBe(0);
    expect(report.faults.duplicatesToApplication).toBe(0);
    expect(report.faults.postgresRestart.healthWentDown).toBe(true);
  });
});
