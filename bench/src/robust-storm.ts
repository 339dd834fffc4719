// The silent-socket storm, played by an attacker in a process of its own.
// An attacker elsewhere costs the broker's machine its sockets, not its own
// CPU: here it shares the two cores, so it also runs at the lowest priority
// (nice 19), which leaves the broker, Postgres and the probe first in line
// for a core while it opens its sockets. The storm at the bench's own
// priority, in its own process, is measured beside it.
import { RawUpgradeRefused, RawUpgradeUnanswered, RawWebSocket, within } from "@switchboard/testkit";
import { linesOf } from "./child-lines.ts";

/** `unanswered`: neither upgraded nor refused within RawWebSocket.open's bound. */
export type StormResult = { opened: number; refused: number; unanswered: number };

export interface StormProcess {
  /** Starts the storm; resolves with what it did once its sockets are dropped. */
  run(): Promise<StormResult>;
}

/** Opens `count` sockets, 100 at a time, that never say hello. */
export async function openSilentSockets(
  wsUrl: string,
  count: number,
): Promise<{ open: RawWebSocket[]; refused: number; unanswered: number }> {
  const open: RawWebSocket[] = [];
  let refused = 0;
  let unanswered = 0;
  for (let i = 0; i < count; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, () =>
        RawWebSocket.open(wsUrl).catch((error: unknown) => {
          if (error instanceof RawUpgradeRefused) refused++;
          if (error instanceof RawUpgradeUnanswered) unanswered++;
          return null;
        }),
      ),
    );
    for (const ws of batch) if (ws) open.push(ws);
  }
  return { open, refused, unanswered };
}

/** Opens `count` sockets that never say hello; then drops them. */
export async function silentSockets(wsUrl: string, count: number): Promise<StormResult> {
  const { open, refused, unanswered } = await openSilentSockets(wsUrl, count);
  for (const ws of open) ws.destroy();
  return { opened: open.length, refused, unanswered };
}

/**
 * The same storm from a process of its own, at niceness `nice` (0: the
 * bench's own priority). Resolves once the process is loaded and waiting,
 * so its start-up is not inside the measured window. Each step waits at
 * most boundMs, then the process is killed and the storm fails.
 */
export async function stormProcess(wsUrl: string, count: number, nice: number, boundMs: number): Promise<StormProcess> {
  const child = Bun.spawn(["nice", "-n", String(nice), "bun", import.meta.path, wsUrl, String(count)], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines = linesOf(child.stdout);
  const step = async <T>(work: Promise<T>, what: string): Promise<T> => {
    try {
      return await within(work, boundMs, `the storm's process at nice ${nice} ${what}`);
    } catch (error) {
      child.kill("SIGKILL");
      throw error;
    }
  };
  const nextLine = async (): Promise<string> => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`the storm's process ended (exit ${await child.exited})`);
    return value;
  };
  if ((await step(nextLine(), "to start")) !== "ready") throw new Error("the storm's process did not start");
  return {
    async run() {
      child.stdin.write("go\n");
      await child.stdin.flush();
      const result = JSON.parse(await step(nextLine(), "to open its sockets")) as StormResult;
      child.stdin.end();
      await step(child.exited, "to end");
      return result;
    },
  };
}

async function stormWhenTold(wsUrl: string, count: number): Promise<void> {
  console.log("ready");
  for await (const line of console) {
    if (line !== "go") continue;
    console.log(JSON.stringify(await silentSockets(wsUrl, count)));
    return;
  }
}

if (import.meta.main) await stormWhenTold(process.argv[2]!, Number(process.argv[3]));
