// Starts the floor's relay in a process of its own and stops it by its PID.
import { join } from "node:path";

export interface RelayProcess {
  readonly pid: number;
  readonly wsUrl: string;
  stop(): Promise<void>;
}

export async function startRelay(): Promise<RelayProcess> {
  const proc = Bun.spawn(["bun", join(import.meta.dir, "relay-server.ts")], { stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`relay exited before listening: ${text}`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const { port } = JSON.parse(text.slice(0, text.indexOf("\n"))) as { port: number };
  return {
    pid: proc.pid,
    wsUrl: `ws://127.0.0.1:${port}/`,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}
