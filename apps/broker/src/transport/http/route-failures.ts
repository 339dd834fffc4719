// A route that throws is answered inside the route, by the `failed` given (a
// logged 500 `internal`), not by Bun.serve's error handler: that one has no
// request at hand, so its answer would miss the CORS headers (cors.ts) and a
// listed page could not read it. A client gone mid-body (ClientGone) is left
// to Bun, which answers nothing.
import { ClientGone } from "./respond.ts";

export type Handler = (req: Request, server: unknown) => Response | undefined | Promise<Response | undefined>;

export function answerFailures<T extends Record<string, unknown>>(routes: T, failed: (error: unknown) => Response): T {
  return mapHandlers(routes, (handler) => async (req, server) => {
    try {
      return await handler(req, server);
    } catch (error) {
      if (error instanceof ClientGone) throw error;
      return failed(error);
    }
  });
}

/** Every handler of a route table (a path's one, or its methods'), each passed through `wrap` with its path. */
export function mapHandlers<T extends Record<string, unknown>>(routes: T, wrap: (handler: Handler, path: string) => Handler): T {
  return Object.fromEntries(
    Object.entries(routes).map(([path, route]): [string, unknown] => {
      if (typeof route === "function") return [path, wrap(route as Handler, path)];
      if (typeof route !== "object" || route === null || route instanceof Response) return [path, route];
      return [path, Object.fromEntries(Object.entries(route).map(([method, handler]) => [method, wrap(handler as Handler, path)]))];
    }),
  ) as T;
}
