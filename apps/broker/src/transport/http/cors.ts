// CORS_ORIGINS (docs/browser.md): every HTTP route answers the listed
// origins with Access-Control-Allow-Origin (the origin echoed, never *) and
// answers their preflight; other origins get no CORS header at all (every
// answer says it varies by Origin). A WebSocket upgrade from an unlisted
// origin is refused (server.ts).
import { apiError } from "./respond.ts";

type Handler = (req: Request, server: unknown) => Response | undefined | Promise<Response | undefined>;

const ALLOWED_METHODS = "GET, POST, PUT, DELETE, OPTIONS";
const ALLOWED_HEADERS = "authorization, content-type, idempotency-key, x-switchboard-pid";
const PREFLIGHT_MAX_AGE_SECONDS = "600";

export class CorsPolicy {
  private readonly origins: ReadonlySet<string>;

  constructor(origins: readonly string[] | undefined) {
    this.origins = new Set(origins ?? []);
  }

  get enabled(): boolean {
    return this.origins.size > 0;
  }

  /** May a socket with this Origin header connect? Clients that send none (not browsers) may. */
  allowsSocket(origin: string | null): boolean {
    return !this.enabled || origin === null || this.origins.has(origin);
  }

  private listed(req: Request): string | null {
    const origin = req.headers.get("origin");
    return origin !== null && this.origins.has(origin) ? origin : null;
  }

  /** The preflight answer for a listed origin, or null when this is no preflight of one. */
  preflight(req: Request): Response | null {
    const origin = this.listed(req);
    if (req.method !== "OPTIONS" || origin === null) return null;
    return new Response(null, {
      status: 204,
      headers: {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": ALLOWED_METHODS,
        "access-control-allow-headers": ALLOWED_HEADERS,
        "access-control-max-age": PREFLIGHT_MAX_AGE_SECONDS,
        vary: "Origin",
      },
    });
  }

  /**
   * The response, with the CORS headers for a listed origin. Every answer
   * varies by Origin, a listed one's or not: a cache that kept the answer to
   * an unlisted origin (no CORS header) must not hand it to a listed one.
   */
  decorate(req: Request, res: Response): Response {
    res.headers.append("vary", "Origin");
    const origin = this.listed(req);
    if (origin === null) return res;
    res.headers.set("access-control-allow-origin", origin);
    res.headers.set("access-control-expose-headers", "retry-after");
    return res;
  }

  /** Every route of a Bun.serve route table, answering preflights and decorated. */
  wrapRoutes<T extends Record<string, unknown>>(routes: T): T {
    if (!this.enabled) return routes;
    const wrap =
      (handler: Handler): Handler =>
      async (req, server) => {
        const res = await handler(req, server);
        return res === undefined ? undefined : this.decorate(req, res);
      };
    return Object.fromEntries(
      Object.entries(routes).map(([path, route]): [string, unknown] => {
        if (typeof route === "function") {
          const wrapped = wrap(route as Handler);
          return [path, (req: Request, server: unknown) => this.preflight(req) ?? wrapped(req, server)];
        }
        if (typeof route !== "object" || route === null || route instanceof Response) return [path, route];
        const methods: Partial<Record<string, Handler>> = {};
        for (const [method, handler] of Object.entries(route)) methods[method] = wrap(handler as Handler);
        // A listed origin's preflight first; any other OPTIONS as the route answers it (405, naming its methods).
        const options = methods.OPTIONS;
        methods.OPTIONS = (req, server) =>
          this.preflight(req) ?? options?.(req, server) ?? apiError("method_not_allowed", "OPTIONS is for CORS preflights of listed origins");
        return [path, methods];
      }),
    ) as T;
  }
}
