// A small run of `bun run bench robust`: a slow consumer, floods while a
// probe measures latency, fuzzing, and Postgres restarted and an instance
// SIGKILLed under load. Its guarantees are checked here; its figures (memory,
// latency ratios, recovery times) are the benchmark's to report.
import { describe, expect, test } from "bun:test";
import { ownPostgresTestsRun, within } from "@switchboard/testkit";
import { runRobust } from "../src/robust.ts";
import { Steps } from "../src/robust-stage.ts";

// Inside the test's own 300 s: cut short, the run says where it was.
const DEADLINE_MS = 270_000;

// Every part starts its own Postgres server.
describe.skipIf(!ownPostgresTestsRun())("robustness, small", () => {
  test("nothing acked is lost or delivered twice; every hostile input answered; the broker stays up", async () => {
    const steps = new Steps();
    const report = await within(runRobust("smoke", steps), DEADLINE_MS, () => `the run, whose steps were:\n${steps}`);
    expect(report.slowConsumer.allArrivedInOrder).toBe(true);
    expect(report.floods.floods.map((f) => [f.name, f.healthDuring])).toEqual([
      ["pipelined sends of 60 KB", 200],
      ["client_ack frames of 1,000 ids", 200],
      ["pipelined control frames", 200],
      ["sockets that never say hello", 200],
      ["sockets that never say hello, held", 200],
      ["sockets that never say hello, from a process at nice 0", 200],
    ]);
    const sends = report.floods.floods.find((f) => f.name === "pipelined sends of 60 KB")!;
    expect(sends.detail.acked).toBe(sends.count);
    // Answered up to the control limit and past it up to MAX_REFUSED_FRAMES_PER_MIN (1,000) refusals, then closed.
    const control = report.floods.floods.find((f) => f.name === "pipelined control frames")!;
    const { pongs = 0, rateLimited = 0, unanswered = 0, closeCode } = control.detail;
    expect(closeCode).toBe(1008);
    expect(pongs).toBeGreaterThan(0);
    expect(rateLimited).toBeGreaterThan(1000);
    expect(unanswered).toBeGreaterThan(0);
    expect(pongs + rateLimited + unanswered).toBe(control.count);
    const sockets = report.floods.floods.find((f) => f.name === "sockets that never say hello")!;
    expect((sockets.detail.opened ?? 0) + (sockets.detail.refused ?? 0)).toBe(sockets.count);
    const held = report.floods.floods.find((f) => f.name === "sockets that never say hello, held")!;
    expect((held.detail.opened ?? 0) + (held.detail.refused ?? 0)).toBe(held.count);
    expect(held.detail.opened).toBeGreaterThan(0);
    const storm = report.floods.floods.find((f) => f.name === "sockets that never say hello, from a process at nice 0")!;
    expect((storm.detail.opened ?? 0) + (storm.detail.refused ?? 0)).toBe(storm.count);
    expect(report.fuzz.unanswered).toBe(0);
    expect(report.faults.sendsAcked).toBeGreaterThan(0);
    expect(report.faults.lostAcked).toBe(0);
    expect(report.faults.duplicatesToApplication).toBe(0);
    expect(report.faults.postgresRestart.healthWentDown).toBe(true);
  });
});
