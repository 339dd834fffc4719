// The embedded default: PGlite in DATA_DIR, run on a thread of its own
// (embedded-worker.ts), so that the broker's event loop serves its sockets
// while a statement executes. This side posts each statement and settles
// its promise with the rows or the error that come back.
import { join } from "node:path";
import type { Database, Executor } from "./database.ts";
import { lockDataDir } from "./dir-lock.ts";
import { fromWire, type FromWorker, type Request } from "./embedded-wire.ts";
import { toQuery, type Statement } from "./statement.ts";

interface Waiting {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/** The database's thread, and the requests it has not answered yet. */
class DatabaseThread {
  private readonly worker = new Worker(new URL("./embedded-worker.ts", import.meta.url).href);
  private readonly waiting = new Map<number, Waiting>();
  private readonly listeners = new Map<number, (payload: string) => void>();
  private lastId = 0;
  /** Why no request can be answered any more, once the thread has ended. */
  private ended: Error | undefined;

  constructor() {
    // The thread keeps the process alive only while it owes an answer: an
    // idle database must not hold a process that is done.
    this.worker.unref();
    this.worker.onmessage = (event: MessageEvent<FromWorker>) => this.received(event.data);
    this.worker.onerror = (event) => this.end(new Error(`the embedded database's thread failed: ${event.message}`));
    this.worker.addEventListener("close", () => this.end(new Error("the embedded database's thread has ended")));
  }

  call<T>(request: Request): Promise<T> {
    if (this.ended) return Promise.reject(this.ended);
    const id = ++this.lastId;
    if (this.waiting.size === 0) this.worker.ref();
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.worker.postMessage({ ...request, id });
    });
  }

  async listen(channel: string, onNotify: (payload: string) => void): Promise<number> {
    const subscription = await this.call<number>({ kind: "listen", channel });
    this.listeners.set(subscription, onNotify);
    return subscription;
  }

  async unlisten(subscription: number): Promise<void> {
    this.listeners.delete(subscription);
    await this.call({ kind: "unlisten", subscription });
  }

  terminate(): void {
    this.end(new Error("the embedded database is closed"));
    this.worker.terminate();
  }

  private received(message: FromWorker): void {
    if ("subscription" in message) {
      this.listeners.get(message.subscription)?.(message.payload);
      return;
    }
    const waiting = this.waiting.get(message.id);
    if (!waiting) return;
    this.waiting.delete(message.id);
    if (this.waiting.size === 0) this.worker.unref();
    if (message.ok) waiting.resolve(message.value);
    else waiting.reject(fromWire(message.error));
  }

  private end(reason: Error): void {
    this.ended ??= reason;
    for (const waiting of this.waiting.values()) waiting.reject(reason);
    this.waiting.clear();
    this.worker.unref();
  }
}

function rowsOf<T>(thread: DatabaseThread, query: Statement, tx?: number): Promise<T[]> {
  const { sql: text, params } = toQuery(query);
  return thread.call<T[]>(tx === undefined ? { kind: "rows", text, params } : { kind: "tx-rows", tx, text, params });
}

// As PGlite's own transaction(): a work that throws is rolled back, and its
// error is the one thrown (a failed rollback would only hide it).
async function inTransaction<T>(thread: DatabaseThread, work: (tx: Executor) => Promise<T>): Promise<T> {
  const tx = await thread.call<number>({ kind: "begin" });
  let result: T;
  try {
    result = await work({ rows: (query) => rowsOf(thread, query, tx) });
  } catch (error) {
    await thread.call({ kind: "end", tx, commit: false }).catch(() => {});
    throw error;
  }
  await thread.call({ kind: "end", tx, commit: true });
  return result;
}

export async function connectEmbedded(dataDir: string): Promise<Database> {
  const release = lockDataDir(dataDir);
  const thread = new DatabaseThread();
  try {
    await thread.call({ kind: "open", pgdata: join(dataDir, "pgdata") });
  } catch (error) {
    thread.terminate();
    release();
    throw error;
  }
  const executor: Executor = { rows: (query) => rowsOf(thread, query) };
  return {
    kind: "embedded",
    // One connection: relaxed statements share it.
    relaxed: executor,
    ...executor,
    transaction: (work) => inTransaction(thread, work),
    closeSilentConnectionsAfter: () => {},
    async listen(channel, onNotify, onListen) {
      const subscription = await thread.listen(channel, onNotify);
      onListen?.();
      return () => thread.unlisten(subscription);
    },
    async close() {
      try {
        await thread.call({ kind: "close" });
      } finally {
        thread.terminate();
        release();
      }
    },
  };
}
