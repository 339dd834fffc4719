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
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

/** flush gets up to maxBatch items and returns one result per item, in order. */
export function createGroupCommit<I, O>(flush: (items: I[]) => Promise<O[]>, maxBatch: number): GroupCommit<I, O> {
  let queue: Pending<I, O>[] = [];
  let running: Promise<void> | null = null;

  const run = async () => {
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
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
        queue.push({ item, resolve, reject });
        running ??= run();
      });
    },
    async drain() {
      while (running) await running;
    },
  };
}
