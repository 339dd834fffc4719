// Group commit. Items submitted while a flush is running wait and go out
// together in the next one: one transaction for many sends, claims or acks.
// At low load a batch is a single item and nothing waits for a timer.
export interface GroupCommit<I, O> {
  submit(item: I): Promise<O>;
  /** Resolves once everything submitted so far has been flushed. */
  drain(): Promise<void>;
}

interface Pending<I, O> {
  item: I;
  /** Its key and weight (see BatchWeight), worked out once when submitted. */
  key: string;
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
}

/** The next batch: the first items in queue order that fit, each key's in order. */
function takeBatch<I, O>(queue: Pending<I, O>[], maxBatch: number, weight: BatchWeight<I> | undefined) {
  if (!weight) return { batch: queue.slice(0, maxBatch), rest: queue.slice(maxBatch) };
  const batch: Pending<I, O>[] = [];
  const rest: Pending<I, O>[] = [];
  const heldBack = new Set<string>();
  let total = 0;
  for (const [i, p] of queue.entries()) {
    if (batch.length >= maxBatch) return { batch, rest: rest.concat(queue.slice(i)) };
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

/** flush gets up to maxBatch items and returns one result per item, in order. */
export function createGroupCommit<I, O>(
  flush: (items: I[]) => Promise<O[]>,
  maxBatch: number,
  weight?: BatchWeight<I>,
): GroupCommit<I, O> {
  let queue: Pending<I, O>[] = [];
  let running: Promise<void> | null = null;

  const run = async () => {
    while (queue.length > 0) {
      const { batch, rest } = takeBatch(queue, maxBatch, weight);
      queue = rest;
      try {
        const results = await flush(batch.map((p) => p.item));
        if (results.length !== batch.length) throw new Error(`flush returned ${results.length} results for ${batch.length} items`);
        batch.forEach((p, i) => p.resolve(results[i] as O));
      } catch (error) {
        for (const p of batch) p.reject(error);
      }
      // Let the event loop write the replies out before the next flush: an
      // embedded database answers without real I/O, and a chain of flushes
      // would otherwise hold every reply until the queue ran dry.
      await new Promise((resolve) => setImmediate(resolve));
    }
    running = null;
  };

  return {
    submit(item) {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, key: weight?.keyOf(item) ?? "", weight: weight?.weightOf(item) ?? 0, resolve, reject });
        running ??= run();
      });
    },
    async drain() {
      while (running) await running;
    },
  };
}
