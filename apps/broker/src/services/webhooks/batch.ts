// Which of the deliveries an attempt claimed go in its one request.
import type { LeasedDelivery } from "../../store/queue/index.ts";

// A request's messages, in ciphertext and nonce bytes as the request's JSON
// carries them: receivers limit what they read (many frameworks to 100 KB or
// 1 MB), and one that refuses a batch gets the same batch again until it
// expires. A single larger message goes alone.
const MAX_BATCH_BYTES = 256 * 1024;

// A control character is six bytes in JSON (\u0001), a character past ASCII two to four.
const jsonBytes = (text: string): number => Buffer.byteLength(JSON.stringify(text));

/** The oldest of the claimed deliveries that fit in one request (at least one), in queue order; the rest go back. */
export function withinBatchBytes(claimed: LeasedDelivery[]): { batch: LeasedDelivery[]; rest: LeasedDelivery[] } {
  const ordered = [...claimed].sort((a, b) => a.seq - b.seq);
  let bytes = 0;
  let n = 0;
  while (n < ordered.length) {
    bytes += jsonBytes(ordered[n]!.ciphertext) + jsonBytes(ordered[n]!.nonce);
    if (n > 0 && bytes > MAX_BATCH_BYTES) break;
    n++;
  }
  return { batch: ordered.slice(0, n), rest: ordered.slice(n) };
}
