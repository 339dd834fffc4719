// One connect() for both backends: postgres.js when DATABASE_URL is set,
// PGlite (Postgres in WebAssembly) in DATA_DIR otherwise. Both run drizzle's
// `sql` queries and return rows of the same shapes.
import { PGlite, types, type Transaction } from "@electric-sql/pglite";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { errorCode, isConnectionLost, neverReachedDatabase } from "./connection-errors.ts";
import { withoutSettings } from "./database-url.ts";
import { linkInsidePgdata, lockDataDir, unwritableDataDir } from "./dir-lock.ts";
import { EmbeddedStatements } from "./embedded-statements.ts";
import { openCluster } from "./embedded-template.ts";
import * as schema from "./schema.ts";
import { toQuery, type Statement } from "./statement.ts";

/** Something that runs SQL: the database itself or an open transaction. */
export interface Executor {
  rows<T>(query: Statement): Promise<T[]>;
}

export interface Database extends Executor {
  readonly kind: "postgres" | "embedded";
  /**
   * Runs statements whose commit does not wait for the WAL to reach disk
   * (synchronous_commit off). Only for writes whose loss in a crash is
   * harmless: a lease or an ack that is lost only causes a redelivery.
   */
  readonly relaxed: Executor;
  transaction<T>(work: (tx: Executor) => Promise<T>): Promise<T>;
  /**
   * From now on a connection that owes answers and hears nothing from the
   * server for `seconds` is closed as lost, and the pool's idle ones with
   * it (a failover or a partition leaves them open, silent, for as long as
   * TCP takes to give up: many minutes). Set once migrations are done: one
   * may run, or wait for another instance's, for longer. PGlite, in this
   * process, has no connections to lose.
   */
  closeSilentConnectionsAfter(seconds: number): void;
  /** Subscribes on the dedicated listening connection; onListen runs after every (re)subscribe. */
  listen(channel: string, onNotify: (payload: string) => void, onListen?: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface ConnectOptions {
  databaseUrl?: string | undefined;
  dataDir: string;
  /** Connections in the postgres.js pool. */
  poolSize?: number;
  /**
   * The application_name of every connection, the listener's too
   * (applicationNameOf): what another instance ends them by.
   */
  applicationName?: string | undefined;
}

// Dates, times and intervals come back as Postgres prints them, as drizzle has
// postgres.js return them. drizzle's own PGlite driver passes these parsers with
// every query, which costs PGlite about as much CPU again as a small query;
// installed once on the client, they cost nothing per query.
const asText = (value: string) => value;
const ARRAY_OIDS = { numeric: 1231, timestamp: 1115, timestamptz: 1185, interval: 1187, date: 1182 };
const PGLITE_PARSERS = Object.fromEntries(
  [types.TIMESTAMP, types.TIMESTAMPTZ, types.INTERVAL, types.DATE, ...Object.values(ARRAY_OIDS)].map((oid) => [oid, asText]),
);

function pgliteExecutorOf(statements: EmbeddedStatements): Executor {
  return {
    rows<T>(query: Statement): Promise<T[]> {
      const { sql: text, params } = toQuery(query);
      return statements.rows<T>(text, params);
    },
  };
}

// A transaction's statements go through PGlite's own transaction object,
// which keeps its state (ended, rolled back) and runs them unnamed.
function pgliteTransactionExecutorOf(tx: Transaction): Executor {
  return {
    async rows<T>(query: Statement): Promise<T[]> {
      const { sql: text, params } = toQuery(query);
      return (await tx.query<T>(text, params)).rows;
    },
  };
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

// Both pools plan each prepared statement once per connection, and keep the
// plan until Postgres invalidates it (an ANALYZE of a table it reads). Each
// statement reaches its rows by index probes, written so that no plan of it
// can do otherwise: batch inputs carry LIMIT n, rows updated are named by id
// in a list rather than joined back to their table, and a sequential scan is
// planned only where no index serves. A plan can be made while the
// statistics say a table is empty (a quiet deployment's tables, pruned,
// vacuumed and analyzed), where a scan costs nothing: planned then, the send
// statement read every presence, delivery and message for each send, and an
// ack, a claim and a requeue the whole deliveries table, until the next
// ANALYZE (pool-plans.test.ts holds both pools' statements to this). Planned
// at every call instead, the claims and acks cost as much in planning as in
// execution, and met such statistics as badly.
// Neither compiles a plan to machine code (JIT): the broker's statements read
// few rows, and a compile costs tens of milliseconds, paid again at every run
// of a statement whose estimate passes jit_above_cost (a housekeeping prune
// over a large table did, every tick).
export const PLANNER_SETTINGS = { plan_cache_mode: "force_generic_plan", enable_seqscan: "off", jit: "off" } as const;

// A transaction whose client stopped talking mid-way (an instance frozen by
// SIGSTOP or a paused VM, between two statements or as one returned) keeps
// its row locks for as long as the client sleeps, and every other instance
// waits on them: hellos of its meshes, the reap of its presences. The server
// ends such a session after this long, rolling the transaction back; no
// transaction of the broker's pauses between its statements for nearly as
// long, and one that is ended so fails as on any lost connection.
const SERVER_SETTINGS = { ...PLANNER_SETTINGS, idle_in_transaction_session_timeout: 10_000 } as const;

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

/**
 * postgres.js keeps a channel whose LISTEN failed (the server had no
 * connection left for the listener, say), with its listener: listening again
 * awaited the same failure, or, once the driver had listened again by itself
 * (it does as a listening connection closes), added a second listener, and
 * every notice was heard twice. Forgotten, a listen tried again starts
 * afresh. Only the caller's own listen forgets: the driver's re-listens keep
 * theirs, which its next close tries again.
 */
function forgetFailedListen(client: postgres.Sql, channel: string, listener: (payload: string) => void): void {
  const channels = (client.listen as unknown as { channels?: Record<string, { listeners: Array<{ fn: unknown }> }> }).channels;
  if (channels?.[channel]?.listeners.some((l) => l.fn === listener)) delete channels[channel];
}

/**
 * The server settings each connection of the broker's pools is opened with,
 * which a setting of the same name in DATABASE_URL's query does not replace:
 * the reap finds an instance's sessions by their application_name, and the
 * statements are written for these plans and this timeout.
 */
export const BROKER_SETTINGS: readonly string[] = [...Object.keys(SERVER_SETTINGS), "application_name"];

function connectPostgres(givenUrl: string, poolSize: number, applicationName: string | undefined): Database {
  // The listener is opened with the pool's options, this name with them.
  const settings = applicationName === undefined ? SERVER_SETTINGS : { ...SERVER_SETTINGS, application_name: applicationName };
  const { url } = withoutSettings(givenUrl, BROKER_SETTINGS);
  // The relaxed pool's commits skip the WAL flush whatever the URL says of it.
  const relaxedUrl = withoutSettings(url, ["synchronous_commit"]).url;
  const client = postgres(url, {
    max: poolSize,
    connect_timeout: 5,
    idle_timeout: 30,
    backoff: reconnectBackoff,
    onnotice: () => {},
    connection: settings,
  });
  // drizzle installs its type parsers on the clients, so both drivers return the same shapes.
  drizzlePostgres(client, { schema });
  const relaxedClient = postgres(relaxedUrl, {
    max: Math.max(2, Math.ceil(poolSize / 2)),
    connect_timeout: 5,
    idle_timeout: 30,
    backoff: reconnectBackoff,
    onnotice: () => {},
    connection: { ...settings, synchronous_commit: "off" },
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
      const listener = (payload: string) => onNotify(payload);
      const sub = await client.listen(channel, listener, onListen).catch((error: unknown) => {
        forgetFailedListen(client, channel, listener);
        throw error;
      });
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

// PGlite touches all of its shared buffers as it starts: at Postgres's default
// of 128 MB an idle embedded broker held about 290 MB of memory (180 MB at 32
// MB) and each start cost an eighth more CPU. 32 MB (4,096 pages) holds a
// mesh's hot rows; older pages come from the operating system's file cache.
// Its statements are planned as the pools' are (PLANNER_SETTINGS): prepared
// once (embedded-statements.ts), with a generic plan kept for every call.
const EMBEDDED_START_PARAMS = [
  ...PGlite.defaultStartParams,
  "-c",
  "shared_buffers=32MB",
  ...Object.entries(PLANNER_SETTINGS).flatMap(([name, value]) => ["-c", `${name}=${value}`]),
];

async function connectEmbedded(dataDir: string): Promise<Database> {
  const release = lockDataDir(dataDir);
  try {
    const client = await openCluster(dataDir, EMBEDDED_START_PARAMS);
    // Set after create: starting, PGlite sets the parsers of every array type, over any it was given.
    Object.assign(client.parsers, PGLITE_PARSERS);
    const executor = pgliteExecutorOf(new EmbeddedStatements(client));
    return {
      kind: "embedded",
      // One connection: relaxed statements share it.
      relaxed: executor,
      ...executor,
      transaction: (work) => client.transaction((tx) => work(pgliteTransactionExecutorOf(tx))),
      closeSilentConnectionsAfter: () => {},
      async listen(channel, onNotify, onListen) {
        const unlisten = await client.listen(channel, onNotify);
        onListen?.();
        return unlisten;
      },
      async close() {
        try {
          await client.close();
        } finally {
          release();
        }
      },
    };
  } catch (error) {
    release();
    throw unwritableDataDir(dataDir) ?? linkInsidePgdata(dataDir) ?? startError(error);
  }
}

/** PGlite's file system throws objects that are no Error (an errno alone): logged as they are, they read "[object Object]". */
function startError(error: unknown): unknown {
  if (error instanceof Error) return error;
  return new Error(`the embedded database could not be opened: ${JSON.stringify(error) ?? String(error)}`, { cause: error });
}

export async function connect(options: ConnectOptions): Promise<Database> {
  if (options.databaseUrl) return connectPostgres(options.databaseUrl, options.poolSize ?? 10, options.applicationName);
  return connectEmbedded(options.dataDir);
}
