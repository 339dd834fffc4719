// `bun run bench` told a name or option it does not take: one line saying
// which and the usage, exit 2, nothing started; not a stack trace.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";

const RUN = join(import.meta.dir, "../src/run.ts");

async function bench(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = Bun.spawn(["bun", RUN, ...args], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}

describe("bun run bench, given what it does not take", () => {
  for (const [args, said] of [
    [["nope"], "bench: unknown name nope"],
    [["--nope"], "bench: Unknown option '--nope'"],
    [["latency", "nope"], "bench: unknown name nope"],
    [["jetstream", "floor"], "bench: unknown name floor"],
    [["robust", "nope"], "bench: unknown name nope"],
  ] as const) {
    test(`${args.join(" ")}: refused in two lines, exit 2`, async () => {
      const run = await bench(...args);
      expect(run.code).toBe(2);
      const lines = run.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(2);
      expect(lines[0]!.startsWith(said)).toBe(true);
      expect(lines[1]).toStartWith("usage: bun run bench [--smoke] [name …]");
      expect(run.stdout).toBe("");
    });
  }

  test("--help prints the usage, naming every scenario, and exits 0", async () => {
    const run = await bench("--help");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("latency, embedded-latency, cross-instance, throughput");
    expect(run.stderr).toBe("");
  });
});
