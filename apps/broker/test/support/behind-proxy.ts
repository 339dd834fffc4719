// A broker on a database of its own whose connections pass through the test
// proxy, which can refuse, end, withhold or stall them (testkit's postgres-proxy.ts).
import { freshBackend, startPostgresProxy, TestBroker, type PostgresProxy, type TestBackend } from "@switchboard/testkit";

export interface BrokerBehindProxy {
  broker: TestBroker;
  proxy: PostgresProxy;
  backend: TestBackend;
  /** The database itself, not through the proxy. */
  databaseUrl: string;
  dispose(): Promise<void>;
}

export async function brokerBehindProxy(env: Record<string, string> = {}): Promise<BrokerBehindProxy> {
  const backend = await freshBackend();
  const databaseUrl = backend.databaseUrl!;
  const server = new URL(databaseUrl);
  const proxy = await startPostgresProxy({ host: server.hostname, port: Number(server.port) });
  let broker: TestBroker;
  try {
    broker = await TestBroker.start({ DATABASE_URL: proxy.url(databaseUrl), ...env }, { backend });
  } catch (error) {
    await proxy.close();
    await backend.dispose();
    throw error;
  }
  return {
    broker,
    proxy,
    backend,
    databaseUrl,
    async dispose() {
      await broker.dispose();
      await proxy.close();
      await backend.dispose();
    },
  };
}
