// The latency probe of the floods: one presence sends a timestamped message
// every 20 ms to another, which reports each send→push latency. It runs in a
// process of its own, so what it measures is the broker's delay, not the
// event loop of the process that drives the flood.
import { rawPresence, type TestIdentity } from "@switchboard/testkit";
import { linesOf } from "./child-lines.ts";

const INTERVAL_MS = 20;

interface ProbeArgs {
  wsUrl: string;
  meshId: string;
  from: TestIdentity;
  to: TestIdentity;
}

export interface LatencyProbe {
  /**
   * The latencies of the pushes that arrived in [from, to) (Date.now()), once
   * the probe has reported a push past `to`: a window read before its samples
   * came through the pipe would miss the last ones.
   */
  between(from: number, to: number): Promise<number[]>;
  stop(): Promise<void>;
}

/** Starts the probe's process; resolves once both of its presences are connected. */
export async function startLatencyProbe(args: ProbeArgs): Promise<LatencyProbe> {
  const child = Bun.spawn(["bun", import.meta.path, JSON.stringify(args)], { stdout: "pipe", stderr: "inherit" });
  const samples: Array<{ at: number; ms: number }> = [];
  let ready: () => void = () => {};
  const connected = new Promise<void>((resolve) => (ready = resolve));
  const reading = (async () => {
    for await (const line of linesOf(child.stdout)) {
      const sample = JSON.parse(line) as { ready?: true; at?: number; ms?: number };
      if (sample.ready) ready();
      else samples.push({ at: sample.at!, ms: sample.ms! });
    }
  })();
  await Promise.race([connected, child.exited.then((code) => Promise.reject(new Error(`the probe exited with ${code}`)))]);
  return {
    async between(from, to) {
      for (const end = Date.now() + 30_000; !samples.some((s) => s.at >= to); await Bun.sleep(20)) {
        if (Date.now() > end) throw new Error("the probe reported no push for 30 s");
      }
      return samples.filter((s) => s.at >= from && s.at < to).map((s) => s.ms);
    },
    async stop() {
      child.kill();
      await child.exited;
      await reading;
    },
  };
}

async function runProbe({ wsUrl, meshId, from, to }: ProbeArgs): Promise<void> {
  const receiver = await rawPresence(wsUrl, meshId, to);
  const sender = await rawPresence(wsUrl, meshId, from);
  console.log(JSON.stringify({ ready: true }));
  setInterval(() => {
    sender.sendJson({ type: "send", targetSpec: to.publicKey, nonce: "probe", ciphertext: String(performance.now()) });
  }, INTERVAL_MS);
  // Woken by each frame as it is read, not by a timer: a push is timed when
  // it arrives, not up to a tick later.
  for (let read = 0; ; read++) {
    const m = await receiver.waitFor(() => receiver.messages[read], 3_600_000, "the next frame");
    if (!m.startsWith('{"type":"push"')) continue;
    const push = JSON.parse(m) as { messageId: string; ciphertext: string };
    console.log(JSON.stringify({ at: Date.now(), ms: performance.now() - Number(push.ciphertext) }));
    receiver.sendJson({ type: "client_ack", messageIds: [push.messageId] });
  }
}

if (import.meta.main) await runProbe(JSON.parse(process.argv[2]!) as ProbeArgs);
