// A route's answer deadline (ANSWER_DEADLINE_MS) bounds the broker's wait on
// the database, not the client's upload: while the request's body is read
// (readBodyCapped) its clock stops. A body that takes longer than the
// deadline to arrive is no sign of a database that does not answer, and a
// 503 (or an undecided send) blaming one would mislead its client.

interface Pausable {
  pause(): void;
  resume(): void;
}

const running = new WeakMap<Request, Pausable>();

/** work's answer, or late()'s once `ms` of the request's time outside its body's reading have passed. */
export async function answerWithin<L>(req: Request, work: () => Promise<Response>, ms: number, late: () => L): Promise<Response | L> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let remaining = ms;
  let since = 0;
  let fire = () => {};
  const deadline = new Promise<L>((resolve) => {
    fire = () => resolve(late());
  });
  const start = () => {
    since = performance.now();
    timer = setTimeout(fire, Math.max(0, remaining));
  };
  const clock: Pausable = {
    pause: () => {
      clearTimeout(timer);
      remaining -= performance.now() - since;
    },
    resume: start,
  };
  running.set(req, clock);
  start();
  try {
    return await Promise.race([work(), deadline]);
  } finally {
    clearTimeout(timer);
    running.delete(req);
  }
}

/** Runs the reading of req's body with its answer deadline's clock stopped, if it has one. */
export async function outsideDeadline<T>(req: Request, read: () => Promise<T>): Promise<T> {
  const clock = running.get(req);
  clock?.pause();
  try {
    return await read();
  } finally {
    // Answered meanwhile (late), the request has no clock any more: nothing restarts.
    if (running.get(req) === clock) clock?.resume();
  }
}
