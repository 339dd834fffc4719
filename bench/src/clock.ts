// The bench's one clock, in every process of a run: milliseconds since the
// epoch as the process's start saw it, advanced by the monotonic clock. The
// load generator's windows, the stamps in its messages and the profiler's
// samples are all read on it, so a step of the wall clock during a run (a
// time daemon's correction) cannot put a sample outside the window it was
// taken in.
export function now(): number {
  return performance.timeOrigin + performance.now();
}
