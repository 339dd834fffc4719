// The operator's dashboard: the page at /dashboard (DASHBOARD=false turns it
// off) and the JSON endpoints under /v1/admin/… that feed it, behind the
// admin token. Presence changes stream as server-sent events, read by the
// page with fetch so the token travels in the Authorization header.
import { join } from "node:path";
import type { Logger } from "../../log.ts";
import type { DashboardService } from "../../services/dashboard.ts";
import type { PresenceEvents } from "../../services/presence-events.ts";
import { endpoint, type AdminAccess } from "./admin-routes.ts";
import { json } from "./respond.ts";

const PAGE_DIR = join(import.meta.dir, "dashboard");
const KEEPALIVE_MS = 15_000;

/** The page's script, bundled once on first request. */
function pageScript(): () => Promise<Response> {
  let built: Promise<string> | null = null;
  return async () => {
    built ??= Bun.build({ entrypoints: [join(PAGE_DIR, "app.ts")], target: "browser", minify: true }).then(async (result) => {
      const [output] = result.outputs;
      if (!result.success || output === undefined) throw new Error(`the dashboard script did not build: ${result.logs.join("\n")}`);
      return output.text();
    });
    return new Response(await built, { headers: { "content-type": "text/javascript; charset=utf-8" } });
  };
}

interface StreamLimits {
  /** Bytes the stream may hold that its socket has not taken (SOCKET_BUFFER_BYTES). */
  maxUnsentBytes: number;
  /** Aborted as the instance stops: every stream ends, so the listener need not wait for them. */
  closing: AbortSignal;
  log: Logger;
}

/**
 * A page that stops reading would have every event of its mesh kept for it:
 * past maxUnsentBytes the stream is ended instead, and the page's reconnect
 * starts again from a fresh snapshot, so nothing it shows is lost.
 */
function presenceStream(events: PresenceEvents, meshId: string, req: Request, limits: StreamLimits): Response {
  const key = `stream-${crypto.randomUUID()}`;
  const encoder = new TextEncoder();
  let keepalive: Timer | undefined;
  let stopped = false;
  let end = () => {};
  const stop = () => {
    stopped = true;
    clearInterval(keepalive);
    events.unsubscribe(key);
    limits.closing.removeEventListener("abort", end);
  };
  const body = new ReadableStream<Uint8Array>(
    {
      async start(controller) {
        // The snapshot is written whole before the reader can take a byte of
        // it: the bytes it holds past the bound are allowed on top of it
        // until the reader is back within the bound.
        let allowance = Infinity;
        const write = (text: string) => {
          if (stopped) return;
          try {
            controller.enqueue(encoder.encode(text));
          } catch {
            return stop();
          }
          const over = -(controller.desiredSize ?? 0);
          if (over <= 0 && allowance !== Infinity) allowance = 0;
          if (over <= allowance) return;
          stop();
          limits.log.warn({ meshId, maxUnsentBytes: limits.maxUnsentBytes }, "presence stream stalled");
          // Errored, the response is cut off and its connection closed. (Bun
          // prints an error value given here to stderr, outside the JSON log.)
          controller.error(undefined);
        };
        end = () => {
          if (stopped) return;
          stop();
          controller.close();
        };
        // Asked for as the instance stops: ended at once.
        if (limits.closing.aborted) return end();
        limits.closing.addEventListener("abort", end, { once: true });
        const subscription = await events.subscribe(key, meshId, (event) => write(`event: presence\ndata: ${JSON.stringify(event)}\n\n`));
        write(": subscribed\n\n");
        subscription.start();
        allowance = Math.max(0, -(controller.desiredSize ?? 0));
        // Gone while its snapshot was read: no timer for a stream nobody holds.
        if (!stopped) keepalive = setInterval(() => write(": keepalive\n\n"), KEEPALIVE_MS);
      },
      cancel: stop,
    },
    new ByteLengthQueuingStrategy({ highWaterMark: limits.maxUnsentBytes }),
  );
  req.signal.addEventListener("abort", stop);
  return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-store" } });
}

export function dashboardRoutes(deps: {
  dashboard: DashboardService;
  presenceEvents: PresenceEvents;
  access: AdminAccess;
  stream: StreamLimits;
  page: boolean;
}) {
  const { dashboard, presenceEvents, access } = deps;
  const api = {
    "/v1/admin/overview": endpoint<"/v1/admin/overview">(access, { GET: async () => json(200, await dashboard.overview()) }),
    "/v1/admin/meshes/:mesh/members": endpoint<"/v1/admin/meshes/:mesh/members">(access, {
      GET: async (req) => json(200, { members: await dashboard.members(req.params.mesh) }),
    }),
    "/v1/admin/meshes/:mesh/presence-events": endpoint<"/v1/admin/meshes/:mesh/presence-events">(access, {
      GET: async (req, server) => {
        const meshId = await dashboard.meshId(req.params.mesh);
        // A stream stays open as long as the page does.
        server.timeout(req, 0);
        return presenceStream(presenceEvents, meshId, req, deps.stream);
      },
    }),
  };
  if (!deps.page) return api;
  return {
    ...api,
    "/dashboard": { GET: () => new Response(Bun.file(join(PAGE_DIR, "index.html"))) },
    "/dashboard/app.js": { GET: pageScript() },
  };
}
