// A webhook request goes to the address the target check approved, never to
// a second lookup of its name (docs/http.md, "Where webhooks may point"): a
// name's owner could answer the check with a public address and the request
// with the broker's own network (DNS rebinding). The requests are real, to
// servers on loopback, under names no resolver knows, so a request that
// looked its name up again would fail; over TLS the certificate is checked
// against the name. The dispatcher's case runs on a real database.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitUntil, WebhookReceiver } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { createLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics.ts";
import { createAdminService } from "../src/services/admin.ts";
import { InstanceBus } from "../src/services/bus.ts";
import { PresenceEvents } from "../src/services/presence-events.ts";
import { QueuedWork } from "../src/services/queued-work.ts";
import { createWebhookAdmin } from "../src/services/webhooks/admin.ts";
import { WebhookDispatcher } from "../src/services/webhooks/dispatcher.ts";
import type { WebhookPoster, WebhookRequest } from "../src/services/webhooks/request.ts";
import { createWebhookPoster } from "../src/transport/webhook/poster.ts";
import { meshWithMember, useBackendDatabase } from "./support/scratch-db.ts";

const SECRET = "webhook-secret-0123456789";

/** Whether a server can listen on ::1 here. */
function ipv6Loopback(): boolean {
  try {
    Bun.serve({ hostname: "::1", port: 0, fetch: () => new Response(null) }).stop(true);
    return true;
  } catch {
    return false;
  }
}
const log = createLogger("silent", {});

describe("the poster", () => {
  let receiver: WebhookReceiver | undefined;
  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
  });
  afterAll(() => receiver?.stop());

  test("connects to the approved address and names the URL's host in the Host header", async () => {
    const url = `http://hook.invalid:${receiver!.port}/events?via=pin`;
    const request = { url, secret: SECRET, attempt: 1, messages: [], connectTo: ["127.0.0.1"] as const };
    const result = await createWebhookPoster("pinned-address-test").post(request, 5000, new AbortController().signal);
    expect(result).toEqual({ outcome: "ok", status: 204 });
    const [received] = receiver!.requests;
    expect({ path: received?.path, host: received?.headers.get("host") }).toEqual({ path: "/events", host: `hook.invalid:${receiver!.port}` });
  });

  // 127.0.0.2 and 127.0.0.3 are loopback too, where the receiver (on 127.0.0.1) does not listen.
  const post = (connectTo: readonly [string, ...string[]]) =>
    createWebhookPoster("pinned-address-test").post(
      { url: `http://hook.invalid:${receiver!.port}/events`, secret: SECRET, attempt: 1, messages: [], connectTo },
      5000,
      new AbortController().signal,
    );

  test("tries the next approved address when one refuses the connection, and fails with the last refusal when all do", async () => {
    const before = receiver!.requests.length;
    expect(await post(["127.0.0.2", "127.0.0.1"])).toEqual({ outcome: "ok", status: 204 });
    expect(receiver!.requests.length - before).toBe(1);
    expect(await post(["127.0.0.2", "127.0.0.3"])).toEqual({ outcome: "network", status: null, cause: "ECONNREFUSED" });
  });

  test("does not try the next address once a connection was made: an error answer, or a connection closed unanswered", async () => {
    const before = receiver!.requests.length;
    const failing = Bun.serve({ hostname: "127.0.0.2", port: receiver!.port, fetch: () => new Response(null, { status: 500 }) });
    try {
      expect(await post(["127.0.0.2", "127.0.0.1"])).toEqual({ outcome: "http_error", status: 500 });
    } finally {
      await failing.stop(true);
    }
    // The request may have reached the endpoint before the connection dropped: sending it again elsewhere is a retry's to decide.
    const dropping = Bun.listen({ hostname: "127.0.0.2", port: receiver!.port, socket: { data: (socket) => void socket.end() } });
    try {
      const result = await post(["127.0.0.2", "127.0.0.1"]);
      expect(result.outcome).toBe("network");
      expect(result.cause).not.toBe("ECONNREFUSED");
    } finally {
      dropping.stop(true);
    }
    expect(receiver!.requests.length - before).toBe(0);
  });

  test.skipIf(!ipv6Loopback())("connects to an approved IPv6 address, written in brackets (needs IPv6 on loopback)", async () => {
    const hosts: (string | null)[] = [];
    const server = Bun.serve({ hostname: "::1", port: 0, fetch: (req) => (hosts.push(req.headers.get("host")), new Response(null, { status: 204 })) });
    try {
      const request = { url: `http://hook.invalid:${server.port}/events`, secret: SECRET, attempt: 1, messages: [], connectTo: ["::1"] as const };
      const result = await createWebhookPoster("pinned-address-test").post(request, 5000, new AbortController().signal);
      expect({ result, hosts }).toEqual({ result: { outcome: "ok", status: 204 }, hosts: [`hook.invalid:${server.port}`] });
    } finally {
      await server.stop(true);
    }
  });

  test("over TLS, checks the certificate against the URL's name, not the address it connects to", async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-pin-"));
    try {
      const certFile = join(dir, "cert.pem");
      const keyFile = join(dir, "key.pem");
      const made = Bun.spawnSync(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=hook.example"]
          .concat(["-addext", "subjectAltName=DNS:hook.example", "-keyout", keyFile, "-out", certFile]),
        { stderr: "pipe" },
      );
      expect(made.exitCode).toBe(0);
      const hosts: (string | null)[] = [];
      const server = Bun.serve({
        hostname: "127.0.0.1",
        port: 0,
        tls: { cert: Bun.file(certFile), key: Bun.file(keyFile) },
        fetch: (req) => (hosts.push(req.headers.get("host")), new Response(null, { status: 204 })),
      });
      try {
        const post = async (url: string) => {
          const proc = Bun.spawn(["bun", join(import.meta.dir, "support", "post-webhook.ts"), url, "127.0.0.1"], {
            env: { ...process.env, NODE_EXTRA_CA_CERTS: certFile },
            stdout: "pipe",
          });
          const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
          expect(code).toBe(0);
          return JSON.parse(out) as unknown;
        };
        expect(await post(`https://hook.example:${server.port}/events`)).toEqual({ outcome: "ok", status: 204 });
        expect(hosts).toEqual([`hook.example:${server.port}`]);
        // The same server and address under a name its certificate does not carry.
        expect(await post(`https://other.example:${server.port}/events`)).toEqual({ outcome: "network", status: null, cause: "ERR_TLS_CERT_ALTNAME_INVALID" });
        expect(hosts).toHaveLength(1);
      } finally {
        await server.stop(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the dispatcher", () => {
  const backend = useBackendDatabase();

  test("posts to the address its own check approved, looking the name up once per attempt", async () => {
    const db = backend.db;
    const { meshId, memberId } = await meshWithMember(db, "pinned-address");
    // A name that answers each lookup with another public address.
    const lookups: string[] = [];
    const resolve = async (host: string) => {
      lookups.push(host);
      return [`93.184.216.${lookups.length}`];
    };
    const posted: WebhookRequest[] = [];
    const poster: WebhookPoster = {
      post: async (request) => {
        posted.push(request);
        return { outcome: "ok", status: 204 };
      },
    };
    const bus = new InstanceBus(db, log);
    const metrics = createMetrics();
    const events = new PresenceEvents(db, bus, "pinned-address-test", metrics, log);
    const admin = createAdminService({ db, log, events, bus, onRevoked: () => {}, onTokenRevoked: () => {} });
    const queuedWork = new QueuedWork();
    const options = { timeoutMs: 5000, backoff: { minMs: 100, maxMs: 100 }, leaseSeconds: 30, allowPrivate: false, clock: Date.now, resolve };
    const dispatcher = new WebhookDispatcher(db, bus, queuedWork, poster, metrics, log, { ...options, refreshIntervalMs: 600_000, depthIntervalMs: 600_000 });
    const webhooks = createWebhookAdmin({ db, admin, dispatcher, queuedWork, bus, log, allowPrivate: false, lookupTimeoutMs: 5000, resolve });
    await dispatcher.start();
    try {
      await webhooks.set(meshId, memberId, { url: "https://hooks.example:8443/events", secret: SECRET });
      await db.rows(sql`
        WITH m AS (
          INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
          VALUES (${meshId}::uuid, ${memberId}::uuid, 'k', 'now', 'n', 'c', now() + interval '1 hour')
          RETURNING id)
        INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state)
        SELECT id, ${memberId}::uuid, 'now', now() + interval '1 hour', 'queued' FROM m`);
      dispatcher.members([memberId]);
      await waitUntil(() => posted.length > 0 || undefined, 10_000, "the attempt's request");
      // The PUT's lookup, then the attempt's: the request goes where the second said.
      expect(lookups).toEqual(["hooks.example", "hooks.example"]);
      expect(posted.map((r) => ({ url: r.url, connectTo: r.connectTo }))).toEqual([{ url: "https://hooks.example:8443/events", connectTo: ["93.184.216.2"] }]);
    } finally {
      await dispatcher.stop();
    }
  });
});
