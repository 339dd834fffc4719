// A starting instance readies its pool before it takes traffic: every
// connection opened, and both send statements (the direct one and the one
// for any batch) planned on each for the small batches a light load
// writes. Otherwise the first sends after a start (a restart under load
// brings every peer back at once) each meet a connection still to open or
// a statement still to plan — milliseconds of planning, per connection and
// per batch size — and the sends behind them queue: the latency bench's
// first second ran at several times its steady p50. The embedded database
// is one connection whose statements are prepared once too, so it is warmed
// the same way: its first sends otherwise planned them, with its caches
// still cold, and the bench's p99 of a short run doubled.
import type { Database } from "@switchboard/db";
import type { Logger } from "../log.ts";
import { prepareEnqueue } from "../store/queue/index.ts";
import { settleWithin } from "./timing.ts";

/** The batch sizes prepared: each is a statement of its own (batchLimit), and larger batches come only under load, which pays their planning once. */
export const WARMED_BATCH_SIZES = [1, 2, 4, 8] as const;

/** At most this long: a slow start is logged and goes on, its connections warming as they are used. */
const WARM_UP_TIMEOUT_MS = 5000;

export interface WarmUpOptions {
  /** The main pool's size: that many statements run at once open that many connections. */
  connections: number;
  instanceId: string;
  leaseSeconds: number;
}

export async function warmUp(db: Database, options: WarmUpOptions, log: Logger): Promise<void> {
  const connections = db.kind === "postgres" ? options.connections : 1;
  const holders = { instanceId: options.instanceId, unavailable: [], leaseSeconds: options.leaseSeconds, notify: false };
  const started = performance.now();
  // Each round runs one statement per connection at once: none is idle when
  // the next is asked for, so the pool opens a connection for each.
  const rounds = (async () => {
    for (const size of WARMED_BATCH_SIZES) {
      for (const recipientsHere of [false, true]) {
        await Promise.all(Array.from({ length: connections }, () => prepareEnqueue(db, { ...holders, recipientsHere }, size)));
      }
    }
    return "done" as const;
  })().catch((error: unknown) => {
    log.warn({ err: error }, "pool warm-up failed");
    return "failed" as const;
  });
  const outcome = await settleWithin(rounds, WARM_UP_TIMEOUT_MS, () => "late" as const);
  const ms = Math.round(performance.now() - started);
  if (outcome === "done") log.info({ connections, ms }, "pool warmed");
  if (outcome === "late") log.warn({ connections, ms }, "pool warm-up timed out");
}
