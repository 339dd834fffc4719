// `bun run bench http` and `bun run bench webhook`: a throwaway Postgres
// (fsync on), one broker on it, the members enrolled (with API tokens), and
// the load of http-load.ts in a process of its own. Every figure has its
// socket counterpart from the same run; the report states the ratios.
import { generateKeypair } from "@switchboard/protocol";
import { AdminClient, postgresBackend, spawnBroker, startPostgresCluster, type BrokerProcess, type TestBackend } from "@switchboard/testkit";
import { join } from "node:path";
import type { HttpPlan, HttpPlanMember, PathFigures } from "./http-load.ts";
import { machine, type Machine } from "./machine.ts";
import { writeReport } from "./out.ts";
import { cpuPercent, sampleProcess } from "./probe.ts";
import { onDisk, type Size } from "./scenarios.ts";
import type { Summary } from "./stats.ts";

const ADMIN_TOKEN = "bench-admin-token-0123456789";

type Shape = Pick<HttpPlan, "rate" | "seconds" | "concurrency" | "closedSeconds" | "roundTrips" | "queuedPerReceiver" | "drainMs"> & {
  senders: number;
  receivers: number;
};

interface HttpScenario {
  description: (shape: Shape) => string;
  kind: HttpPlan["kind"];
  shape: Record<Size, Shape>;
}

export const HTTP_SCENARIOS: Record<string, HttpScenario> = {
  http: {
    kind: "http",
    description: (s) =>
      `${s.senders} senders to ${s.receivers} socket peers at ${s.rate} msg/s for ${s.seconds} s over sockets, then over HTTP; ` +
      `closed loop at ${s.concurrency} in flight for ${s.closedSeconds} s each; ${s.roundTrips} request/reply round trips each`,
    shape: {
      full: { senders: 20, receivers: 20, rate: 1000, seconds: 20, concurrency: 32, closedSeconds: 10, roundTrips: 300, queuedPerReceiver: 0, drainMs: 30_000 },
      smoke: { senders: 4, receivers: 4, rate: 100, seconds: 2, concurrency: 4, closedSeconds: 1, roundTrips: 5, queuedPerReceiver: 0, drainMs: 20_000 },
    },
  },
  webhook: {
    kind: "webhook",
    description: (s) =>
      `${s.queuedPerReceiver} queued for each of ${s.receivers / 2} webhook members, drained to a local receiver, and the same for ` +
      `${s.receivers / 2} socket members; then ${s.rate} msg/s for ${s.seconds} s, half to each`,
    shape: {
      full: { senders: 10, receivers: 20, rate: 1000, seconds: 20, concurrency: 0, closedSeconds: 0, roundTrips: 0, queuedPerReceiver: 5000, drainMs: 120_000 },
      smoke: { senders: 2, receivers: 4, rate: 100, seconds: 2, concurrency: 0, closedSeconds: 0, roundTrips: 0, queuedPerReceiver: 100, drainMs: 30_000 },
    },
  },
};

export interface HttpBenchReport {
  scenario: string;
  description: string;
  size: Size;
  machine: Machine;
  result: Record<string, unknown>;
  /** HTTP or webhook figure ÷ the socket figure of the same run. */
  ratios: Record<string, number>;
  broker: { rssBeforeBytes: number; rssAfterBytes: number; cpuPercent: number };
}

async function enroll(admin: AdminClient, slug: string, count: number, withTokens: boolean): Promise<HttpPlanMember[]> {
  const members: HttpPlanMember[] = [];
  for (let i = 0; i < count; i++) {
    const identity = await generateKeypair();
    const added = await admin.addMember(slug, { pubkey: identity.publicKey, displayName: `peer-${slug}-${i}` });
    members.push({ id: added.id, identity, ...(withTokens ? { token: await admin.createApiToken(slug, added.id) } : {}) });
  }
  return members;
}

async function runLoad(planPath: string, broker: BrokerProcess): Promise<Record<string, unknown>> {
  const proc = Bun.spawn(["bun", join(import.meta.dir, "http-load.ts"), planPath], { stdout: "pipe", stderr: "inherit" });
  const text = await new Response(proc.stdout).text();
  const code = await proc.exited;
  const line = text.split("\n").find((l) => l.includes('"event":"result"'));
  if (!line) throw new Error(`the load exited ${code} without a result; broker log ends with:\n${broker.stderrText().split("\n").slice(-30).join("\n")}`);
  return (JSON.parse(line) as { result: Record<string, unknown> }).result;
}

const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 100) / 100 : 0);
const pair = <T>(result: Record<string, unknown>, key: string) => result[key] as Record<string, T>;

function ratiosOf(kind: HttpPlan["kind"], result: Record<string, unknown>): Record<string, number> {
  if (kind === "http") {
    const fixed = pair<PathFigures>(result, "fixed");
    const closed = pair<PathFigures>(result, "closed");
    const round = pair<Summary>(result, "roundTrip");
    return {
      closedLoopSendsPerSecond_httpOverSocket: ratio(closed.http!.perSecond, closed.websocket!.perSecond),
      sendToPushP50_httpOverSocket: ratio(fixed.http!.sendToDelivery.p50, fixed.websocket!.sendToDelivery.p50),
      sendToPushP99_httpOverSocket: ratio(fixed.http!.sendToDelivery.p99, fixed.websocket!.sendToDelivery.p99),
      sendToCommitP50_httpOverSocket: ratio(fixed.http!.sendToAccept.p50, fixed.websocket!.sendToAccept.p50),
      roundTripP50_httpOverSocket: ratio(round.http!.p50, round.websocket!.p50),
    };
  }
  const drain = pair<PathFigures>(result, "drain");
  const fixed = pair<PathFigures>(result, "fixed");
  return {
    drainPerSecond_webhookOverSocket: ratio(drain.webhook!.perSecond, drain.websocket!.perSecond),
    sendToDeliveryP50_webhookOverSocket: ratio(fixed.webhook!.sendToDelivery.p50, fixed.websocket!.sendToDelivery.p50),
    sendToDeliveryP99_webhookOverSocket: ratio(fixed.webhook!.sendToDelivery.p99, fixed.websocket!.sendToDelivery.p99),
  };
}

export async function runHttpScenario(name: string, size: Size): Promise<HttpBenchReport> {
  const scenario = HTTP_SCENARIOS[name];
  if (!scenario) throw new Error(`unknown scenario ${name}`);
  const shape = scenario.shape[size];
  const cluster = await startPostgresCluster({ fsync: true, onDisk: onDisk(size) });
  let backend: TestBackend | undefined;
  let broker: BrokerProcess | undefined;
  try {
    backend = await postgresBackend(cluster.url());
    broker = await spawnBroker({
      ...backend.env,
      ADMIN_TOKEN,
      SEND_RATE_LIMIT_PER_MIN: "100000000",
      SEND_RECIPIENTS_RATE_LIMIT_PER_MIN: "100000000",
      MAX_CONNECTIONS_PER_MESH: "10000",
      WEBHOOK_ALLOW_PRIVATE: "true",
    });
    const admin = new AdminClient(broker.url, ADMIN_TOKEN);
    const slug = `bench-${name}`;
    await admin.createMesh(slug);
    const plan: HttpPlan = {
      ...shape,
      kind: scenario.kind,
      baseUrl: broker.url,
      wsUrl: broker.wsUrl,
      mesh: slug,
      adminToken: ADMIN_TOKEN,
      senders: await enroll(admin, slug, shape.senders, scenario.kind === "http"),
      receivers: await enroll(admin, slug, shape.receivers, false),
    };
    const planPath = join(backend.env.DATA_DIR!, "http-plan.json");
    await Bun.write(planPath, JSON.stringify(plan));
    const before = sampleProcess(broker.pid);
    const result = await runLoad(planPath, broker);
    const after = sampleProcess(broker.pid);
    return {
      scenario: name,
      description: scenario.description(shape),
      size,
      machine: machine(),
      result,
      ratios: ratiosOf(scenario.kind, result),
      broker: { rssBeforeBytes: before.rssBytes, rssAfterBytes: after.rssBytes, cpuPercent: cpuPercent(before, after) },
    };
  } finally {
    await broker?.stop();
    await backend?.dispose().catch(() => {});
    await cluster.destroy();
  }
}

/** `bun run bench http|webhook [--smoke]`: runs, prints, and writes the report to bench/out/. */
export async function main(name: string, size: Size): Promise<void> {
  await writeReport(name, size, await runHttpScenario(name, size));
}
