// Postgres asks clients to run a transaction again after a serialization
// failure or a deadlock; everything else is a real failure.
import { errorCode } from "@switchboard/db";

const RETRYABLE = new Set(["40001", "40P01"]);

export async function retryTransient<T>(work: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      const code = errorCode(error);
      if (attempt >= attempts || code === undefined || !RETRYABLE.has(code)) throw error;
      await Bun.sleep(5 * attempt + Math.random() * 10);
    }
  }
}
