// A broker process on a backend, with an admin client holding a known admin
// token: what most integration tests start before anything else.
import { afterAll, beforeAll } from "bun:test";
import { AdminClient } from "./admin-client.ts";
import { freshBackend, postgresBackend, type TestBackend } from "./backend.ts";
import { spawnBroker, type BrokerProcess } from "./broker-process.ts";
import { startPostgresCluster, type PostgresCluster } from "./postgres-cluster.ts";

/** The admin token of every test broker whose environment names no other. */
export const TEST_ADMIN_TOKEN = "test-admin-token-0123456789abcdef";

export interface TestBrokerOptions {
  /** Run on this backend instead of a fresh one; it stays the caller's to dispose of. */
  backend?: TestBackend;
}

interface Running {
  process: BrokerProcess;
  admin: AdminClient;
}

export class TestBroker {
  /** The bearer token of the admin API. */
  readonly adminToken: string;
  private readonly ownsBackend: boolean;
  private backendOrNone: TestBackend | undefined;
  private current: Running | undefined;
  private alive = false;

  constructor(
    /** Added to the broker's environment, over the backend's and the admin token. */
    readonly env: Record<string, string> = {},
    options: TestBrokerOptions = {},
  ) {
    this.adminToken = env.ADMIN_TOKEN ?? TEST_ADMIN_TOKEN;
    this.backendOrNone = options.backend;
    this.ownsBackend = options.backend === undefined;
  }

  /** A started broker (on a fresh backend unless options name one). */
  static async start(env: Record<string, string> = {}, options: TestBrokerOptions = {}): Promise<TestBroker> {
    const broker = new TestBroker(env, options);
    try {
      return await broker.start();
    } catch (error) {
      // Nobody holds a broker whose start failed: a backend made for it goes too.
      await broker.dispose();
      throw error;
    }
  }

  get backend(): TestBackend {
    if (!this.backendOrNone) throw new Error("the test broker has not been started");
    return this.backendOrNone;
  }

  /** The broker process started last (its logs, pid, signals). */
  get process(): BrokerProcess {
    return this.running().process;
  }

  get admin(): AdminClient {
    return this.running().admin;
  }

  get url(): string {
    return this.process.url;
  }

  get wsUrl(): string {
    return this.process.wsUrl;
  }

  /** Starts a broker process; after stop() or a kill, a new one on the same backend. */
  async start(): Promise<this> {
    if (this.alive) throw new Error("the test broker is already running");
    // Migrations are the migration tests' business; here they would only cost time.
    this.backendOrNone ??= await freshBackend({ withSchema: true });
    const proc = await spawnBroker({ ...this.backendOrNone.env, ADMIN_TOKEN: this.adminToken, ...this.env });
    this.alive = true;
    void proc.exited.then(() => {
      if (this.current?.process === proc) this.alive = false;
    });
    this.current = { process: proc, admin: new AdminClient(proc.url, this.adminToken) };
    return this;
  }

  /** Stops the process with SIGTERM (the backend stays); resolves with its exit code. */
  async stop(): Promise<number> {
    const code = await this.process.stop();
    this.alive = false;
    return code;
  }

  /** Stops the process if it runs and drops the backend if it was created here. */
  async dispose(): Promise<void> {
    try {
      if (this.alive) await this.stop();
    } finally {
      if (this.ownsBackend) await this.backendOrNone?.dispose();
      this.backendOrNone = undefined;
    }
  }

  private running(): Running {
    if (!this.current) throw new Error("the test broker has not been started");
    return this.current;
  }
}

/**
 * A broker for the tests of the enclosing describe block (or file): started
 * before the first, disposed of after the last.
 */
export function useTestBroker(env: Record<string, string> = {}): TestBroker {
  const broker = new TestBroker(env);
  beforeAll(() => broker.start());
  afterAll(() => broker.dispose());
  return broker;
}

/**
 * Two brokers on one backend (a Postgres server) for the tests of the
 * enclosing describe block: what crosses instances. Started before the
 * first test, disposed of after the last.
 */
export function useTestBrokerPair(env: Record<string, string> = {}): { readonly a: TestBroker; readonly b: TestBroker } {
  const a = new TestBroker(env);
  let b: TestBroker | undefined;
  beforeAll(async () => {
    await a.start();
    b = await TestBroker.start(env, { backend: a.backend });
  });
  afterAll(async () => {
    await b?.dispose();
    await a.dispose();
  });
  return {
    a,
    get b() {
      if (!b) throw new Error("the second test broker has not been started");
      return b;
    },
  };
}

/** A broker on a Postgres server of the test's own, which the test may stop and start. */
export interface BrokerOnOwnPostgres {
  readonly cluster: PostgresCluster;
  readonly broker: TestBroker;
  /** Stops the broker, then the server, and removes both. */
  dispose(): Promise<void>;
}

export async function startBrokerOnOwnPostgres(env: Record<string, string> = {}): Promise<BrokerOnOwnPostgres> {
  const cluster = await startPostgresCluster();
  let backend: TestBackend | undefined;
  let broker: TestBroker | undefined;
  const dispose = async () => {
    try {
      await broker?.dispose();
      await backend?.dispose();
    } finally {
      await cluster.destroy();
    }
  };
  try {
    backend = await postgresBackend(cluster.url());
    broker = await TestBroker.start(env, { backend });
    return { cluster, broker, dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}
