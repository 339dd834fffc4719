// `bun run bench hook`: what an installed status hook costs a Claude Code
// session, which waits for it on every prompt and every turn's end. In one
// run, in turns: Bun starting and ending with nothing to do (`bun -e 0`, the
// floor of any hook run by Bun), `switchboard hook forward` with a Stop
// input against a broker on loopback (its whole run, as Claude Code waits
// for it), and `switchboard version`, a command that loads the whole command
// line (and with it zod), as `hook forward` did before it was given an entry
// of its own (and the SDK besides).
import { AdminClient, setupMesh, spawnBroker } from "@switchboard/testkit";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runContext } from "./machine.ts";
import { writeReport } from "./out.ts";
import { contextLines, table, type RunContext } from "./report.ts";
import type { Size } from "./scenarios.ts";
import { summarize, type Summary } from "./stats.ts";

const CLI = join(import.meta.dir, "..", "..", "apps", "cli", "src", "main.ts");
const ADMIN_TOKEN = "bench-admin-token-0123456789";
export const HOOK_SHAPE: Record<Size, { rounds: number; calls: number }> = { full: { rounds: 5, calls: 20 }, smoke: { rounds: 1, calls: 3 } };

export interface HookCase {
  name: string;
  wallMs: Summary;
  /** p50 over the floor's p50. */
  ratio: number;
}

export interface HookReport {
  kind: "hook";
  context: RunContext;
  description: string;
  cases: HookCase[];
}

interface Case {
  name: string;
  argv: string[];
  /** Whether one run did its job (read from its stderr): a run that did not ends the benchmark. */
  ok: (stderr: string) => boolean;
}

async function timed(argv: string[], stdin: string): Promise<{ ms: number; stderr: string }> {
  const started = performance.now();
  const child = Bun.spawn(argv, { stdin: new Blob([stdin]), stdout: "ignore", stderr: "pipe" });
  const [stderr] = await Promise.all([new Response(child.stderr).text(), child.exited]);
  return { ms: performance.now() - started, stderr };
}

export async function runHookReport(size: Size): Promise<HookReport> {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-bench-hook-"));
  // A session's hooks come a few a minute; the benchmark's come back to back.
  const broker = await spawnBroker({ DATA_DIR: join(dir, "data"), ADMIN_TOKEN, HOOK_RATE_LIMIT_PER_MIN: "100000", HOOK_RATE_LIMIT_PER_TOKEN_PER_MIN: "100000" });
  try {
    const admin = new AdminClient(broker.url, ADMIN_TOKEN);
    const { mesh, members } = await setupMesh(admin, { members: 1 });
    const tokenFile = join(dir, "hook.token");
    writeFileSync(tokenFile, await admin.createHookToken(mesh.id, members[0]!.id), { mode: 0o600 });
    const input = JSON.stringify({ session_id: "bench-hook", cwd: dir, hook_event_name: "Stop" });
    const bun = process.execPath;
    const cases: Case[] = [
      { name: "Bun starting and ending (`bun -e 0`): the floor", argv: [bun, "-e", "0"], ok: () => true },
      {
        name: "`switchboard hook forward`, a Stop to the broker",
        argv: [bun, CLI, "hook", "forward", "--url", broker.url, "--token-file", tokenFile],
        ok: (stderr) => stderr.startsWith("switchboard hook: 200 "),
      },
      { name: "`switchboard version`: the whole command line loaded", argv: [bun, CLI, "version"], ok: () => true },
    ];
    const samples = cases.map(() => [] as number[]);
    const { rounds, calls } = HOOK_SHAPE[size];
    for (let round = 0; round < rounds; round++) {
      for (const [i, c] of cases.entries()) {
        for (let call = 0; call < calls; call++) {
          const { ms, stderr } = await timed(c.argv, input);
          if (!c.ok(stderr)) throw new Error(`${c.name}: ${stderr.trim() || "failed"}`);
          samples[i]!.push(ms);
        }
      }
    }
    const floor = summarize(samples[0]!);
    return {
      kind: "hook",
      context: runContext("hook", size, "embedded (PGlite)"),
      description: `${rounds} turns of ${calls} runs of each, one after another, as a session's hooks run`,
      cases: cases.map((c, i) => {
        const wallMs = summarize(samples[i]!);
        return { name: c.name, wallMs, ratio: Math.round((wallMs.p50 / floor.p50) * 100) / 100 };
      }),
    };
  } finally {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function hookMarkdown(report: HookReport): string {
  return [
    "## hook",
    "",
    contextLines(report.context),
    "",
    report.description,
    "",
    table(
      ["run", "p50 (ms)", "p90 (ms)", "p99 (ms)", "p50 ÷ the floor's"],
      report.cases.map((c) => [c.name, String(c.wallMs.p50), String(c.wallMs.p90), String(c.wallMs.p99), `${c.ratio}×`]),
    ),
    "",
  ].join("\n");
}

export async function main(size: Size): Promise<void> {
  const report = await runHookReport(size);
  await writeReport("hook", size, report, hookMarkdown(report));
}
