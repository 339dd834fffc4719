// Group commit. Items submitted while a flush is running wait and go out
// together in the next one: one transaction for many sends, claims or acks.
// At low load a batch is a single item and nothing waits for a timer.
// Beside a flush heavy with one key's items, or one that took half the keys of
// a backlog, another may run (see lanes).
export interface GroupCommit<I, O> {
  submit(item: I): Promise<O>;
  /** Resolves once everything submitted so far has been flushed. */
  drain(): Promise<void>;
}

interface Pending<I, O> {
  item: I;
  /** Its key, its key's half (see BatchWeight.lanes.backlog) and its weight, worked out once when submitted. */
  key: string;
  half: number;
  weight: number;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

/**
 * A bound on what one flush carries besides its count, for items of very
 * different sizes: a batch stops short of `max` (but holds at least one item).
 * Items are grouped by `keyOf`; an item that does not fit holds back the
 * later items of its key, so each key's items are flushed in the order they
 * were submitted, while the items of other keys behind it may still go.
 */
export interface BatchWeight<I> {
  keyOf(item: I): string;
  weightOf(item: I): number;
  max: number;
  /**
   * A flush in which one key's items weigh at least `heavy` lets one more
   * flush start beside it, up to `max` at once. A key is in one flush at a
   * time, so each key's items still go one batch after the other, while one
   * key's heavy statements no longer hold every other key behind them.
   * Batches of many light keys stay one flush at a time: more, smaller
   * commits cost more than they save when the database is the bottleneck.
   *
   * `backlog`: at least this many items waiting as a flush takes its batch
   * mean one flush at a time no longer keeps up. That flush then takes the
   * keys of one half only (split by a hash of the key; the half of the
   * oldest item it may take), and counts as heavy, so the other half's keys
   * go in a flush beside it. Each key is still in one flush at a time.
   */
  lanes?: { max: number; heavy: number; backlog?: number };
}

/** 0 or 1 by a hash of the key: which half of the keys it falls in when a backlog splits them. */
function halfOf(key: string): number {
  let hash = 0;
  for (let i = 0; i < key.length; i++) hash = (hash * 31 + key.charCodeAt(i)) | 0;
  return hash & 1;
}

/**
 * The next batch: the first items in queue order that fit, each key's in
 * order, none of a key being flushed, and with `half` set, only the keys of
 * that half.
 */
function takeBatch<I, O>(
  queue: Pending<I, O>[],
  maxBatch: number,
  weight: BatchWeight<I> | undefined,
  flushing: Set<string>,
  half?: number,
) {
  if (!weight) return { batch: queue.slice(0, maxBatch), rest: queue.slice(maxBatch) };
  const batch: Pending<I, O>[] = [];
  const rest: Pending<I, O>[] = [];
  const heldBack = new Set(flushing);
  let total = 0;
  for (const [i, p] of queue.entries()) {
    if (batch.length >= maxBatch) return { batch, rest: rest.concat(queue.slice(i)) };
    if (half !== undefined && p.half !== half) {
      rest.push(p);
      continue;
    }
    if (heldBack.has(p.key) || (batch.length > 0 && total + p.weight > weight.max)) {
      heldBack.add(p.key);
      rest.push(p);
      continue;
    }
    batch.push(p);
    total += p.weight;
  }
  return { batch, rest };
}

/** The weight of the batch's heaviest key. */
function heaviestKey<I, O>(batch: Pending<I, O>[]): number {
  const byKey = new Map<string, number>();
  for (const p of batch) byKey.set(p.key, (byKey.get(p.key) ?? 0) + p.weight);
  return Math.max(0, ...byKey.values());
}

/** flush gets up to maxBatch items and returns one result per item, in order. */
export function createGroupCommit<I, O>(
  flush: (items: I[]) => Promise<O[]>,
  maxBatch: number,
  weight?: BatchWeight<I>,
): GroupCommit<I, O> {
  const lanes = weight?.lanes;
  let queue: Pending<I, O>[] = [];
  /** Lanes running; counted synchronously, so a lane that found nothing to take frees its place at once. */
  let running = 0;
  let heavyFlushes = 0;
  let drained: Array<() => void> = [];
  /** Keys of the batches being flushed. */
  const flushing = new Set<string>();
  const allowed = () => (lanes ? Math.min(lanes.max, 1 + heavyFlushes) : 1);

  // A lane ends when nothing is left it may take (whatever still waits then
  // belongs to a key another lane is flushing, and that lane takes it next),
  // or when the heavy flush that let it run is over.
  const lane = async () => {
    running++;
    try {
      for (;;) {
        if (running > allowed()) return;
        const backlog = lanes?.backlog !== undefined && queue.length >= lanes.backlog;
        const half = backlog ? queue.find((p) => !flushing.has(p.key))?.half : undefined;
        const { batch, rest } = takeBatch(queue, maxBatch, weight, flushing, half);
        if (batch.length === 0) return;
        queue = rest;
        const keys = new Set(batch.map((p) => p.key));
        for (const key of keys) flushing.add(key);
        const heavy = lanes !== undefined && (half !== undefined || heaviestKey(batch) >= lanes.heavy);
        if (heavy) heavyFlushes++;
        if (heavy && queue.length > 0 && running < allowed()) void lane();
        try {
          const results = await flush(batch.map((p) => p.item));
          if (results.length !== batch.length) throw new Error(`flush returned ${results.length} results for ${batch.length} items`);
          batch.forEach((p, i) => p.resolve(results[i] as O));
        } catch (error) {
          for (const p of batch) p.reject(error);
        } finally {
          for (const key of keys) flushing.delete(key);
          if (heavy) heavyFlushes--;
        }
        // Let the event loop write the replies out before the next flush: an
        // embedded database answers without real I/O, and a chain of flushes
        // would otherwise hold every reply until the queue ran dry.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      running--;
      if (running === 0) {
        const waiting = drained;
        drained = [];
        for (const done of waiting) done();
      }
    }
  };

  return {
    submit(item) {
      return new Promise<O>((resolve, reject) => {
        const key = weight?.keyOf(item) ?? "";
        const half = weight?.lanes?.backlog === undefined ? 0 : halfOf(key);
        queue.push({ item, key, half, weight: weight?.weightOf(item) ?? 0, resolve, reject });
        if (running < allowed()) void lane();
      });
    },
    async drain() {
      while (running > 0) await new Promise<void>((resolve) => drained.push(resolve));
    },
  };
}
