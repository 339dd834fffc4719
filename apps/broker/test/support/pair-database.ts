// Two brokers on one Postgres server (useTestBrokerPair), with what the
// tests of such a pair read the database and open sockets with: a direct
// connection to the database, and the peers they connect, both closed
// after the file's tests.
import { afterAll, beforeAll } from "bun:test";
import { useTestBrokerPair, type TestBroker, type TestPeer } from "@switchboard/testkit";
import postgres from "postgres";

export interface PairWithDatabase {
  readonly a: TestBroker;
  readonly b: TestBroker;
  /** The pair's database, read directly. */
  readonly sql: postgres.Sql;
  /** Peers to close once the file's tests are over. */
  readonly peers: TestPeer[];
}

export function usePairWithDatabase(env: Record<string, string>, connections = 1): PairWithDatabase {
  const pair = useTestBrokerPair(env);
  let sql: postgres.Sql | undefined;
  const peers: TestPeer[] = [];
  beforeAll(() => {
    sql = postgres(pair.a.backend.databaseUrl!, { max: connections, onnotice: () => {} });
  });
  afterAll(async () => {
    await Promise.all(peers.map((p) => p.close()));
    await sql?.end();
  });
  return {
    a: pair.a,
    get b() {
      return pair.b;
    },
    get sql() {
      if (!sql) throw new Error("the pair has not been started");
      return sql;
    },
    peers,
  };
}
