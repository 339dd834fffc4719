// Postgres asks clients to run a transaction again after a serialization
// failure or a deadlock; everything else is a real failure, but for work
// that may run twice, which a lost connection does not end either
// (retryRepeatable).
import { errorCode, isConnectionLost } from "@switchboard/db";

const RETRYABLE = new Set(["40001", "40P01"]);

export async function retryTransient<T>(work: () => Promise<T>, attempts = 5, alsoRetry: (error: unknown) => boolean = () => false): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      const code = errorCode(error);
      const retryable = (code !== undefined && RETRYABLE.has(code)) || alsoRetry(error);
      if (attempt >= attempts || !retryable) throw error;
      await Bun.sleep(5 * attempt + Math.random() * 10);
    }
  }
}

/**
 * For a read, or a write whose second run changes nothing the first did not:
 * also run again after its connection was lost. A restart of the server ends
 * every connection of the pool, which learns of each only as its socket
 * closes, so a statement can go out on one already ended. A connect timeout
 * is not tried again: that would keep the caller waiting as long once more.
 */
export function retryRepeatable<T>(work: () => Promise<T>): Promise<T> {
  return retryTransient(work, 5, (error) => isConnectionLost(error) && errorCode(error) !== "CONNECT_TIMEOUT");
}
