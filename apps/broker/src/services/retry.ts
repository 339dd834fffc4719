// Postgres asks clients to run a transaction again after a serialization
// failure or a deadlock; everything else is a real failure.
const RETRYABLE = new Set(["40001", "40P01"]);

function sqlState(error: unknown): unknown {
  const e = error as { code?: unknown; cause?: { code?: unknown } } | null;
  return e?.code ?? e?.cause?.code;
}

export async function retryTransient<T>(work: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      const code = sqlState(error);
      if (attempt >= attempts || typeof code !== "string" || !RETRYABLE.has(code)) throw error;
      await Bun.sleep(5 * attempt + Math.random() * 10);
    }
  }
}
