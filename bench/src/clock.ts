// The bench's clock: milliseconds since the epoch as the process read the
// wall clock at its start, advanced by the monotonic clock since. The load
// generator's windows and the stamps in its messages, and the profiler's
// samples, are all read on it: within a process no step of the wall clock
// (a time daemon's correction) moves a sample out of the window it was
// taken in; between a run's processes, times agree to within the steps
// between their starts.
export function now(): number {
  return performance.timeOrigin + performance.now();
}
