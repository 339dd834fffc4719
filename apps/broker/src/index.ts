// Entry point: the stop-signal handlers first (early-signals.ts says why),
// then the process itself (main.ts), loaded only once they are in.
import { holdStopSignals } from "./early-signals.ts";

holdStopSignals();
await import("./main.ts");
