// A broker on a database of its own whose connections pass through the test
// proxy, which can refuse, end, withhold or stall them (testkit's postgres-proxy.ts).
import {
  freshBackend,
  PeerPool,
  setupMesh,
  startPostgresProxy,
  TestBroker,
  type PostgresProxy,
  type SetupMember,
  type TestBackend,
  type TestPeer,
} from "@switchboard/testkit";

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

export interface PairBehindProxy extends BrokerBehindProxy {
  sender: TestPeer;
  /** Acks what it is pushed. */
  recipient: TestPeer;
  recipientKey: string;
}

/**
 * A sender and a recipient on a broker behind the proxy, the `warmUp`
 * messages sent, pushed and acked: the pools then hold open connections.
 */
export async function pairBehindProxy(env: Record<string, string>, warmUp: string[]): Promise<PairBehindProxy> {
  const behind = await brokerBehindProxy(env);
  const peers = new PeerPool();
  const dispose = async () => {
    await peers.closeAll();
    await behind.dispose();
  };
  try {
    const { mesh, members } = await setupMesh(behind.broker.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await peers.connect(behind.broker.wsUrl, a, mesh.id);
    const recipient = await peers.connect(behind.broker.wsUrl, b, mesh.id, { autoAck: true });
    for (const text of warmUp) {
      const reply = await sender.send(b.pubkey, { ciphertext: Buffer.from(text).toString("base64") });
      if (reply.type !== "ack") throw new Error(`a warm-up send was answered ${JSON.stringify(reply)}`);
    }
    await recipient.waitForPushes(warmUp.length);
    return { ...behind, sender, recipient, recipientKey: b.pubkey, dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}
