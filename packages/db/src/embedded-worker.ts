// The embedded database's own thread. PGlite runs Postgres in WebAssembly on
// the thread that calls it: on the broker's thread, every statement's
// execution was time in which no socket was served, and under load the
// event loop waited behind the database. Here it runs beside it, and the
// broker's thread only posts statements and reads their rows
// (embedded.ts). Requests come in order and each is started in that order;
// PGlite's own locks keep a statement out of another caller's transaction.
import { PGlite, types, type Transaction } from "@electric-sql/pglite";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { EmbeddedStatements } from "./embedded-statements.ts";
import { loadTemplate } from "./embedded-template.ts";
import { toWire, type Call, type FromWorker, type Request } from "./embedded-wire.ts";
import { PLANNER_SETTINGS } from "./planner-settings.ts";

declare const self: Worker;

// Dates, times and intervals come back as Postgres prints them, as drizzle has
// postgres.js return them. drizzle's own PGlite driver passes these parsers with
// every query, which costs PGlite about as much CPU again as a small query;
// installed once on the client, they cost nothing per query.
const asText = (value: string) => value;
const ARRAY_OIDS = { numeric: 1231, timestamp: 1115, timestamptz: 1185, interval: 1187, date: 1182 };
const PGLITE_PARSERS = Object.fromEntries(
  [types.TIMESTAMP, types.TIMESTAMPTZ, types.INTERVAL, types.DATE, ...Object.values(ARRAY_OIDS)].map((oid) => [oid, asText]),
);

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

interface OpenTransaction {
  tx: Transaction;
  /** Ends the transaction's callback: resolved, PGlite commits; rejected, it rolls back. */
  end: (commit: boolean) => void;
  /** The transaction's outcome: settled once PGlite committed or rolled back. */
  done: Promise<void>;
}

/** Rejects a transaction's callback so that PGlite rolls it back; not an error of its own. */
const ROLLBACK = Symbol("rollback");

let client: PGlite | undefined;
let statements: EmbeddedStatements | undefined;
const transactions = new Map<number, OpenTransaction>();
const subscriptions = new Map<number, () => Promise<void>>();
let lastId = 0;

const post = (message: FromWorker) => self.postMessage(message);

function opened(): { client: PGlite; statements: EmbeddedStatements } {
  if (!client || !statements) throw new Error("the embedded database is not open");
  return { client, statements };
}

function transaction(tx: number): OpenTransaction {
  const open = transactions.get(tx);
  if (!open) throw new Error(`transaction ${tx} is not open`);
  return open;
}

async function open(pgdata: string): Promise<null> {
  const fresh = !existsSync(join(pgdata, "PG_VERSION"));
  const template = fresh ? await loadTemplate() : undefined;
  client = await PGlite.create(pgdata, { startParams: EMBEDDED_START_PARAMS, ...(template ? { loadDataDir: template } : {}) });
  // Set after create: starting, PGlite sets the parsers of every array type, over any it was given.
  Object.assign(client.parsers, PGLITE_PARSERS);
  statements = new EmbeddedStatements(client);
  return null;
}

// Resolves with the transaction's id once BEGIN ran; the callback then waits
// for the broker's thread to end it.
function begin(): Promise<number> {
  const id = ++lastId;
  return new Promise((resolve, reject) => {
    let begun = false;
    const done = opened().client.transaction(
      (tx) =>
        new Promise<void>((commit, rollback) => {
          begun = true;
          transactions.set(id, { tx, end: (ok) => (ok ? commit() : rollback(ROLLBACK)), done });
          resolve(id);
        }),
    );
    done.catch((error: unknown) => {
      if (!begun) reject(error);
    });
  });
}

async function end(id: number, commit: boolean): Promise<null> {
  const open = transaction(id);
  open.end(commit);
  try {
    await open.done;
  } catch (error) {
    if (error !== ROLLBACK) throw error;
  } finally {
    transactions.delete(id);
  }
  return null;
}

async function listen(channel: string): Promise<number> {
  const id = ++lastId;
  subscriptions.set(id, await opened().client.listen(channel, (payload) => post({ subscription: id, payload })));
  return id;
}

async function unlisten(id: number): Promise<null> {
  await subscriptions.get(id)?.();
  subscriptions.delete(id);
  return null;
}

async function close(): Promise<null> {
  await client?.close();
  client = undefined;
  statements = undefined;
  return null;
}

async function answer(request: Request): Promise<unknown> {
  switch (request.kind) {
    case "open":
      return open(request.pgdata);
    case "rows":
      return opened().statements.rows(request.text, request.params);
    case "begin":
      return begin();
    case "tx-rows":
      return (await transaction(request.tx).tx.query(request.text, request.params)).rows;
    case "end":
      return end(request.tx, request.commit);
    case "listen":
      return listen(request.channel);
    case "unlisten":
      return unlisten(request.subscription);
    case "close":
      return close();
  }
}

self.onmessage = (event: MessageEvent<Call>) => {
  const { id } = event.data;
  answer(event.data).then(
    (value) => post({ id, ok: true, value }),
    (error: unknown) => post({ id, ok: false, error: toWire(error) }),
  );
};
