// The flows of the systems Switchboard replaces, end to end with real
// processes: a web app that has only fetch (HttpSender, and a Bun.serve
// webhook endpoint on loopback) commands a runner (the SDK over /ws, in a
// process of its own) and receives its events durably; a service calls a
// tool on another broker instance.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { PushFrame } from "@switchboard/protocol";
import {
  backendKind,
  failOnInsert,
  failReplyHolds,
  freePort,
  pushesBeforeMarker,
  setupMesh,
  TestBroker,
  TestPeer,
  useTestBroker,
  useTestBrokerPair,
  waitUntil,
  WebhookReceiver,
  within,
  type AdminClient,
  type BrokerProcess,
  type SetupMember,
} from "@switchboard/testkit";
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBrowserBundle } from "../build-bundles.ts";
import { HttpSender, SwitchboardError, verifyWebhook } from "../src/index.ts";
import { failureWhileStopped } from "./support.ts";

const SECRET = "app-webhook-secret-0123456789";
const RUNNER = join(import.meta.dir, "fixtures", "runner.ts");

type RunnerLine = Record<string, unknown> & { event: string };

/** The runner fixture as a child process; its stdout lines, parsed. */
class RunnerProcess {
  readonly lines: RunnerLine[] = [];
  private constructor(private readonly proc: Subprocess<"ignore", "pipe", "inherit">) {
    void (async () => {
      let pending = "";
      for await (const chunk of proc.stdout) {
        pending += new TextDecoder().decode(chunk);
        let nl: number;
        while ((nl = pending.indexOf("\n")) >= 0) {
          this.lines.push(JSON.parse(pending.slice(0, nl)) as RunnerLine);
          pending = pending.slice(nl + 1);
        }
      }
    })();
  }

  static async start(url: string, meshId: string, member: SetupMember): Promise<RunnerProcess> {
    const proc = Bun.spawn(["bun", RUNNER], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", RUNNER_URL: url, RUNNER_MESH: meshId, RUNNER_SECRET_KEY: member.identity.secretKey },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "inherit",
    });
    const runner = new RunnerProcess(proc);
    runners.push(runner);
    await runner.waitFor((l) => l.event === "ready", 30_000, "the runner to connect");
    return runner;
  }

  waitFor(match: (line: RunnerLine) => boolean, timeoutMs: number, what: string): Promise<RunnerLine> {
    return waitUntil(() => this.lines.find(match), timeoutMs, `${what}; runner said ${JSON.stringify(this.lines.slice(-5))}`);
  }

  commands(): RunnerLine[] {
    return this.lines.filter((l) => l.event === "command");
  }

  async stop(): Promise<void> {
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 5000);
    await this.proc.exited;
    clearTimeout(timer);
  }
}

interface RawAnswer {
  /** The bytes written back, status line to body. */
  raw: string;
  /** Then: close the connection, or leave it open with nothing more (a body that stalls). */
  then: "end" | "stall";
}

function rawResponse(status: number, contentType: string, body: string): string {
  const length = new TextEncoder().encode(body).length;
  return `HTTP/1.1 ${status} Status\r\nContent-Type: ${contentType}\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n${body}`;
}

/** A loopback HTTP server speaking raw bytes, so it can cut or stall a body: each connection gets the next answer. */
function rawHttpServer(answers: RawAnswer[]): { url: string; stop(): void } {
  const server = Bun.listen<{ answered: boolean }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { answered: false };
      },
      data(socket) {
        if (socket.data.answered) return;
        socket.data.answered = true;
        const answer = answers.shift();
        if (answer === undefined) return void socket.end();
        socket.write(answer.raw);
        if (answer.then === "end") socket.end();
      },
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}

const runners: RunnerProcess[] = [];
const receivers: WebhookReceiver[] = [];
afterEach(async () => {
  await Promise.all(runners.splice(0).map((r) => r.stop()));
  await Promise.all(receivers.splice(0).map((r) => r.stop()));
});

async function appSender(admin: AdminClient, url: string, meshId: string, app: SetupMember): Promise<HttpSender> {
  return HttpSender.create({ url, token: await admin.createApiToken(meshId, app.id), secretKey: app.identity.secretKey });
}

describe("command routing: a web app commands a runner over HTTP", () => {
  const broker = useTestBroker();

  test("the runner's reply comes back in the response to the command, woken by its commit", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "runner"] });
    const [app, runnerMember] = members as [SetupMember, SetupMember];
    await RunnerProcess.start(broker.url, mesh.id, runnerMember);
    const sender = await appSender(broker.admin, broker.url, mesh.id, app);
    const answer = await within(sender.request(runnerMember.pubkey, { cmd: "echo", value: 42 }, { waitSeconds: 60 }), 20_000, "the reply");
    expect(answer.duplicate).toBe(false);
    expect(answer.reply).toMatchObject({ senderPubkey: runnerMember.pubkey, replyTo: answer.messageId, encrypted: true, payload: { ok: true, echo: 42 } });
    // The runner's SDK acks in batches, so its ack may trail its reply.
    let states: string[][] = [];
    for (const until = Date.now() + 10_000; Date.now() < until; await Bun.sleep(100)) {
      states = (await sender.status(answer.messageId)).recipients.map((r) => [r.pubkey, r.state]);
      if (states[0]?.[1] === "acked") break;
    }
    expect(states).toEqual([[runnerMember.pubkey, "acked"]]);
  });

  test("an app without the member's key sends in the clear, and the runner's SDK answers in kind", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "runner"] });
    const [app, runnerMember] = members as [SetupMember, SetupMember];
    await RunnerProcess.start(broker.url, mesh.id, runnerMember);
    const sender = await HttpSender.create({ url: broker.url, token: await broker.admin.createApiToken(mesh.id, app.id) });
    expect(sender.publicKey).toBeNull();
    const answer = await sender.request(runnerMember.pubkey, { cmd: "echo", value: "plain" }, { waitSeconds: 10 });
    expect(answer.reply).toMatchObject({ encrypted: false, payload: { ok: true, echo: "plain" } });
  });

  // Node's AbortSignal.timeout, as a browser's setTimeout, fires at once for a delay past 2^31 − 1 ms.
  test.skipIf(Bun.which("node") === null)("under Node, a request with the longest timeoutMs waits its waitSeconds out, not aborted at once (needs node)", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "runner"] });
    const [app, runnerMember] = members as [SetupMember, SetupMember];
    const dir = mkdtempSync(join(tmpdir(), "switchboard-bundle-"));
    try {
      const { path } = await buildBrowserBundle(join(dir, "switchboard.browser.js"));
      const env = { PATH: process.env.PATH ?? "", BUNDLE: path, BROKER_URL: broker.url, API_TOKEN: await broker.admin.createApiToken(mesh.id, app.id), TARGET: runnerMember.pubkey };
      const child = Bun.spawn(["node", join(import.meta.dir, "fixtures", "node-request.mjs")], { env, stdout: "pipe", stderr: "ignore" });
      await within(child.exited, 30_000, "the Node process");
      expect(await new Response(child.stdout).text()).toBe("reply null\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a base URL is taken as a URL: one with a query or fragment, or no host, is refused invalid; its scheme in any case is taken", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "runner"] });
    const [app, runnerMember] = members as [SetupMember, SetupMember];
    const token = await broker.admin.createApiToken(mesh.id, app.id);
    // The routes are added to the URL's path: behind a query or fragment they were lost (POST / → not_found).
    for (const url of [`${broker.url}/?via=edge`, `${broker.url}?`, `${broker.url}/#top`, "http://", "http://[::1"]) {
      const made = await HttpSender.create({ url, token }).catch((error: unknown) => error);
      expect(made).toMatchObject({ code: "invalid", message: expect.stringMatching(/^url: /) });
    }
    const shouted = await HttpSender.create({ url: broker.url.replace(/^http:/, "HTTP:"), token });
    expect(await shouted.send(runnerMember.pubkey, "loud")).toMatchObject({ recipients: 1, duplicate: false });
    const slashed = await HttpSender.create({ url: `${broker.url}//`, token });
    expect(await slashed.send(runnerMember.pubkey, "slashed")).toMatchObject({ recipients: 1, duplicate: false });
  });

  test("a token no Authorization header carries is refused invalid at create, without echoing it; one with a line end around it sends", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "runner"] });
    const [app, runnerMember] = members as [SetupMember, SetupMember];
    const token = await broker.admin.createApiToken(mesh.id, app.id);
    // fetch refused such a header: the send failed as unreachable, naming a key as if it might be stored.
    for (const bad of [`${token}…`, "sba_…", `sba_a\u0000b`, "sba_a b", `${token.slice(0, 10)}\r\n${token.slice(10)}`]) {
      const made = await HttpSender.create({ url: broker.url, token: bad }).catch((error: unknown) => error);
      expect(made).toMatchObject({ code: "invalid", message: "token: holds whitespace, a control character or a character beyond Latin-1 (a copy cut short with …?), which no Authorization header carries" });
    }
    // None (from JavaScript, not even a string) is refused as such, not thrown as a TypeError.
    for (const none of ["", " \n", undefined]) {
      const made = await HttpSender.create({ url: broker.url, token: none as unknown as string }).catch((error: unknown) => error);
      expect(made).toMatchObject({ code: "invalid", message: "token: an API token is required" });
    }
    // Read from a file, with its line end: the line end is no part of the token.
    const fromFile = await HttpSender.create({ url: broker.url, token: `${token}\r\n` });
    expect(await fromFile.send(runnerMember.pubkey, "from a file")).toMatchObject({ recipients: 1, duplicate: false });
  });

  test("a reply the sender cannot open comes back as unreadableReply, the send not failed", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "runner"] });
    const [app, runnerMember] = members as [SetupMember, SetupMember];
    const runner = await TestPeer.connect(broker.wsUrl, { identity: runnerMember.identity, meshId: mesh.id });
    try {
      // Without the member's key: a sealed reply cannot be opened here.
      const sender = await HttpSender.create({ url: broker.url, token: await broker.admin.createApiToken(mesh.id, app.id) });
      const asking = sender.request(runnerMember.pubkey, "hello", { waitSeconds: 10 });
      const [command] = await runner.waitForPushes(1);
      const sealed = await runner.send(app.pubkey, { replyTo: String(command!.messageId) });
      const answer = await asking;
      expect(answer.messageId).toBe(String(command!.messageId));
      expect(answer.reply).toBeNull();
      expect(answer.unreadableReply?.messageId).toBe(String(sealed.messageId));
      expect(answer.unreadableReply?.error.code).toBe("decrypt_failed");
    } finally {
      await runner.close();
    }
  });

  test("a send that timed out names its idempotency key: sent again with it, the broker stores it once", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "runner", "marker"] });
    const [app, runnerMember, markerMember] = members as [SetupMember, SetupMember, SetupMember];
    const token = await broker.admin.createApiToken(mesh.id, app.id);
    const sender = await HttpSender.create({ url: broker.url, token, timeoutMs: 300 });
    const failure = await failureWhileStopped(broker.process.pid, () => sender.send(runnerMember.pubkey, "once"));
    const { code, sendId } = failure as SwitchboardError;
    expect(code).toBe("timeout");
    expect(sendId).toMatch(/^[0-9a-f-]{36}$/);
    // Whether or not the broker went on to store the first request, the key makes it one message.
    // (Sent with the default timeout: a broker just resumed may take longer than 300 ms.)
    const patient = await HttpSender.create({ url: broker.url, token });
    const again = await patient.send(runnerMember.pubkey, "once", { idempotencyKey: sendId! });
    const once = await patient.send(runnerMember.pubkey, "once", { idempotencyKey: sendId! });
    expect(once.messageId).toBe(again.messageId);
    expect(once.duplicate).toBe(true);
    // And the runner is owed that one message only, whatever the timed-out request did.
    const runner = await TestPeer.connect(broker.wsUrl, { identity: runnerMember.identity, meshId: mesh.id });
    const marker = await TestPeer.connect(broker.wsUrl, { identity: markerMember.identity, meshId: mesh.id });
    try {
      expect((await pushesBeforeMarker(marker, runner)).map((p) => p.messageId)).toEqual([again.messageId]);
    } finally {
      await Promise.all([runner.close(), marker.close()]);
    }
  });

  test.skipIf(backendKind !== "postgres")("a send answered 500 internal names its idempotency key too (needs DATABASE_URL)", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "runner"] });
    const [app, runnerMember] = members as [SetupMember, SetupMember];
    const sender = await HttpSender.create({ url: broker.url, token: await broker.admin.createApiToken(mesh.id, app.id) });
    // Without the app's key the text goes in the clear: the statement writing it is made to fail.
    const text = `refused once ${crypto.randomUUID()}`;
    const release = await failOnInsert(broker.backend.databaseUrl!, { messageCiphertext: Buffer.from(JSON.stringify(text)).toString("base64") });
    let failure: unknown;
    try {
      failure = await sender.send(runnerMember.pubkey, text).then(
        () => null,
        (error: unknown) => error,
      );
    } finally {
      await release();
    }
    const { code, sendId } = failure as SwitchboardError;
    expect({ code, sendId }).toEqual({ code: "internal", sendId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    const again = await sender.send(runnerMember.pubkey, text, { idempotencyKey: sendId! });
    expect(again).toMatchObject({ idempotencyKey: sendId, duplicate: false, recipients: 1 });
  });

  test("an answer that is not the broker's (a proxy's 504 page) or that cannot be read names the idempotency key", async () => {
    // What a load balancer in front of the broker may answer: a 504 page after
    // its own timeout (the broker may have the message), or a 2xx mangled.
    const answers = [
      new Response("<html><body>504 Gateway Time-out</body></html>", { status: 504, headers: { "content-type": "text/html" } }),
      new Response("<html>ok</html>", { status: 201, headers: { "content-type": "text/html" } }),
    ];
    const proxy = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => answers.shift() ?? new Response("", { status: 500 }) });
    try {
      const sender = await HttpSender.create({ url: `http://127.0.0.1:${proxy.port}`, token: "sba_token" });
      const target = "a".repeat(64);
      for (const expected of ["unreachable", "protocol"]) {
        const failure = await sender.send(target, "hi", { idempotencyKey: `key-${expected}` }).then(
          () => null,
          (error: SwitchboardError) => error,
        );
        expect({ code: failure?.code, sendId: failure?.sendId }).toEqual({ code: expected, sendId: `key-${expected}` });
      }
    } finally {
      await proxy.stop(true);
    }
  });

  test("every answer that is not the broker's (cut off, too slow, not JSON, JSON of another shape, 2xx or not) is a SwitchboardError with its HTTP status", async () => {
    const html = "<html><body>proxy</body></html>";
    const answers: RawAnswer[] = [
      { raw: rawResponse(502, "text/html", html), then: "end" },
      // 2xx, but no send answer: no messageId, so no proof the broker stored anything.
      { raw: rawResponse(200, "application/json", "{}"), then: "end" },
      { raw: rawResponse(201, "application/json", "null"), then: "end" },
      { raw: rawResponse(201, "application/json", '{"messageId":"m-1","queued":true,"recipients":"two"}'), then: "end" },
      { raw: rawResponse(201, "text/html", html), then: "end" },
      // JSON, but not the API's error body (the hook route's shape).
      { raw: rawResponse(400, "application/json", '{"ok":false,"error":"bad"}'), then: "end" },
      // Bodies cut off by a dropped connection, or stalled past the timeout.
      { raw: rawResponse(503, "text/html", html).slice(0, -10), then: "end" },
      { raw: rawResponse(504, "text/html", html).slice(0, -10), then: "stall" },
      { raw: rawResponse(201, "application/json", '{"messageId":"m-2","queued":true,"recipients":1}').slice(0, -10), then: "stall" },
      // The broker's own refusal keeps its code, and has a verdict: nothing to send again.
      { raw: rawResponse(429, "application/json", '{"error":{"code":"rate_limited","message":"slow down"}}'), then: "end" },
    ];
    const server = rawHttpServer(answers);
    try {
      // A stalled answer is waited for 2 s; any other as long as a loaded machine may take to write it.
      const sender = await HttpSender.create({ url: server.url, token: "sba_token", timeoutMs: 60_000 });
      const stalled = await HttpSender.create({ url: server.url, token: "sba_token", timeoutMs: 2000 });
      const outcomes = [];
      for (let i = 0, count = answers.length; i < count; i++) {
        const by = answers[0]?.then === "stall" ? stalled : sender; // the server takes its answers off the front
        const failure = await by.send("a".repeat(64), "hi", { idempotencyKey: `key-${i}` }).then(
          (result) => result,
          (error: unknown) => error,
        );
        outcomes.push(failure instanceof SwitchboardError ? { code: failure.code, sendId: failure.sendId, httpStatus: failure.httpStatus } : failure);
      }
      expect(outcomes).toEqual([
        { code: "unreachable", sendId: "key-0", httpStatus: 502 },
        { code: "protocol", sendId: "key-1", httpStatus: 200 },
        { code: "protocol", sendId: "key-2", httpStatus: 201 },
        { code: "protocol", sendId: "key-3", httpStatus: 201 },
        { code: "protocol", sendId: "key-4", httpStatus: 201 },
        { code: "protocol", sendId: "key-5", httpStatus: 400 },
        { code: "unreachable", sendId: "key-6", httpStatus: 503 },
        { code: "timeout", sendId: "key-7", httpStatus: 504 },
        { code: "timeout", sendId: "key-8", httpStatus: 201 },
        { code: "rate_limited", sendId: undefined, httpStatus: 429 },
      ]);
      // status() reads its answer the same way.
      for (const [contentType, body] of [["text/html", html], ["application/json", '{"messageId":"m-3"}']] as const) {
        answers.push({ raw: rawResponse(200, contentType, body), then: "end" });
        const failure = await sender.status("m-3").then(
          (view) => view,
          (error: unknown) => error,
        );
        expect(failure).toBeInstanceOf(SwitchboardError);
        expect(failure).toMatchObject({ code: "protocol", httpStatus: 200 });
      }
    } finally {
      server.stop();
    }
  });

  test("an idempotency key no request can carry is refused as invalid before anything is sent, naming no key to retry with", async () => {
    let requests = 0;
    const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => (requests++, new Response("{}", { status: 201 })) });
    try {
      const sender = await HttpSender.create({ url: `http://127.0.0.1:${server.port}`, token: "sba_token" });
      for (const key of ["line\nbreak", "with space", "", "k".repeat(65)]) {
        const failure = await sender.send("a".repeat(64), "hi", { idempotencyKey: key }).then(
          () => null,
          (error: SwitchboardError) => error,
        );
        expect({ key, code: failure?.code, sendId: failure?.sendId }).toEqual({ key, code: "invalid", sendId: undefined });
      }
      expect(requests).toBe(0);
    } finally {
      await server.stop(true);
    }
  });

  test("with the runner offline the command is queued and delivered when it connects; a retry with the same key makes no second command", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "runner"] });
    const [app, runnerMember] = members as [SetupMember, SetupMember];
    const sender = await appSender(broker.admin, broker.url, mesh.id, app);
    const first = await sender.request(runnerMember.pubkey, { cmd: "echo", value: "later" }, { waitSeconds: 1, idempotencyKey: "cmd-7" });
    expect(first.reply).toBeNull();
    expect((await sender.status(first.messageId)).recipients.map((r) => r.state)).toEqual(["queued"]);

    const runner = await RunnerProcess.start(broker.url, mesh.id, runnerMember);
    const retried = await sender.request(runnerMember.pubkey, { cmd: "echo", value: "later" }, { waitSeconds: 10, idempotencyKey: "cmd-7" });
    expect(retried).toMatchObject({ messageId: first.messageId, duplicate: true, reply: { replyTo: first.messageId, payload: { ok: true, echo: "later" } } });
    // A command sent after both reaches the runner after the first and only copy.
    const marker = await sender.request(runnerMember.pubkey, { cmd: "echo", value: "marker" }, { waitSeconds: 10 });
    expect(marker.reply?.payload).toEqual({ ok: true, echo: "marker" });
    expect(runner.commands().map((l) => l.messageId)).toEqual([first.messageId, marker.messageId]);
  });
});

// The broker's answer leaves the reply out when its wait failed once the
// message was stored (docs/http.md, "Stored, then failed"): a trigger that
// refuses the hold of the replies makes it fail, on a Postgres the test can
// reach beside the broker.
describe.skipIf(backendKind !== "postgres")("a request whose wait failed once stored (needs DATABASE_URL)", () => {
  const broker = useTestBroker();

  test("request says waitFailed, not a reply that did not come; the same key waits again", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "runner"] });
    const [app, runner] = members as [SetupMember, SetupMember];
    const sender = await appSender(broker.admin, broker.url, mesh.id, app);
    const allowHolds = await failReplyHolds(broker.backend.databaseUrl!);
    let failed;
    try {
      failed = await sender.request(runner.pubkey, { cmd: "deploy" }, { waitSeconds: 1, idempotencyKey: "deploy-1" });
    } finally {
      await allowHolds();
    }
    expect(failed).toMatchObject({ idempotencyKey: "deploy-1", duplicate: false, reply: null, unreadableReply: null, waitFailed: true });
    // Waited this time: no reply came within the second.
    const again = await sender.request(runner.pubkey, { cmd: "deploy" }, { waitSeconds: 1, idempotencyKey: "deploy-1" });
    expect(again).toMatchObject({ messageId: failed.messageId, duplicate: true, reply: null, waitFailed: false });
  });
});

describe("a sender past its rate limit (SEND_RATE_LIMIT_PER_MIN=2)", () => {
  const broker = useTestBroker({ SEND_RATE_LIMIT_PER_MIN: "2" });

  test("is refused rate_limited with the broker's Retry-After as a number of seconds, and no key to send again with", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "runner"] });
    const [app, runnerMember] = members as [SetupMember, SetupMember];
    const sender = await appSender(broker.admin, broker.url, mesh.id, app);
    for (let i = 0; i < 2; i++) await sender.send(runnerMember.pubkey, { n: i });
    const failure = await sender.send(runnerMember.pubkey, { n: 2 }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(SwitchboardError);
    const { code, httpStatus, sendId, retryAfterSeconds } = failure as SwitchboardError;
    expect({ code, httpStatus, sendId }).toEqual({ code: "rate_limited", httpStatus: 429, sendId: undefined });
    expect(retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect((failure as SwitchboardError).message).toEndWith(`(retry after ${retryAfterSeconds} s)`);
  });
});

// Every request the endpoint got, and how it answered: a web app processes
// what it answers with a 2xx (late or not), and de-duplicates by messageId.
interface Delivery {
  status: number;
  messages: PushFrame[];
}

describe("event forwarding: the runner's events reach the web app's webhook through a 60 s outage", () => {
  let a: TestBroker;
  let b: TestBroker | undefined;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    const env = {
      WEBHOOK_ALLOW_PRIVATE: "true",
      WEBHOOK_TIMEOUT_MS: "1000",
      WEBHOOK_BACKOFF_MIN_MS: "200",
      WEBHOOK_BACKOFF_MAX_MS: "3000",
      LEASE_SECONDS: "3",
      INSTANCE_LEASE_SECONDS: "3",
      CATCH_UP_INTERVAL_MS: "500",
      SWEEP_INTERVAL_MS: "500",
    };
    a = await TestBroker.start({ ...env, BROKER_PORT: String(port) });
    // On a shared Postgres a second instance runs throughout; embedded mode is one process.
    if (a.backend.kind === "postgres") b = await TestBroker.start(env, { backend: a.backend });
  });
  afterAll(async () => {
    await b?.dispose();
    await a?.dispose();
  });

  test(
    "500s, timeouts, refused connections and a SIGKILLed instance: every event arrives once, in order, signed",
    async () => {
      const url = `http://127.0.0.1:${port}`;
      const admin = a.admin;
      // Every broker process of the test, the killed one included, for their logs.
      const processes: BrokerProcess[] = [a.process, ...(b ? [b.process] : [])];
      const { mesh, members } = await setupMesh(admin, { members: ["app", "runner"] });
      const [app, runnerMember] = members as [SetupMember, SetupMember];
      const sender = await appSender(admin, url, mesh.id, app);

      let phase: "ok" | "errors" | "timeouts" = "ok";
      const deliveries: Delivery[] = [];
      const badSignatures: SwitchboardError[] = [];
      const endpoint = await WebhookReceiver.start((request) => {
        const status = phase === "errors" ? 500 : 200;
        const delivery: Delivery = { status, messages: [] };
        deliveries.push(delivery);
        verifyWebhook(SECRET, request.headers, request.body).then(
          (batch) => delivery.messages.push(...batch.messages),
          (error: SwitchboardError) => badSignatures.push(error),
        );
        // Too slow: the broker gives up after WEBHOOK_TIMEOUT_MS and sends the batch again.
        return { status, delayMs: phase === "timeouts" ? 1500 : 0 };
      });
      receivers.push(endpoint);
      await admin.setWebhook(mesh.id, app.id, `${endpoint.url}/switchboard`, SECRET);
      await RunnerProcess.start(url, mesh.id, runnerMember);

      const events = 50;
      const started = Date.now();
      const at = (second: number) => Bun.sleep(Math.max(0, started + second * 1000 - Date.now()));
      const attempts = (outcome: string) => processes.reduce((n, p) => n + p.logs.filter((l) => l.msg === "webhook" && l.outcome === outcome).length, 0);
      // A phase lasts until its second, and until an instance has met its
      // failure once more: on a slow machine (an instance slow to start
      // again) a phase kept by the clock alone could pass untried.
      const phaseEnds = async (second: number, outcome: string) => {
        const before = attempts(outcome);
        await at(second);
        await waitUntil(() => attempts(outcome) > before || undefined, 120_000, `a webhook attempt ending ${outcome}`);
      };
      phase = "errors";
      await sender.send(runnerMember.pubkey, { cmd: "emit", count: events, everyMs: 1000 });
      await phaseEnds(20, "http_error");
      phase = "timeouts";
      await phaseEnds(30, "timeout");
      // The endpoint goes away; while it is, the instance the runner and the
      // app use dies, and comes back on the same port.
      await endpoint.stop();
      await phaseEnds(35, "network");
      a.process.kill("SIGKILL");
      await a.process.exited;
      await Bun.sleep(1000);
      processes.push((await a.start()).process);
      await at(60);
      phase = "ok";
      endpoint.listen();

      const opened = () => {
        const seen = new Set<string>();
        const seqs: number[] = [];
        for (const d of deliveries.filter((x) => x.status < 300)) {
          for (const push of d.messages) {
            if (seen.has(push.messageId)) continue;
            seen.add(push.messageId);
            const payload = sender.open(push).payload as { event?: string; seq?: number };
            if (payload.event === "progress") seqs.push(payload.seq!);
          }
        }
        return seqs;
      };
      await waitUntil(() => opened().length >= events || undefined, 120_000, `all ${events} events (have ${opened().length})`);
      expect(opened()).toEqual(Array.from({ length: events }, (_, i) => i + 1));
      expect(badSignatures).toEqual([]);
      // The outage was real: the endpoint saw failures of every kind before it recovered.
      expect(deliveries.some((d) => d.status === 500)).toBe(true);
      expect(attempts("timeout")).toBeGreaterThan(0);
      expect(attempts("network")).toBeGreaterThan(0);
    },
    300_000,
  );
});

describe.skipIf(backendKind !== "postgres")("tool calls across instances (needs DATABASE_URL: two instances share a Postgres server)", () => {
  const pair = useTestBrokerPair();

  test("a caller on instance A gets the reply of a tool on instance B, woken by its commit", async () => {
    const { a, b } = pair;
    const admin = a.admin;
    const { mesh, members } = await setupMesh(admin, { members: ["caller", "tool"] });
    const [caller, tool] = members as [SetupMember, SetupMember];
    await RunnerProcess.start(b.url, mesh.id, tool);
    const sender = await appSender(admin, a.url, mesh.id, caller);
    for (const [x, y] of [
      [2, 3],
      [40, 2],
    ] as const) {
      // The longest wait: a request that were not woken by the reply would only look again at its end.
      const answer = await within(sender.request(tool.pubkey, { cmd: "add", a: x, b: y }, { waitSeconds: 60 }), 20_000, "the reply");
      expect(answer.reply?.payload).toEqual({ result: x + y });
    }
  });
});
