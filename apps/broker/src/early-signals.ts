// Stop signals that come before the entry's handlers are in. As a container's
// pid 1 the process is sent no signal it has no handler for: a SIGTERM while
// the broker's modules load (a fraction of a second, longer on a cold disk)
// would be dropped, and the container killed once its grace period ran out.
// These handlers are in before anything else loads, and keep the first such
// signal for main.ts to act on.

const STOP_SIGNALS: NodeJS.Signals[] = ["SIGTERM", "SIGINT"];
let held: NodeJS.Signals | null = null;
const hold = (signal: NodeJS.Signals) => {
  held ??= signal;
};

export function holdStopSignals(): void {
  for (const signal of STOP_SIGNALS) process.on(signal, hold);
}

/** Stops holding (call it once the real handlers are in); the first signal held meanwhile, if any. */
export function releaseStopSignals(): NodeJS.Signals | null {
  for (const signal of STOP_SIGNALS) process.off(signal, hold);
  return held;
}
