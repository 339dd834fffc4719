// A TCP proxy in front of a Postgres server that can end a connection at one
// of two chosen moments. As a server terminating the backend would (57P01,
// then the socket closes): right after the server said it is ready, when the
// client's first query reads the server's types. postgres.js starts every new
// connection that way (fetch_types), and a connection lost there leaves a
// rejection nobody holds. Or as a network failing after the commit: a query
// carrying a chosen mark reaches the server, which runs and commits it, and
// the connection drops before its answer reaches the client. It can also
// answer new connections as a server still starting does (57P03), and end a
// connection as the server would just as a chosen query arrives, the query
// never passed on. And it can stall as a network partition does: every
// connection stays open and no byte passes either way until it resumes; or
// stall only the connections open now, as a failover leaves them.
import { connect, createServer, type Server, type Socket } from "node:net";

const READY_FOR_QUERY = 0x5a; // 'Z'
const TYPE_QUERY_MARK = Buffer.from("pg_catalog.pg_type");

/** What a server that is still starting answers a new connection's startup message, before it closes. */
const STARTING_UP = errorResponse({ S: "FATAL", V: "FATAL", C: "57P03", M: "the database system is starting up" });

/** What a server sends a backend it terminates (pg_terminate_backend, a fast shutdown) before it closes. */
const TERMINATED = errorResponse({ S: "FATAL", V: "FATAL", C: "57P01", M: "terminating connection due to administrator command" });

function errorResponse(fields: Record<string, string>): Buffer {
  const body = Buffer.concat([...Object.entries(fields).map(([k, v]) => Buffer.from(`${k}${v}\0`)), Buffer.from([0])]);
  const head = Buffer.alloc(5);
  head[0] = 0x45; // 'E'
  head.writeUInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

export interface PostgresProxy {
  /** `serverUrl` with the proxy's host and port in place of the server's. */
  url(serverUrl: string): string;
  /** The next `count` connections that ask for the server's types are terminated instead. */
  cutTypeQueries(count: number): void;
  /** Connections terminated that way so far. */
  readonly cut: number;
  /**
   * The next query whose bytes contain `mark` is run by the server, and its
   * connection is destroyed once the server is ready again (for a statement
   * in a transaction of its own, once it committed), without a byte of the
   * answer reaching the client.
   */
  loseAnswerTo(mark: string): void;
  /** Answers lost that way so far. */
  readonly lost: number;
  /**
   * The next query whose bytes contain `mark` never reaches the server: its
   * connection is terminated as the server terminates a backend (57P01).
   */
  terminateOn(mark: string): void;
  /** Connections terminated that way so far. */
  readonly terminated: number;
  /** The next `count` new connections are answered as a server still starting answers them (57P03), and closed. */
  refuseConnections(count: number): void;
  /** Connections refused that way so far. */
  readonly refused: number;
  /**
   * From now on no byte passes in either direction, as in a network
   * partition: every socket stays open, nothing is read from it, and a new
   * connection is accepted but neither read nor passed on.
   */
  stall(): void;
  /**
   * The connections open now stall; new ones are served. So a failover
   * looks to a pool whose server went away without a word: the sockets it
   * holds stay open and silent, a new connection reaches the new server.
   */
  stallOpen(): void;
  /** Ends a stall: what was sent meanwhile passes on, and the connections accepted meanwhile are served. */
  resume(): void;
  /** The local ports of the proxy's open connections to the server: the client_port of their backends in pg_stat_activity. */
  upstreamPorts(): number[];
  close(): Promise<void>;
}

/** Reads the server's messages as they come until one is ReadyForQuery. */
function scanForReady(state: { buffer: Buffer; ready: boolean }, chunk: Buffer): void {
  state.buffer = Buffer.concat([state.buffer, chunk]);
  while (!state.ready && state.buffer.length >= 5) {
    const length = state.buffer.readUInt32BE(1);
    if (state.buffer.length < 1 + length) return;
    state.ready = state.buffer[0] === READY_FOR_QUERY;
    state.buffer = state.buffer.subarray(1 + length);
  }
}

export async function startPostgresProxy(server: { host: string; port: number }): Promise<PostgresProxy> {
  let toCut = 0;
  let cut = 0;
  const marks: Buffer[] = [];
  let lost = 0;
  const ends: Buffer[] = [];
  let terminated = 0;
  const sockets = new Set<Socket>();
  const upstreams = new Set<Socket>();
  let toRefuse = 0;
  let refused = 0;
  let stalled = false;
  /** Connections accepted during a stall: served once it ends. */
  const held: Socket[] = [];
  const watch = (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
  };
  // Nothing reads a held socket yet: its bytes wait in the kernel, as in flight.
  const hold = (client: Socket) => {
    client.on("error", () => {});
    held.push(client);
  };
  const serve = (client: Socket) => {
    if (toRefuse > 0) {
      toRefuse--;
      refused++;
      watch(client);
      client.once("data", () => client.end(STARTING_UP));
      return;
    }
    const upstream = connect(server.port, server.host);
    upstreams.add(upstream);
    upstream.on("close", () => upstreams.delete(upstream));
    const state = { buffer: Buffer.alloc(0), ready: false };
    // Set once a marked query went upstream: the server's answer is read, not forwarded.
    let withheld: { buffer: Buffer; ready: boolean } | null = null;
    for (const s of [client, upstream]) watch(s);
    upstream.on("data", (chunk: Buffer) => {
      if (withheld !== null) {
        scanForReady(withheld, chunk);
        if (withheld.ready) {
          lost++;
          upstream.destroy();
          client.destroy();
        }
        return;
      }
      client.write(chunk);
      if (!state.ready) scanForReady(state, chunk);
    });
    client.on("data", (chunk: Buffer) => {
      const mark = withheld === null && state.ready ? marks.findIndex((m) => chunk.includes(m)) : -1;
      if (mark >= 0) {
        marks.splice(mark, 1);
        withheld = { buffer: Buffer.alloc(0), ready: false };
      }
      const end = state.ready ? ends.findIndex((m) => chunk.includes(m)) : -1;
      const cutTypes = state.ready && toCut > 0 && chunk.includes(TYPE_QUERY_MARK);
      if (end < 0 && !cutTypes) return void upstream.write(chunk);
      // The query never goes upstream: the connection ends as a terminated backend's does.
      if (end >= 0) {
        ends.splice(end, 1);
        terminated++;
      } else {
        toCut--;
        cut++;
      }
      upstream.destroy();
      client.end(TERMINATED);
    });
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  };
  const listener: Server = createServer((client) => (stalled ? hold(client) : serve(client)));
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const address = listener.address();
  if (address === null || typeof address === "string") throw new Error("the proxy has no TCP address");
  return {
    url(serverUrl) {
      const url = new URL(serverUrl);
      url.hostname = "127.0.0.1";
      url.port = String(address.port);
      return url.toString();
    },
    cutTypeQueries(count) {
      toCut += count;
    },
    get cut() {
      return cut;
    },
    loseAnswerTo(mark) {
      marks.push(Buffer.from(mark));
    },
    get lost() {
      return lost;
    },
    terminateOn(mark) {
      ends.push(Buffer.from(mark));
    },
    get terminated() {
      return terminated;
    },
    refuseConnections(count) {
      toRefuse += count;
    },
    get refused() {
      return refused;
    },
    // A paused socket is not read: what the other side sends waits, and so
    // does its end, until it is resumed.
    stall() {
      stalled = true;
      for (const s of sockets) s.pause();
    },
    stallOpen() {
      for (const s of sockets) s.pause();
    },
    resume() {
      stalled = false;
      for (const s of sockets) s.resume();
      for (const client of held.splice(0)) if (!client.destroyed) serve(client);
    },
    upstreamPorts() {
      return [...upstreams].map((s) => s.localPort).filter((port) => port !== undefined);
    },
    async close() {
      for (const s of [...sockets, ...held]) s.destroy();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}
