// A local HTTP endpoint standing in for a Sentry DSN's ingest: it records
// every envelope the broker posts and answers 200 as Sentry does.
import type { Server } from "bun";

export interface IngestRequest {
  path: string;
  body: string;
}

export interface SentryEvent {
  level?: string;
  message?: string;
  logentry?: { message?: string };
  release?: string;
  environment?: string;
  tags?: Record<string, string>;
  extra?: Record<string, unknown>;
  exception?: { values?: { type?: string; value?: string; stacktrace?: { frames?: { filename?: string }[] } }[] };
}

export const SENTRY_PROJECT = "42";
const PUBLIC_KEY = "0123456789abcdef0123456789abcdef";

/** Items of type "event" in a Sentry envelope: a header line, then item header and payload lines. */
export function envelopeEvents(body: string): SentryEvent[] {
  const lines = body.split("\n").filter((l) => l !== "");
  const events: SentryEvent[] = [];
  for (let i = 1; i + 1 < lines.length; i += 2) {
    const header = JSON.parse(lines[i]!) as { type?: string };
    if (header.type === "event") events.push(JSON.parse(lines[i + 1]!) as SentryEvent);
  }
  return events;
}

export class SentryIngest {
  readonly requests: IngestRequest[] = [];
  private readonly server: Server<undefined>;

  constructor() {
    this.server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: async (req) => {
        this.requests.push({ path: new URL(req.url).pathname, body: await req.text() });
        return Response.json({ id: crypto.randomUUID().replaceAll("-", "") });
      },
    });
  }

  get dsn(): string {
    return `http://${PUBLIC_KEY}@127.0.0.1:${this.server.port}/${SENTRY_PROJECT}`;
  }

  events(): SentryEvent[] {
    return this.requests.flatMap((r) => envelopeEvents(r.body));
  }

  async waitForEvent(what: string, match: (event: SentryEvent) => boolean, timeoutMs = 15_000): Promise<SentryEvent> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events().find(match);
      if (found) return found;
      if (Date.now() > until) {
        throw new Error(`no ${what} event within ${timeoutMs} ms; got ${JSON.stringify(this.events().map((e) => e.tags))}`);
      }
      await Bun.sleep(20);
    }
  }

  stop(): Promise<void> {
    return this.server.stop(true);
  }
}
