// While the instance is short of file descriptors (services/descriptors.ts),
// a request is answered 503 at once and its connection closed, so that it
// gives its descriptor back; /health and /metrics still answer, for the
// orchestrator and the scrape that would see the shortage.
import { apiError } from "./respond.ts";
import { mapHandlers } from "./route-failures.ts";

export interface DescriptorState {
  /** Whether to refuse what would take one more descriptor (and note the shortage). */
  refusing(): boolean;
}

/** The answer to what would take a descriptor the instance cannot spare: it closes its connection. */
export function shortOfDescriptors(code: "capacity" | "unavailable"): Response {
  return apiError(code, "the broker is short of file descriptors; try again shortly", { connection: "close", "retry-after": "1" });
}

const ALWAYS_ANSWERED = /^\/(health|metrics)(\/|$)/;

export function refuseWhileShort<T extends Record<string, unknown>>(routes: T, descriptors: DescriptorState): T {
  return mapHandlers(routes, (handler, path) =>
    ALWAYS_ANSWERED.test(path) ? handler : (req, server) => (descriptors.refusing() ? shortOfDescriptors("unavailable") : handler(req, server)),
  );
}
