// Floods of every kind against one broker at its default limits, while a
// probe pair (in a process of its own) measures send→push latency: memory,
// /health and the probe's latency against idle are reported for each. Each
// flood's idle is the probe's p50 in the seconds just before it: on a shared
// machine the idle latency itself drifts within a run.
import { filler, pipelined, rawPresence, rssPeak, setupMesh, type SetupMember } from "@switchboard/testkit";
import { startRelay } from "./floor/relay.ts";
import { startLatencyProbe, type LatencyProbe } from "./robust-probe.ts";
import { answerBoundMs, logTail, MB, stage, type Size, type Steps } from "./robust-stage.ts";
import { openSilentSockets, silentSockets, stormProcess } from "./robust-storm.ts";
import { summarize } from "./stats.ts";

export interface FloodReport {
  name: string;
  count: number;
  brokerRssPeakGrowthMB: number;
  /** Probe p50 in the idle seconds just before the flood. */
  idleP50Ms: number;
  /** The probe's latencies measured during the flood (one sent every 20 ms); its p50. */
  probeSamples: number;
  probeP50Ms: number;
  /** Probe p50 during the flood over idleP50Ms. */
  probeRatio: number;
  healthDuring: number;
  detail: Record<string, number>;
}

/** The niceness of the storm's own process: also 19 at full size only (see floods). */
const niceness = (size: Size): number[] => (size === "full" ? [0, 19] : [0]);

/** Readies a silent-socket storm against a server; the function it returns runs it. */
type Storm = (wsUrl: string) => Promise<() => Promise<unknown>>;

/** The silent-socket flood against the floor's relay, measured by the same probe. */
export interface FloorFlood {
  idleP50Ms: number;
  probeP50Ms: number;
  probeRatio: number;
  /** probeP50Ms less idleP50Ms: what the flood added to a bare relay hop. */
  addedMs: number;
}

export interface FloodsReport {
  idleProbeP50Ms: number;
  floods: FloodReport[];
  /** The storm of silent sockets against the floor's relay, from the bench's process. */
  floor: FloorFlood;
  /** The same, from a process of its own at nice 19 (at full size only). */
  floorAtNice19: FloorFlood | undefined;
}

// The broker's default limits: the floods meet them as an attacker would.
export async function floods(size: Size, steps: Steps): Promise<FloodsReport> {
  const s = await stage(size, {});
  const full = size === "full";
  let probe: LatencyProbe | undefined;
  try {
    const { mesh, members } = await setupMesh(s.admin, { members: 4 });
    const [a, b, probeFrom, probeTo] = members as [SetupMember, SetupMember, SetupMember, SetupMember];
    const latency = await startLatencyProbe({ wsUrl: s.broker.wsUrl, meshId: mesh.id, from: probeFrom.identity, to: probeTo.identity });
    probe = latency;
    const p50Of = async (from: number, to: number) => summarize(await latency.between(from, to)).p50;
    const idleFrom = Date.now();
    await Bun.sleep(full ? 5000 : 1000);
    const idle = await p50Of(idleFrom, Date.now());
    const results: FloodReport[] = [];

    // `before` runs between the quiet seconds and the measured window: what
    // the flood is measured in the wake of (sockets it opened and holds).
    const run = async <T>(
      name: string,
      count: number,
      flood: (prepared: T) => Promise<Record<string, number>>,
      before: () => Promise<T> = async () => undefined as T,
    ) => {
      steps.mark(`flood: ${name}`);
      const quietFrom = Date.now();
      await Bun.sleep(full ? 3000 : 200);
      const idleBefore = await p50Of(quietFrom, Date.now());
      const peak = rssPeak(s.broker.pid);
      let health = 200;
      const healthCheck = setInterval(() => {
        fetch(`${s.broker.url}/health`)
          .then((r) => {
            if (r.status !== 200) health = r.status;
          })
          .catch(() => (health = 0));
      }, 250);
      let from = Date.now();
      const detail = await before()
        .then((prepared) => {
          from = Date.now();
          return flood(prepared);
        })
        .catch((error: unknown) => {
          throw new Error(`the flood "${name}" failed: ${String(error)}\nthe broker's last log lines:\n${logTail(s.broker)}`);
        })
        .finally(() => clearInterval(healthCheck));
      const during = await latency.between(from, Date.now());
      const p50 = during.length > 0 ? summarize(during).p50 : Number.NaN;
      results.push({
        name,
        count,
        brokerRssPeakGrowthMB: Math.round(peak.stop() / MB),
        idleP50Ms: Math.round(idleBefore * 100) / 100,
        probeSamples: during.length,
        probeP50Ms: Math.round(p50 * 100) / 100,
        probeRatio: Math.round((p50 / idleBefore) * 100) / 100,
        healthDuring: health,
        detail,
      });
    };

    const sends = full ? 3000 : 100;
    await run("pipelined sends of 60 KB", sends, async () => {
      const ws = await rawPresence(s.broker.wsUrl, mesh.id, a.identity);
      const acks = await pipelined(
        ws,
        Array.from({ length: sends }, () => ({ type: "send", targetSpec: b.pubkey, nonce: "n", ciphertext: filler(60_000) })),
        answerBoundMs(size),
      );
      ws.destroy();
      return { acked: acks.filter((x) => x?.type === "ack").length };
    });

    const ackFrames = full ? 300 : 30;
    await run("client_ack frames of 1,000 ids", ackFrames, async () => {
      const ws = await rawPresence(s.broker.wsUrl, mesh.id, a.identity);
      // Acks have no reply unless refused: a ping behind them marks the end.
      for (let i = 0; i < ackFrames; i++) {
        ws.sendJson({ type: "client_ack", messageIds: Array.from({ length: 1000 }, () => crypto.randomUUID()) });
      }
      await pipelined(ws, [{ type: "ping" }], answerBoundMs(size));
      const rateLimited = ws.messages.filter((m) => m.includes('"rate_limited"')).length;
      ws.destroy();
      return { rateLimited };
    });

    const pings = full ? 100_000 : 5000;
    // The broker answers until the connection was refused too often, then closes it.
    await run("pipelined control frames", pings, async () => {
      const ws = await rawPresence(s.broker.wsUrl, mesh.id, a.identity);
      const answers = await pipelined(ws, Array.from({ length: pings }, () => ({ type: "ping" })), answerBoundMs(size));
      ws.destroy();
      return {
        pongs: answers.filter((x) => x?.type === "pong").length,
        rateLimited: answers.filter((x) => x?.code === "rate_limited").length,
        unanswered: answers.filter((x) => x === undefined).length,
        closeCode: ws.close?.code ?? 0,
      };
    });

    const sockets = full ? 10_000 : 200;
    await run("sockets that never say hello", sockets, () => silentSockets(s.broker.wsUrl, sockets));
    // The same sockets once they are open: measured while they are held.
    await run(
      "sockets that never say hello, held",
      sockets,
      async ({ open, refused, unanswered }) => {
        await Bun.sleep(full ? 3000 : 200);
        for (const ws of open) ws.destroy();
        return { opened: open.length, refused, unanswered };
      },
      () => openSilentSockets(s.broker.wsUrl, sockets),
    );
    // The attacker in a process of its own, at the bench's priority and (at
    // full size) at the lowest: what the storm costs others when its own CPU
    // comes last. Not at the small size, which runs beside the rest of the
    // suite: a process at nice 19 among busy ones of the same session gets
    // a sliver of a core, and the run's length would depend on theirs.
    for (const nice of niceness(size)) {
      await run(
        `sockets that never say hello, from a process at nice ${nice}`,
        sockets,
        (storm) => storm.run(),
        () => stormProcess(s.broker.wsUrl, sockets, nice, answerBoundMs(size)),
      );
    }
    await probe.stop();
    probe = undefined;

    const onTheFloor = (prepare: Storm) => silentSocketsOnTheFloor({ members: [probeFrom, probeTo], prepare, quietMs: full ? 3000 : 200 });
    steps.mark("flood: silent sockets against the relay");
    const floor = await onTheFloor(async (wsUrl) => () => silentSockets(wsUrl, sockets));
    const floorAtNice19 = full
      ? await onTheFloor(async (wsUrl) => {
          const storm = await stormProcess(wsUrl, sockets, 19, answerBoundMs(size));
          return () => storm.run();
        })
      : undefined;
    return { idleProbeP50Ms: Math.round(idle * 100) / 100, floods: results, floor, floorAtNice19 };
  } finally {
    await probe?.stop();
    await s.close();
  }
}

/**
 * The same probe and the same silent-socket flood against the floor's relay
 * (Bun's WebSocket server, no database): what that flood costs a bare relay
 * hop on this machine, beside what it costs Switchboard's.
 */
async function silentSocketsOnTheFloor(options: {
  members: SetupMember[];
  prepare: Storm;
  quietMs: number;
}): Promise<FloorFlood> {
  const relay = await startRelay();
  let probe: LatencyProbe | undefined;
  try {
    const [from, to] = options.members as [SetupMember, SetupMember];
    probe = await startLatencyProbe({ wsUrl: relay.wsUrl, meshId: "floor", from: from.identity, to: to.identity });
    const quietFrom = Date.now();
    await Bun.sleep(options.quietMs);
    const storm = await options.prepare(relay.wsUrl);
    const floodFrom = Date.now();
    const idle = summarize(await probe.between(quietFrom, floodFrom)).p50;
    await storm();
    const during = summarize(await probe.between(floodFrom, Date.now())).p50;
    return {
      idleP50Ms: Math.round(idle * 100) / 100,
      probeP50Ms: Math.round(during * 100) / 100,
      probeRatio: Math.round((during / idle) * 100) / 100,
      addedMs: Math.round((during - idle) * 100) / 100,
    };
  } finally {
    await probe?.stop();
    await relay.stop();
  }
}

