// A known path asked with a method it does not serve is answered 405 with an
// Allow header, on every route: Bun.serve sends such a request to the 404
// fallback, as if the path did not exist.
import { apiError, requestUrl } from "./respond.ts";

type Handler = (req: Request, server: unknown) => Response | Promise<Response | undefined> | undefined;

// The methods a route object may be keyed by. Bun answers HEAD with a route's
// GET. OPTIONS is a preflight only for a listed origin (cors.ts); for any
// other it is a method like these. A method outside this list (PROPFIND,
// QUERY) Bun never routes by key: the fallback answers it (allowedOn).
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"] as const;

export function methodNotAllowed(method: string, allow: string): Response {
  return apiError("method_not_allowed", `${method} is not allowed here; use ${allow}`, { allow });
}

function methodKeyed(route: unknown): route is Record<string, Handler> {
  return typeof route === "object" && route !== null && !(route instanceof Response);
}

function allowOf(route: Record<string, Handler>): string {
  return [...Object.keys(route), ...("GET" in route ? ["HEAD"] : [])].join(", ");
}

/** The route table with every method-keyed route answering the methods it lacks with 405. */
export function answerOtherMethods<T extends Record<string, unknown>>(routes: T): T {
  return Object.fromEntries(
    Object.entries(routes).map(([path, route]): [string, unknown] => {
      if (!methodKeyed(route)) return [path, route];
      const allow = allowOf(route);
      const others = METHODS.filter((m) => !(m in route)).map((m): [string, Handler] => [m, (req) => methodNotAllowed(req.method, allow)]);
      return [path, { ...Object.fromEntries(others), ...route }];
    }),
  ) as T;
}

/**
 * For the fallback: the 405 of a request to a method-keyed route of `routes`
 * (matched as Bun matches them: a static path exactly, a `:name` segment by
 * any one segment), or null where no such route has its path.
 */
export function allowedOn(routes: Record<string, unknown>): (req: Request) => Response | null {
  const keyed = Object.entries(routes).filter((entry): entry is [string, Record<string, Handler>] => methodKeyed(entry[1]));
  const exact = new Map(keyed.map(([path, route]) => [path, allowOf(route)]));
  const patterns = keyed
    .filter(([path]) => path.includes("/:"))
    .map(([path, route]) => ({ segments: path.split("/"), allow: allowOf(route) }));
  const matches = (segments: string[], parts: string[]) =>
    segments.length === parts.length && segments.every((s, i) => s.startsWith(":") ? parts[i] !== "" : s === parts[i]);
  return (req) => {
    const pathname = requestUrl(req).pathname;
    const parts = pathname.split("/");
    const allow = exact.get(pathname) ?? patterns.find((p) => matches(p.segments, parts))?.allow;
    return allow === undefined ? null : methodNotAllowed(req.method, allow);
  };
}
