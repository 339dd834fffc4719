// A known path asked with a method it does not serve is answered 405 with an
// Allow header, on every route: Bun.serve sends such a request to the 404
// fallback, as if the path did not exist.
import { apiError } from "./respond.ts";

type Handler = (req: Request, server: unknown) => Response | Promise<Response | undefined> | undefined;

// Bun answers HEAD with a route's GET, and hands a method it does not know to GET too.
// OPTIONS is a preflight only for a listed origin (cors.ts); for any other it is a method like these.
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"] as const;

export function methodNotAllowed(method: string, allow: string): Response {
  return apiError("method_not_allowed", `${method} is not allowed here; use ${allow}`, { allow });
}

/** The route table with every method-keyed route answering the methods it lacks with 405. */
export function answerOtherMethods<T extends Record<string, unknown>>(routes: T): T {
  return Object.fromEntries(
    Object.entries(routes).map(([path, route]): [string, unknown] => {
      if (typeof route !== "object" || route === null || route instanceof Response) return [path, route];
      const served = route as Record<string, Handler>;
      const allow = [...Object.keys(served), ...("GET" in served ? ["HEAD"] : [])].join(", ");
      const others = METHODS.filter((m) => !(m in served)).map((m): [string, Handler] => [m, (req) => methodNotAllowed(req.method, allow)]);
      return [path, { ...Object.fromEntries(others), ...served }];
    }),
  ) as T;
}
