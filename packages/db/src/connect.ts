// One connect() for both backends: postgres.js when DATABASE_URL is set,
// PGlite (Postgres in WebAssembly) in DATA_DIR otherwise (embedded.ts). Both run drizzle's
// `sql` queries and return rows of the same shapes.
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { errorCode, isConnectionLost, neverReachedDatabase } from "./connection-errors.ts";
import type { Database, Executor } from "./database.ts";
import { connectEmbedded } from "./embedded.ts";
import { PLANNER_SETTINGS } from "./planner-settings.ts";
import * as schema from "./schema.ts";
import { toQuery, type Statement } from "./statement.ts";

export interface ConnectOptions {
  databaseUrl?: string | undefined;
  dataDir: string;
  /** Connections in the postgres.js pool. */
  poolSize?: number;
}

// drizzle runs raw SQL unprepared, so Postgres would parse and plan the
// broker's batch statements on every call; as named prepared statements
// (cached per connection by postgres.js) they are planned once.
function preparedExecutorOf(client: postgres.Sql | postgres.TransactionSql): Executor {
  return {
    async rows<T>(query: Statement): Promise<T[]> {
      const { sql: text, params } = toQuery(query);
      return (await client.unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare: true })) as unknown as T[];
    },
  };
}

// Seconds before reconnecting. postgres.js's default grows to 20 s, counting
// the failures of every connection of the pool (health pings included), and the
// listening connection shares it: after an outage of a few seconds wake-ups,
// revocations and session replacements would be lost for up to 20 s more.
// Capped at 1 s, so the listener is back about a second after the database.
const reconnectBackoff = (retries: number) => Math.min(0.05 * 2 ** retries, 1) * (0.5 + Math.random() / 2);


// Work that certainly did nothing in the database runs once more, on another
// connection: right after a restart the pool can hand it a connection opened
// while the server was still starting, or one the server has ended. While
// the server is away the second try fails as fast as the first, and its
// error is the one returned. A connect timeout is never tried again: that
// would keep the caller waiting as long once more.
async function onceMoreIf<T>(work: () => Promise<T>, didNothing: (error: unknown) => boolean): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (errorCode(error) === "CONNECT_TIMEOUT" || !didNothing(error)) throw error;
    return await work();
  }
}

// A statement whose connection the server refused (starting up, shutting
// down, not listening) never reached it. Any other lost connection may have
// come after it committed.
function retryingRefused(executor: Executor): Executor {
  return { rows: (query) => onceMoreIf(() => executor.rows(query), neverReachedDatabase) };
}

// How often the listening connection is asked something, so that the
// silence bound (closeSilentConnectionsAfter) also finds it gone.
const LISTEN_PROBE_MS = 5000;

/** The client postgres.js opened for LISTEN (it keeps it on `listen.sql`), once something listens. */
function listeningClient(client: postgres.Sql): postgres.Sql | undefined {
  return (client.listen as unknown as { sql?: postgres.Sql }).sql;
}

function connectPostgres(url: string, poolSize: number): Database {
  const client = postgres(url, {
    max: poolSize,
    connect_timeout: 5,
    idle_timeout: 30,
    backoff: reconnectBackoff,
    onnotice: () => {},
    connection: PLANNER_SETTINGS,
  });
  // drizzle installs its type parsers on the clients, so both drivers return the same shapes.
  drizzlePostgres(client, { schema });
  const relaxedClient = postgres(url, {
    max: Math.max(2, Math.ceil(poolSize / 2)),
    connect_timeout: 5,
    idle_timeout: 30,
    backoff: reconnectBackoff,
    onnotice: () => {},
    connection: { ...PLANNER_SETTINGS, synchronous_commit: "off" },
  });
  drizzlePostgres(relaxedClient, { schema });
  const probes = new Set<ReturnType<typeof setInterval>>();
  return {
    kind: "postgres",
    relaxed: retryingRefused(preparedExecutorOf(relaxedClient)),
    ...retryingRefused(preparedExecutorOf(client)),
    // The work starts only once BEGIN is answered: a transaction whose BEGIN
    // met a lost connection, refused or ended, ran none of it and committed
    // nothing. Work that began is never run again.
    transaction: (work) => {
      let begun = false;
      const run = () =>
        client.begin((tx) => {
          begun = true;
          return work(preparedExecutorOf(tx));
        }) as Promise<never>;
      return onceMoreIf(run, (error) => !begun && isConnectionLost(error));
    },
    closeSilentConnectionsAfter(seconds) {
      // The patched driver reads it as each query is sent (patches/postgres@3.4.9.patch).
      for (const c of [client, relaxedClient]) Object.assign(c.options, { answer_timeout: seconds });
    },
    async listen(channel, onNotify, onListen) {
      const sub = await client.listen(channel, (payload) => onNotify(payload), onListen);
      // The listening connection only reads: gone silent (a failover) it would
      // wait for notifications for as long as TCP takes to give up. A
      // statement on it now and then owes an answer, so the silence bound
      // closes it, and postgres.js listens again on a new connection.
      const probe = setInterval(() => void listeningClient(client)?.unsafe("SELECT 1").catch(() => {}), LISTEN_PROBE_MS);
      probe.unref();
      probes.add(probe);
      return () => {
        clearInterval(probe);
        probes.delete(probe);
        return sub.unlisten();
      };
    },
    // A statement still running after a second is cut off: by the time the
    // broker closes its pool its sends were answered, and what may be left is
    // a sweep held by a lock, which the next instance's sweep repeats.
    async close() {
      for (const probe of probes) clearInterval(probe);
      await Promise.all([client.end({ timeout: 1 }), relaxedClient.end({ timeout: 1 })]);
    },
  };
}

export async function connect(options: ConnectOptions): Promise<Database> {
  if (options.databaseUrl) return connectPostgres(options.databaseUrl, options.poolSize ?? 10);
  return connectEmbedded(options.dataDir);
}
