// Runs the load generator in a process of its own on a plan, and reads its result.
import { join } from "node:path";
import type { LoadResult, Plan } from "./plan.ts";

export interface LoadRun {
  /** Called with the load generator's PID once it runs (the profile tracks it). */
  onSpawn?: (pid: number) => void;
  /** Called once every peer is connected. */
  onConnected?: () => void;
  /** What to show when the load generator fails: the logs of the system under load. */
  failureLogs?: () => string;
}

export async function runLoad(plan: Plan, planPath: string, run: LoadRun = {}): Promise<LoadResult> {
  await Bun.write(planPath, JSON.stringify(plan));
  const proc = Bun.spawn(["bun", join(import.meta.dir, "loadgen.ts"), planPath], { stdout: "pipe", stderr: "inherit" });
  run.onSpawn?.(proc.pid);
  let result: LoadResult | undefined;
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of proc.stdout) {
    buffer += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = JSON.parse(buffer.slice(0, nl)) as { event: string; result?: LoadResult };
      buffer = buffer.slice(nl + 1);
      if (line.event === "connected") run.onConnected?.();
      if (line.event === "result") result = line.result;
    }
  }
  const code = await proc.exited;
  if (!result) throw new Error(`load generator exited ${code} without a result; ${run.failureLogs?.() ?? ""}`);
  return result;
}
