// A tiny run of every scenario, so the harness cannot rot. Figures are not
// judged here (that is the benchmark's job); completeness is.
import { describe, expect, test } from "bun:test";
import { ownPostgresTestsRun } from "@switchboard/testkit";
import { runScenario } from "../src/run.ts";
import { scenarios } from "../src/scenarios.ts";

describe.skipIf(!ownPostgresTestsRun())("benchmark smoke runs", () => {
  for (const name of Object.keys(scenarios("smoke"))) {
    test(name, async () => {
      const report = await runScenario(name, "smoke");
      const { counts } = report.load;
      // The connections scenario only connects; every other one sends.
      if (name === "connections") expect(counts.sent).toBe(0);
      else expect(counts.sent).toBeGreaterThan(0);
      expect(counts.acked).toBe(counts.sent);
      expect(counts.errors).toEqual({});
      expect(counts.lost).toBe(0);
      expect(counts.delivered).toBe(counts.expectedDeliveries);
      expect(report.load.connect?.peers).toBe(scenarios("smoke")[name]!.meshes * scenarios("smoke")[name]!.membersPerMesh);
      expect(report.brokers.length).toBe(scenarios("smoke")[name]!.instances);
      if (!scenarios("smoke")[name]!.embedded) expect(report.rowsLeft.presences_live).toBe(0);
      if (name === "held") expect(report.load.held?.messages).toBe(500);
      if (name === "throughput") expect(report.load.steps?.length).toBeGreaterThan(0);
    });
  }
});
