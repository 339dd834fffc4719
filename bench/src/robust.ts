// `bun run bench robust [--smoke]`: the broker under pressure and faults, at
// full size, with figures. A slow consumer, floods of every kind while a
// probe pair measures latency, seeded fuzzing, and Postgres restarted and an
// instance SIGKILLed while messages flow. `bun run test` runs small sizes of
// the same drivers (apps/broker/test/pressure.test.ts, fuzz.test.ts,
// bench/test/robust.test.ts).
import {
  ackAll,
  AdminClient,
  filler,
  firstPushes,
  freePort,
  fuzzBroker,
  pipelined,
  postgresBackend,
  rawPresence,
  RawUpgradeRefused,
  RawWebSocket,
  rssPeak,
  setupMesh,
  spawnBroker,
  startPostgresCluster,
  type BrokerProcess,
  type FuzzReport,
  type PostgresCluster,
  type SetupMember,
  type TestBackend,
} from "@switchboard/testkit";
import { mkdirSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { runFaults, type FaultsReport } from "./robust-faults.ts";
import { summarize } from "./stats.ts";

export type Size = "full" | "smoke";

const ADMIN_TOKEN = "robust-admin-token-0123456789";
const MB = 1024 * 1024;
const UNLIMITED = "100000000";

/** For the fuzzer, one member sending everything: no limit may end its run early. */
const OPEN_LIMITS = {
  SEND_RATE_LIMIT_PER_MIN: UNLIMITED,
  CONTROL_RATE_LIMIT_PER_MIN: UNLIMITED,
  HELLO_FAILURES_PER_ADDRESS_PER_MIN: UNLIMITED,
  HOOK_RATE_LIMIT_PER_MIN: UNLIMITED,
  HOOK_RATE_LIMIT_PER_TOKEN_PER_MIN: UNLIMITED,
  MAX_PENDING_HELLOS: "20000",
  MAX_PENDING_HELLOS_PER_ADDRESS: "20000",
};

interface Stage {
  cluster: PostgresCluster;
  backend: TestBackend;
  broker: BrokerProcess;
  admin: AdminClient;
  close(): Promise<void>;
}

async function stage(env: Record<string, string>): Promise<Stage> {
  const cluster = await startPostgresCluster({ fsync: true });
  const backend = await postgresBackend(cluster.url());
  const broker = await spawnBroker({ ...backend.env, ADMIN_TOKEN, ...env });
  return {
    cluster,
    backend,
    broker,
    admin: new AdminClient(broker.url, ADMIN_TOKEN),
    async close() {
      await broker.stop();
      await backend.dispose().catch(() => {});
      await cluster.destroy();
    },
  };
}

async function metric(broker: BrokerProcess, name: string): Promise<number> {
  const text = await (await fetch(`${broker.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return Number(line?.split(" ")[1] ?? 0);
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await Bun.sleep(100)) if (await check()) return;
  throw new Error(`timed out waiting for ${what}`);
}

export interface SlowConsumerReport {
  messages: number;
  megabytes: number;
  allArrivedInOrder: boolean;
  pushesUnwritten: number;
  redeliveries: number;
  brokerRssPeakGrowthMB: number;
  drainSeconds: number;
}

/** A reader stops reading while small and large messages are sent to it, then reads again. */
async function slowConsumer(size: Size): Promise<SlowConsumerReport> {
  const small = size === "full" ? 20_000 : 400;
  const large = size === "full" ? 600 : 40;
  // No push may come back by a lease running out: delivery must not depend on it.
  const s = await stage({ LEASE_SECONDS: "3600", STALLED_PRESENCE_SECONDS: "3600", SEND_RATE_LIMIT_PER_MIN: UNLIMITED });
  try {
    const { mesh, members } = await setupMesh(s.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const reader = await rawPresence(s.broker.wsUrl, mesh.id, b.identity);
    reader.pause();
    const writer = await rawPresence(s.broker.wsUrl, mesh.id, a.identity);
    const unwrittenBefore = await metric(s.broker, "broker_pushes_unwritten_total");
    const redeliveredBefore = await metric(s.broker, "broker_redeliveries_total");
    const peak = rssPeak(s.broker.pid);
    const frames = [
      ...Array.from({ length: large }, () => ({ type: "send", targetSpec: b.pubkey, nonce: "n", ciphertext: filler(60_000) })),
      ...Array.from({ length: small }, () => ({ type: "send", targetSpec: b.pubkey, nonce: "n", ciphertext: filler(4096) })),
    ];
    const acks = await pipelined(writer, frames, 600_000);
    const sent = acks.map((ack) => String(ack.messageId));
    await until(async () => (await metric(s.broker, "broker_presences_congested")) > 0, 60_000, "the reader to be congested");
    const resumed = performance.now();
    reader.resume();
    const acked = new Set<string>();
    await reader.waitFor(
      () => {
        ackAll(reader, acked);
        return sent.every((id) => acked.has(id)) ? true : undefined;
      },
      600_000,
      "every message at the reader",
    );
    const drainSeconds = (performance.now() - resumed) / 1000;
    const grew = peak.stop();
    const order = firstPushes(reader);
    reader.destroy();
    writer.destroy();
    return {
      messages: sent.length,
      megabytes: Math.round((large * 60_000 + small * 4096) / MB),
      allArrivedInOrder: order.length === sent.length && order.every((id, i) => id === sent[i]),
      pushesUnwritten: (await metric(s.broker, "broker_pushes_unwritten_total")) - unwrittenBefore,
      redeliveries: (await metric(s.broker, "broker_redeliveries_total")) - redeliveredBefore,
      brokerRssPeakGrowthMB: Math.round(grew / MB),
      drainSeconds: Math.round(drainSeconds * 10) / 10,
    };
  } finally {
    await s.close();
  }
}

/** Two raw presences: one sends a timestamped message every 20 ms, the other reports send→push latencies. */
function latencyProbe(wsUrl: string, meshId: string, from: SetupMember, to: SetupMember) {
  let sender: RawWebSocket | null = null;
  let receiver: RawWebSocket | null = null;
  let timer: Timer | undefined;
  const samples: Array<{ at: number; ms: number }> = [];
  let read = 0;
  return {
    async start() {
      receiver = await rawPresence(wsUrl, meshId, to.identity);
      sender = await rawPresence(wsUrl, meshId, from.identity);
      timer = setInterval(() => {
        sender!.sendJson({ type: "send", targetSpec: to.pubkey, nonce: "probe", ciphertext: String(performance.now()) });
        for (; read < receiver!.messages.length; read++) {
          const m = receiver!.messages[read]!;
          if (!m.startsWith('{"type":"push"')) continue;
          const push = JSON.parse(m) as { messageId: string; ciphertext: string };
          samples.push({ at: performance.now(), ms: performance.now() - Number(push.ciphertext) });
          receiver!.sendJson({ type: "client_ack", messageIds: [push.messageId] });
        }
      }, 20);
    },
    /** p50 of the latencies seen since `since` (performance.now()). */
    p50Since(since: number): number {
      return summarize(samples.filter((s) => s.at >= since).map((s) => s.ms)).p50;
    },
    stop() {
      clearInterval(timer);
      sender?.destroy();
      receiver?.destroy();
    },
  };
}

export interface FloodReport {
  name: string;
  count: number;
  brokerRssPeakGrowthMB: number;
  probeP50Ms: number;
  /** Probe p50 during the flood over probe p50 at idle. */
  probeRatio: number;
  healthDuring: number;
  detail: Record<string, number>;
}

// The broker's default limits: the floods meet them as an attacker would.
async function floods(size: Size): Promise<{ idleProbeP50Ms: number; floods: FloodReport[] }> {
  const s = await stage({});
  const full = size === "full";
  try {
    const { mesh, members } = await setupMesh(s.admin, { members: 4 });
    const [a, b, probeFrom, probeTo] = members as [SetupMember, SetupMember, SetupMember, SetupMember];
    const probe = latencyProbe(s.broker.wsUrl, mesh.id, probeFrom, probeTo);
    await probe.start();
    const idleFrom = performance.now();
    await Bun.sleep(full ? 5000 : 1000);
    const idle = probe.p50Since(idleFrom);
    const results: FloodReport[] = [];

    const run = async (name: string, count: number, flood: () => Promise<Record<string, number>>) => {
      const from = performance.now();
      const peak = rssPeak(s.broker.pid);
      let health = 200;
      const healthCheck = setInterval(() => {
        fetch(`${s.broker.url}/health`)
          .then((r) => {
            if (r.status !== 200) health = r.status;
          })
          .catch(() => (health = 0));
      }, 250);
      const detail = await flood();
      clearInterval(healthCheck);
      const p50 = probe.p50Since(from);
      results.push({
        name,
        count,
        brokerRssPeakGrowthMB: Math.round(peak.stop() / MB),
        probeP50Ms: Math.round(p50 * 100) / 100,
        probeRatio: Math.round((p50 / idle) * 100) / 100,
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
        600_000,
      );
      ws.destroy();
      return { acked: acks.filter((x) => x.type === "ack").length };
    });

    const ackFrames = full ? 300 : 30;
    await run("client_ack frames of 1,000 ids", ackFrames, async () => {
      const ws = await rawPresence(s.broker.wsUrl, mesh.id, a.identity);
      // Acks have no reply unless refused: a ping behind them marks the end.
      for (let i = 0; i < ackFrames; i++) {
        ws.sendJson({ type: "client_ack", messageIds: Array.from({ length: 1000 }, () => crypto.randomUUID()) });
      }
      await pipelined(ws, [{ type: "ping" }], 600_000);
      const rateLimited = ws.messages.filter((m) => m.includes('"rate_limited"')).length;
      ws.destroy();
      return { rateLimited };
    });

    const pings = full ? 100_000 : 2000;
    await run("pipelined control frames", pings, async () => {
      const ws = await rawPresence(s.broker.wsUrl, mesh.id, a.identity);
      const answers = await pipelined(ws, Array.from({ length: pings }, () => ({ type: "ping" })), 600_000);
      ws.destroy();
      return {
        pongs: answers.filter((x) => x.type === "pong").length,
        rateLimited: answers.filter((x) => x.code === "rate_limited").length,
      };
    });

    const sockets = full ? 10_000 : 200;
    await run("sockets that never say hello", sockets, async () => {
      const open: RawWebSocket[] = [];
      let refused = 0;
      for (let i = 0; i < sockets; i += 100) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(100, sockets - i) }, () =>
            RawWebSocket.open(s.broker.wsUrl).catch((error: unknown) => {
              if (error instanceof RawUpgradeRefused) refused++;
              return null;
            }),
          ),
        );
        for (const ws of batch) if (ws) open.push(ws);
      }
      const opened = open.length;
      for (const ws of open) ws.destroy();
      return { opened, refused };
    });

    probe.stop();
    return { idleProbeP50Ms: Math.round(idle * 100) / 100, floods: results };
  } finally {
    await s.close();
  }
}

async function fuzz(size: Size): Promise<FuzzReport> {
  const s = await stage(OPEN_LIMITS);
  try {
    const { mesh, members } = await setupMesh(s.admin, { members: 2 });
    const [fuzzer, other] = members as [SetupMember, SetupMember];
    const full = size === "full";
    return await fuzzBroker(
      {
        baseUrl: s.broker.url,
        wsUrl: s.broker.wsUrl,
        adminToken: ADMIN_TOKEN,
        meshId: mesh.id,
        identity: fuzzer.identity,
        otherPubkey: other.pubkey,
        hookToken: await s.admin.createHookToken(mesh.id, fuzzer.id),
      },
      {
        seed: Number(process.env.FUZZ_SEED ?? 20261129),
        frames: full ? 100_000 : 500,
        hellos: full ? 10_000 : 50,
        hooks: full ? 10_000 : 50,
        adminBodies: full ? 10_000 : 50,
      },
    );
  } finally {
    await s.close();
  }
}

export interface RobustReport {
  size: Size;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; bun: string };
  slowConsumer: SlowConsumerReport;
  floods: { idleProbeP50Ms: number; floods: FloodReport[] };
  fuzz: Omit<FuzzReport, "unanswered"> & { unanswered: number; firstUnanswered: FuzzReport["unanswered"] };
  faults: FaultsReport;
}

export async function runRobust(size: Size): Promise<RobustReport> {
  const slow = await slowConsumer(size);
  const flooded = await floods(size);
  const fuzzed = await fuzz(size);
  const faults = await runFaults(size, await freePort(), await freePort());
  return {
    size,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown", memoryGiB: Math.round(totalmem() / 2 ** 30), bun: Bun.version },
    slowConsumer: slow,
    floods: flooded,
    fuzz: { ...fuzzed, unanswered: fuzzed.unanswered.length, firstUnanswered: fuzzed.unanswered.slice(0, 10) },
    faults,
  };
}

export async function main(size: Size): Promise<void> {
  const report = await runRobust(size);
  mkdirSync(join(import.meta.dir, "..", "out"), { recursive: true });
  const path = join(import.meta.dir, "..", "out", `robust-${size}-${new Date().toISOString().replaceAll(":", "-")}.json`);
  await Bun.write(path, JSON.stringify(report, null, 2));
  console.log(JSON.stringify(report, null, 2));
  console.log(`written to ${path}`);
}
