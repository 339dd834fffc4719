// What every part of the robustness benchmark starts from: its own Postgres
// (fsync on), a broker on it, an admin client; and small helpers to read it.
import {
  AdminClient,
  postgresBackend,
  spawnBroker,
  startPostgresCluster,
  type BrokerProcess,
  type PostgresCluster,
  type TestBackend,
} from "@switchboard/testkit";
import { onDisk, type Size } from "./scenarios.ts";

export type { Size };

export const ADMIN_TOKEN = "robust-admin-token-0123456789";
export const MB = 1024 * 1024;
export const UNLIMITED = "100000000";

export interface Stage {
  cluster: PostgresCluster;
  backend: TestBackend;
  broker: BrokerProcess;
  admin: AdminClient;
  close(): Promise<void>;
}

export async function stage(size: Size, env: Record<string, string>): Promise<Stage> {
  const cluster = await startPostgresCluster({ fsync: true, onDisk: onDisk(size) });
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

/**
 * How long a part waits for what it sent to be answered or pushed: at the
 * small size well inside the test's own bound, so a wait that never ends
 * fails with what it waited for rather than as the runner's timeout.
 */
export const answerBoundMs = (size: Size): number => (size === "full" ? 600_000 : 120_000);

/** The steps a run has taken, and when: what a run cut short by its deadline was doing. */
export class Steps {
  private readonly start = performance.now();
  private readonly taken: string[] = [];

  mark(step: string): void {
    this.taken.push(`${((performance.now() - this.start) / 1000).toFixed(1)} s ${step}`);
  }

  toString(): string {
    return this.taken.join("\n");
  }
}

/** The broker's last log lines, for a failure's message. */
export const logTail = (broker: BrokerProcess, lines = 30): string => broker.stderrText().trimEnd().split("\n").slice(-lines).join("\n");

export async function metric(broker: BrokerProcess, name: string): Promise<number> {
  const text = await (await fetch(`${broker.url}/metrics`, { signal: AbortSignal.timeout(30_000) })).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return Number(line?.split(" ")[1] ?? 0);
}

