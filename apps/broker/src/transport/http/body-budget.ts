// Request bodies count against INSTANCE_INFLIGHT_BYTES with the frames the
// sockets read: a body's bytes are held from their reading until its request
// is answered (a send waiting for its reply holds them the while), and
// bodies may take half of it, so sockets paused for it still resume. Without
// it, requests of MAX_MESSAGE_BYTES each, many at once, held what they
// liked: 48 bodies of 16 MiB took 4 GB.
import { mapHandlers } from "./route-failures.ts";

/** The instance's count of bytes read and not finished (the sockets' InflightBudget). */
export interface ByteBudget {
  /** Counts a body's bytes; false, counting nothing, past what bodies may take. */
  takeBody(bytes: number): boolean;
  give(bytes: number): void;
}

interface Hold {
  budget: ByteBudget;
  bytes: number;
}

const holds = new WeakMap<Request, Hold>();

/** Each handler of `routes` gives back, once answered, the body bytes its request was counted. */
export function holdBodies<T extends Record<string, unknown>>(routes: T, budget: ByteBudget): T {
  return mapHandlers(routes, (handler) => async (req, server) => {
    const hold: Hold = { budget, bytes: 0 };
    holds.set(req, hold);
    try {
      return await handler(req, server);
    } finally {
      holds.delete(req);
      budget.give(hold.bytes);
    }
  });
}

/** Counts a chunk of req's body read; false when the instance holds what it may (what was counted is given back at its answer). */
export function countBody(req: Request, bytes: number): boolean {
  const hold = holds.get(req);
  if (hold === undefined) return true;
  if (!hold.budget.takeBody(bytes)) return false;
  hold.bytes += bytes;
  return true;
}
