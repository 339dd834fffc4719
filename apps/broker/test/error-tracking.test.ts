// SENTRY_DSN: what reaches the ingest (a local endpoint standing in for
// Sentry's), with which context, and that no ciphertext, nonce or token does.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { ErrorEvent } from "@sentry/bun";
import { backendKind, PeerPool, setupMesh, TEST_ADMIN_TOKEN, TestBroker } from "@switchboard/testkit";
import { join } from "node:path";
import postgres from "postgres";
import { safeContext, scrubEvent, scrubText, secretsToRedact } from "../src/error-tracking.ts";
import { sendFrame, sendMany } from "./support/messaging.ts";
import { SENTRY_PROJECT, SentryIngest, type SentryEvent } from "./support/sentry-ingest.ts";

const FAULT = `--preload ${join(import.meta.dir, "support", "inject-fault.ts")}`;

describe("scrubbing", () => {
  const secrets = secretsToRedact([TEST_ADMIN_TOKEN, "postgres://app:pg-pass-0123456789@db:5432/app", undefined]);

  test("query parameters, configured secrets and URL credentials leave every text", () => {
    const text = `Failed query: insert into messages values ($1)\nparams: c2VjcmV0IGNpcGhlcnRleHQ=`;
    expect(scrubText(text, secrets)).toBe("Failed query: insert into messages values ($1)");
    expect(scrubText(`token ${TEST_ADMIN_TOKEN} here`, secrets)).toBe("token [redacted] here");
    expect(scrubText("password pg-pass-0123456789 leaked", secrets)).toBe("password [redacted] leaked");
    expect(scrubText("connect postgres://app:pg-pass-0123456789@db:5432/app failed", secrets)).toBe(
      "connect [redacted] failed",
    );
    expect(scrubText("connect postgres://other:elsewhere-pw@x/y failed", secrets)).toBe(
      "connect postgres://other:[redacted]@x/y failed",
    );
  });

  test("context keeps plain fields only, never ones named like message data or secrets", () => {
    const context = safeContext(
      {
        err: new Error("x"),
        sends: 3,
        presenceId: "p-1",
        retried: true,
        ciphertext: "abc",
        nonce: "n",
        hookToken: "t",
        frame: { type: "send", ciphertext: "abc" },
        members: ["a", "b"],
        long: "x".repeat(500),
      },
      secrets,
    );
    expect(context).toEqual({ sends: 3, presenceId: "p-1", retried: true });
  });

  test("an event loses request data, breadcrumbs and user, and its texts are scrubbed", () => {
    const event = {
      type: undefined,
      message: `boom ${TEST_ADMIN_TOKEN}`,
      request: { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } },
      user: { ip_address: "10.0.0.1" },
      breadcrumbs: [{ message: "frame" }],
      exception: { values: [{ type: "Error", value: "Failed query: x\nparams: secret-ciphertext" }] },
      extra: { ciphertext: "abc", sends: 2 },
    } as ErrorEvent;
    const out = scrubEvent(event, secrets);
    expect(out).toEqual({
      type: undefined,
      message: "boom [redacted]",
      exception: { values: [{ type: "Error", value: "Failed query: x" }] },
      extra: { sends: 2 },
    });
  });
});

describe("error reports to SENTRY_DSN", () => {
  let ingest: SentryIngest;
  let broker: TestBroker | undefined;
  const pool = new PeerPool();

  beforeAll(() => {
    ingest = new SentryIngest();
  });
  afterEach(async () => {
    await pool.closeAll();
    await broker?.dispose();
    broker = undefined;
    ingest.requests.length = 0;
  });
  afterAll(() => ingest.stop());

  const rawBodies = () => ingest.requests.map((r) => r.body).join("\n");

  test("an uncaught error is reported as fatal before the broker exits 70, the token redacted", async () => {
    broker = await TestBroker.start({ SENTRY_DSN: ingest.dsn, BUN_OPTIONS: FAULT });
    await broker.process.waitForLog("error tracking on");
    const { instanceId } = (await (await fetch(`${broker.url}/health`)).json()) as { instanceId: string };

    process.kill(broker.process.pid, "SIGUSR2");
    expect(await broker.process.exited).toBe(70);
    const uncaught = await ingest.waitForEvent("uncaught exception", (e) => e.tags?.event === "uncaught exception");
    expect(uncaught.level).toBe("fatal");
    expect(uncaught.release).toMatch(/^switchboard-broker@0\.1\.0\+/);
    expect(uncaught.environment).toBe("test");
    expect(uncaught.tags?.instance).toBe(instanceId);
    const exception = uncaught.exception?.values?.at(-1);
    expect(exception?.type).toBe("Error");
    expect(exception?.value).toBe("injected fault near [redacted]");
    expect(exception?.stacktrace?.frames?.some((f) => f.filename?.endsWith("inject-fault.ts"))).toBe(true);

    expect(ingest.requests.every((r) => r.path === `/api/${SENTRY_PROJECT}/envelope/`)).toBe(true);
    expect(rawBodies()).not.toContain(TEST_ADMIN_TOKEN);
    // The SDK writes nothing of its own to the log stream.
    for (const line of broker.process.stderrText().trim().split("\n")) expect(() => JSON.parse(line)).not.toThrow();
  });

  test("a stop signal is reported with the instance and its uptime", async () => {
    broker = await TestBroker.start({ SENTRY_DSN: ingest.dsn });
    const { instanceId } = (await (await fetch(`${broker.url}/health`)).json()) as { instanceId: string };
    broker.process.kill("SIGTERM");
    expect(await broker.process.exited).toBe(0);
    const stop = await ingest.waitForEvent("shutdown signal", (e) => e.tags?.event === "shutdown signal");
    expect(stop).toMatchObject({ level: "info", tags: { signal: "SIGTERM", instance: instanceId } });
    expect(stop.extra).toEqual({ instanceId, uptimeSeconds: expect.any(Number) });
  });

  test.skipIf(backendKind !== "postgres")(
    "a failed send batch is reported with its context and without the message",
    async () => {
      broker = await TestBroker.start({ SENTRY_DSN: ingest.dsn });
      const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
      const alice = await pool.connect(broker.wsUrl, members[0]!, mesh.id);

      // The database refuses every new message from here on.
      const sql = postgres(broker.backend.databaseUrl!, { max: 1, onnotice: () => {} });
      try {
        await sql.unsafe(`
          CREATE FUNCTION refuse_messages() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
          CREATE TRIGGER refuse_messages BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_messages();`);
      } finally {
        await sql.end();
      }

      // Pipelined: the first send is flushed alone, the others queue behind it
      // and go out together as one batch.
      const frames = Array.from({ length: 20 }, () => sendFrame(members[1]!.pubkey));
      const replies = await sendMany(alice, frames);
      expect(replies.every((r) => r.type === "error" && r.code === "internal")).toBe(true);

      const isFailure = (event: string) => (e: SentryEvent) => e.tags?.event === event;
      const batch = await ingest.waitForEvent("send batch failed", isFailure("send batch failed; writing its sends one by one"));
      expect(batch.level).toBe("warning");
      expect(batch.extra?.sends).toBeGreaterThan(1);
      expect(batch.exception?.values?.at(-1)?.value).toContain("injected failure");
      const single = await ingest.waitForEvent("send failed", isFailure("send failed"));
      expect(single.level).toBe("error");
      expect(single.exception?.values?.at(-1)?.value).toContain("injected failure");

      // Reports are rationed per event name: at most 10 a minute.
      broker.process.kill("SIGTERM");
      expect(await broker.process.exited).toBe(0);
      await ingest.waitForEvent("shutdown signal", isFailure("shutdown signal"));
      const logged = broker.process.logs.filter((l) => l.msg === "send failed").length;
      expect(ingest.events().filter(isFailure("send failed")).length).toBe(Math.min(logged, 10));

      const bodies = rawBodies();
      for (const frame of frames) {
        expect(bodies).not.toContain(String(frame.ciphertext));
        expect(bodies).not.toContain(String(frame.nonce));
      }
      expect(bodies).not.toContain(TEST_ADMIN_TOKEN);
    },
  );

  test.each([
    ["unset", {}],
    ["empty", { SENTRY_DSN: "" }],
  ])("SENTRY_DSN %s: the same faults send nothing", async (_, env) => {
    broker = await TestBroker.start({ ...env, BUN_OPTIONS: FAULT });
    process.kill(broker.process.pid, "SIGUSR2");
    expect(await broker.process.exited).toBe(70);
    expect(broker.process.logs.some((l) => l.msg === "uncaught exception")).toBe(true);
    expect(broker.process.logs.some((l) => l.msg === "error tracking on")).toBe(false);
    expect(ingest.requests).toEqual([]);
  });
});
