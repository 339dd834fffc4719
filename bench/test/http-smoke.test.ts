// A tiny run of the HTTP and webhook benchmarks, so their harness cannot
// rot. Figures are not judged here; completeness is.
import { describe, expect, test } from "bun:test";
import { ownPostgresTestsRun } from "@switchboard/testkit";
import type { PathFigures } from "../src/http-load.ts";
import { runHttpScenario } from "../src/http-run.ts";


function complete(figures: PathFigures): void {
  expect(figures.counts.sent).toBeGreaterThan(0);
  expect(figures.counts.errors).toEqual({});
  expect(figures.counts.accepted).toBe(figures.counts.sent);
  expect(figures.counts.delivered).toBe(figures.counts.sent);
  expect(figures.counts.lost).toBe(0);
  expect(figures.counts.duplicates).toBe(0);
}

// The harness starts a Postgres server of its own.
describe.skipIf(!ownPostgresTestsRun())("HTTP benchmark smoke runs", () => {
  test("http", async () => {
    const report = await runHttpScenario("http", "smoke");
    const { fixed, closed, roundTrip } = report.result as Record<string, Record<string, PathFigures & { count: number }>>;
    for (const path of ["websocket", "http"]) {
      complete(fixed![path]!);
      complete(closed![path]!);
      expect(roundTrip![path]!.count).toBe(5);
    }
    expect(report.ratios.closedLoopSendsPerSecond_httpOverSocket).toBeGreaterThan(0);
  });

  test("webhook", async () => {
    const report = await runHttpScenario("webhook", "smoke");
    const { drain, fixed } = report.result as Record<string, Record<string, PathFigures>>;
    for (const path of ["webhook", "websocket"]) {
      complete(drain![path]!);
      complete(fixed![path]!);
    }
    expect(drain!.webhook!.counts.sent).toBe(200);
    expect(report.ratios.drainPerSecond_webhookOverSocket).toBeGreaterThan(0);
  });
});
