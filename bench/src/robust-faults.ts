// Faults under load: two broker instances on one Postgres, messages flowing
// between SDK clients across them, then Postgres is stopped and started
// again, and one instance is SIGKILLed and started again. Every message
// whose send was acknowledged must reach its recipient's application, and
// none twice.
import { SwitchboardClient } from "@switchboard/client";
import {
  AdminClient,
  postgresBackend,
  setupMesh,
  spawnBroker,
  startPostgresCluster,
  type BrokerProcess,
  type SetupMember,
} from "@switchboard/testkit";
import { ADMIN_TOKEN, logTail, type Steps } from "./robust-stage.ts";
import { onDisk } from "./scenarios.ts";


export interface FaultsReport {
  instances: number;
  pairs: number;
  targetRatePerSecond: number;
  seconds: number;
  sendsStarted: number;
  sendsAcked: number;
  /** Sends the SDK gave up on (an error reply); the application may retry them. */
  sendsFailed: number;
  receivedUnique: number;
  /** Acked messages that never reached the recipient's application: must be 0. */
  lostAcked: number;
  /** Message events an application saw for an id it had seen before: must be 0. */
  duplicatesToApplication: number;
  postgresRestart: { healthWentDown: boolean; secondsDown: number; secondsUntilHealthy: number };
  instanceKill: { secondsUntilRestartedHealthy: number; secondsUntilClientsBack: number };
}

async function status(broker: { url: string }): Promise<number> {
  try {
    return (await fetch(`${broker.url}/health`, { signal: AbortSignal.timeout(2000) })).status;
  } catch {
    return 0;
  }
}

/** Each broker's /health and its last log lines: what a timed-out wait needs to be understood. */
async function brokersState(brokers: BrokerProcess[]): Promise<string> {
  const parts = await Promise.all(
    brokers.map(async (b, i) => {
      const exit = b.exitCode === null ? "running" : `exited ${b.exitCode}`;
      return `instance ${i} (pid ${b.pid}, ${exit}, /health ${await status(b)}), last log lines:\n${logTail(b)}`;
    }),
  );
  return parts.join("\n");
}

async function waitFor(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string | (() => string),
  brokers: BrokerProcess[] = [],
): Promise<number> {
  const start = performance.now();
  for (const end = Date.now() + timeoutMs; Date.now() < end; await Bun.sleep(50)) {
    if (await check()) return (performance.now() - start) / 1000;
  }
  const state = brokers.length > 0 ? `\n${await brokersState(brokers)}` : "";
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === "string" ? what : what()}${state}`);
}

function countBy(values: Iterable<number>): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

const round = (n: number) => Math.round(n * 100) / 100;

export async function runFaults(size: "full" | "smoke", portA: number, portB: number, steps: Steps): Promise<FaultsReport> {
  const full = size === "full";
  const pairs = full ? 20 : 3;
  const rate = full ? 1000 : 60;
  const seconds = full ? 40 : 7;
  const cluster = await startPostgresCluster({ fsync: true, onDisk: onDisk(size) });
  const backend = await postgresBackend(cluster.url());
  const env = { ...backend.env, ADMIN_TOKEN, SEND_RATE_LIMIT_PER_MIN: "100000000", SEND_RECIPIENTS_RATE_LIMIT_PER_MIN: "100000000", INSTANCE_LEASE_SECONDS: "6" };
  const brokers: BrokerProcess[] = [];
  const clients: SwitchboardClient[] = [];
  try {
    brokers.push(await spawnBroker({ ...env, BROKER_PORT: String(portA) }));
    brokers.push(await spawnBroker({ ...env, BROKER_PORT: String(portB) }));
    const admin = new AdminClient(brokers[0]!.url, ADMIN_TOKEN);
    const { mesh, members } = await setupMesh(admin, { members: pairs * 2 });
    const urls = brokers.map((b) => b.url);

    // Sender i on one instance, its recipient on the other.
    const seen = new Map<string, number>();
    let duplicates = 0;
    const connect = async (member: SetupMember, url: string) => {
      const client = await SwitchboardClient.connect({
        url,
        meshId: mesh.id,
        secretKey: member.identity.secretKey,
        reconnect: { minDelayMs: 100, maxDelayMs: 1000 },
      });
      client.on("message", (m) => {
        const n = (seen.get(m.messageId) ?? 0) + 1;
        seen.set(m.messageId, n);
        if (n > 1) duplicates++;
      });
      clients.push(client);
      return client;
    };
    const senders: SwitchboardClient[] = [];
    const recipients: SetupMember[] = [];
    for (let i = 0; i < pairs; i++) {
      const from = members[2 * i]!;
      const to = members[2 * i + 1]!;
      senders.push(await connect(from, urls[i % 2]!));
      await connect(to, urls[(i + 1) % 2]!);
      recipients.push(to);
    }

    const acked = new Set<string>();
    let started = 0;
    let failed = 0;
    /** Pair of each send not yet answered, by its number. */
    const unanswered = new Map<number, number>();
    const perTick = rate / 100;
    let carry = 0;
    const ticker = setInterval(() => {
      carry += perTick;
      for (; carry >= 1; carry--) {
        const i = started % pairs;
        const n = ++started;
        unanswered.set(n, i);
        void senders[i]!
          .send(recipients[i]!.pubkey, { n })
          .then((result) => void acked.add(result.messageId))
          .catch(() => void failed++)
          .finally(() => void unanswered.delete(n));
      }
    }, 10);

    const t0 = performance.now();
    const at = (fraction: number) => Bun.sleep(Math.max(0, t0 + seconds * 1000 * fraction - performance.now()));

    await at(0.25);
    const stoppedAt = performance.now();
    await cluster.stop();
    steps.mark("faults: Postgres stopped");
    let healthWentDown = false;
    await waitFor(async () => (healthWentDown = (await status(brokers[0]!)) === 503), 15_000, "/health 503").catch(() => {});
    await Bun.sleep(3000);
    await cluster.start();
    steps.mark("faults: Postgres started again");
    const startedAt = performance.now();
    const secondsUntilHealthy = await waitFor(
      async () => (await status(brokers[0]!)) === 200 && (await status(brokers[1]!)) === 200,
      60_000,
      "/health 200 on both instances",
      brokers,
    );
    const secondsDown = (startedAt - stoppedAt) / 1000;

    await at(0.6);
    const killed = brokers[1]!;
    killed.kill("SIGKILL");
    await killed.exited;
    steps.mark("faults: an instance SIGKILLed");
    const restartedFrom = performance.now();
    brokers[1] = await spawnBroker({ ...env, BROKER_PORT: String(portB) });
    const secondsUntilRestartedHealthy = (performance.now() - restartedFrom) / 1000;
    steps.mark("faults: the instance started again");
    const secondsUntilClientsBack = await waitFor(() => clients.every((c) => c.connected), 60_000, "every client reconnected", brokers);

    await at(1);
    clearInterval(ticker);
    steps.mark("faults: sends stopped; waiting for their answers");
    // The SDK keeps a send until the broker answers it (no request timeout):
    // one the brokers never answer must fail the run, not hang it.
    await waitFor(
      () => unanswered.size === 0,
      full ? 300_000 : 60_000,
      () => `an answer to each of the ${started} sends (unanswered, by pair: ${JSON.stringify(countBy(unanswered.values()))})`,
      brokers,
    );
    steps.mark("faults: waiting for every acked message at its recipient");
    await waitFor(() => [...acked].every((id) => seen.has(id)), full ? 120_000 : 60_000, "every acked message at its recipient").catch(() => {});
    const lost = [...acked].filter((id) => !seen.has(id)).length;
    return {
      instances: 2,
      pairs,
      targetRatePerSecond: rate,
      seconds,
      sendsStarted: started,
      sendsAcked: acked.size,
      sendsFailed: failed,
      receivedUnique: seen.size,
      lostAcked: lost,
      duplicatesToApplication: duplicates,
      postgresRestart: { healthWentDown, secondsDown: round(secondsDown), secondsUntilHealthy: round(secondsUntilHealthy) },
      instanceKill: {
        secondsUntilRestartedHealthy: round(secondsUntilRestartedHealthy),
        secondsUntilClientsBack: round(secondsUntilClientsBack),
      },
    };
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    for (const b of brokers) await b.stop();
    await backend.dispose().catch(() => {});
    await cluster.destroy();
  }
}
