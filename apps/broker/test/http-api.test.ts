// PROTOCOL.md §7 against a real broker: API tokens, POST /v1/messages with
// Idempotency-Key (one namespace with the socket's id), every error code,
// ?wait=S request/reply (woken by the reply's commit, acked on return, left
// queued when the caller goes away, bounded per instance and per member), and
// GET /v1/messages/:id.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import {
  backendKind,
  newIdentity,
  ownPostgresTestsRun,
  PeerPool,
  RawWebSocket,
  setupMesh,
  startBrokerOnOwnPostgres,
  useTestBroker,
  useTestBrokerPair,
  waitUntil,
  type BrokerOnOwnPostgres,
  type SetupMember,
} from "@switchboard/testkit";
import { httpBody, messageStatus, postCutShort, postMessage, rawRequest, type ErrorBody } from "./support/http-api.ts";
import { deltas, ISO, queryPostgres, scrape, str, UUID } from "./support/messaging.ts";

const MAX_MESSAGE_BYTES = 4096;
const SEND_RATE_LIMIT_PER_MIN = 20;
const MAX_REPLY_WAITERS = 2;

const pool = new PeerPool();
afterEach(() => pool.closeAll());

interface SendReply {
  messageId: string;
  queued: boolean;
  recipients: number;
  duplicate?: boolean;
  reply?: Record<string, unknown> | null;
}

interface StatusBody {
  messageId: string;
  createdAt: string;
  expiresAt: string;
  recipients: Array<{ pubkey: string; state: string; attempt: number; deliveredAt: string | null; ackedAt: string | null }>;
}

describe("HTTP messaging API", () => {
  const broker = useTestBroker({
    MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES),
    SEND_RATE_LIMIT_PER_MIN: String(SEND_RATE_LIMIT_PER_MIN),
    MAX_REPLY_WAITERS: String(MAX_REPLY_WAITERS),
    LOG_LEVEL: "debug",
  });

  /** A mesh of members; the first ones get API tokens. */
  async function meshWithTokens(members: number, withTokens = 1) {
    const setup = await setupMesh(broker.admin, { members });
    const tokens = await Promise.all(setup.members.slice(0, withTokens).map((m) => broker.admin.createApiToken(setup.mesh.id, m.id)));
    return { ...setup, tokens };
  }

  const post = <T = SendReply>(token: string | null, body: unknown, options = {}) => postMessage<T>(broker.url, token, body, options);
  const connect = (meshId: string, member: SetupMember) => pool.connect(broker.wsUrl, member, meshId);

  const expectError = (answer: { status: number; body: unknown }, status: number, code: string) => {
    expect({ status: answer.status, code: (answer.body as ErrorBody).error?.code }).toEqual({ status, code });
    expect(typeof (answer.body as ErrorBody).error.message).toBe("string");
  };

  test("an API token sends as its member: 201 once committed, pushed to the recipient with every field", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    expect(tokens[0]).toMatch(/^sba_/);
    const peer = await connect(mesh.id, runner);

    const sent = await post(tokens[0]!, httpBody(runner.pubkey, { nonce: "n-1", ciphertext: "c2VjcmV0", priority: "now", ttlSeconds: 600 }));
    expect(sent.status).toBe(201);
    expect(sent.body).toEqual({ messageId: expect.stringMatching(UUID), queued: true, recipients: 1 });

    const [push] = await peer.waitForPushes(1);
    expect(push).toEqual({
      type: "push",
      messageId: sent.body.messageId,
      meshId: mesh.id,
      senderPubkey: app.pubkey,
      targetSpec: runner.pubkey,
      priority: "now",
      nonce: "n-1",
      ciphertext: "c2VjcmV0",
      createdAt: expect.stringMatching(ISO),
      replyTo: null,
      attempt: 1,
    });
  });

  test("Idempotency-Key: the same key again is 200 with the first messageId; it shares the member's namespace with the socket id", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    const token = tokens[0]!;
    const first = await post(token, httpBody(runner.pubkey), { key: "cmd-1" });
    const again = await post(token, httpBody(runner.pubkey), { key: "cmd-1" });
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ messageId: first.body.messageId, queued: true, recipients: 1, duplicate: true });

    // The socket's id and the HTTP key are one namespace, both ways round.
    const appSocket = await connect(mesh.id, app);
    const overSocket = await appSocket.send(runner.pubkey, { id: "cmd-1" });
    expect(overSocket).toMatchObject({ type: "ack", messageId: first.body.messageId, duplicate: true });
    const socketFirst = await appSocket.send(runner.pubkey, { id: "sock-1" });
    const overHttp = await post(token, httpBody(runner.pubkey), { key: "sock-1" });
    expect(overHttp.status).toBe(200);
    expect(overHttp.body.messageId).toBe(str(socketFirst.messageId));

    // A key of non-ASCII text goes as its UTF-8 bytes (a header carries a
    // byte per character): the same key as that text on a socket.
    const socketText = await appSocket.send(runner.pubkey, { id: "ключ-1" });
    const overHttpText = await post(token, httpBody(runner.pubkey), { key: Buffer.from("ключ-1", "utf8").toString("latin1") });
    expect(overHttpText).toMatchObject({ status: 200, body: { messageId: str(socketText.messageId), duplicate: true } });
    // The header given twice with one key (a proxy that adds it again) comes joined as "key, key": that key.
    const twice = await post(token, httpBody(runner.pubkey), { key: "cmd-1, cmd-1" });
    expect(twice).toMatchObject({ status: 200, body: { messageId: first.body.messageId, duplicate: true } });
    const notUtf8 = await post<ErrorBody>(token, httpBody(runner.pubkey), { key: "caf\u00e9" });
    expect(notUtf8).toMatchObject({ status: 400, body: { error: { code: "invalid", message: "Idempotency-Key must be text in UTF-8" } } });

    // The body is not compared: the key again with a target nobody holds is still the first copy, not 404 unknown_target.
    const elsewhere = await post(token, httpBody("ab".repeat(32)), { key: "cmd-1" });
    expect(elsewhere).toMatchObject({ status: 200, body: { messageId: first.body.messageId, duplicate: true } });

    // The runner gets each message once: the three, then a marker sent after them.
    const peer = await connect(mesh.id, runner);
    const marker = await post(token, httpBody(runner.pubkey));
    const pushes = await peer.waitForPushes(4);
    expect(pushes.map((p) => p.messageId)).toEqual([first.body.messageId, socketFirst.messageId, socketText.messageId, marker.body.messageId]);
  });

  test("an Idempotency-Key is counted in characters, as a socket's id is: 64 beyond the BMP are a key, 65 are not", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    const header = (text: string) => Buffer.from(text, "utf8").toString("latin1");
    // Each is one character, and two UTF-16 code units.
    const key = "\u{1F511}".repeat(64);
    const appSocket = await connect(mesh.id, app);
    const overSocket = await appSocket.send(runner.pubkey, { id: key });
    expect(overSocket).toMatchObject({ type: "ack", queued: true });
    const overHttp = await post(tokens[0]!, httpBody(runner.pubkey), { key: header(key) });
    expect(overHttp).toMatchObject({ status: 200, body: { messageId: str(overSocket.messageId), duplicate: true } });
    const tooLong = await post<ErrorBody>(tokens[0]!, httpBody(runner.pubkey), { key: header(`${key}\u{1F511}`) });
    expect(tooLong).toMatchObject({ status: 400, body: { error: { code: "invalid", message: "Idempotency-Key must be 1 to 64 characters" } } });
  });

  test("401 without a token, with an unknown one, with a hook token, with a revoked member's token", async () => {
    const { mesh, members, tokens } = await meshWithTokens(3, 2);
    const [, revoked, target] = members as [SetupMember, SetupMember, SetupMember];
    const hookToken = await broker.admin.createHookToken(mesh.id, members[0]!.id);
    await broker.admin.revokeMember(mesh.id, revoked.id);
    for (const token of [null, "sba_nope", hookToken, tokens[1]!, broker.adminToken]) {
      const answer = await post<ErrorBody>(token, httpBody(target.pubkey));
      expectError(answer, 401, "unauthorized");
      // A token that was given is not said to be missing.
      expect(answer.body.error.message).toMatch(token === null ? /is required/ : /not a live API token/);
    }
    const sent = await post(tokens[0]!, httpBody(target.pubkey));
    expect(sent.status).toBe(201);
    // GET too, even for the hook token of the member that sent it.
    for (const token of [null, "sba_nope", hookToken, tokens[1]!]) expectError(await messageStatus(broker.url, token, sent.body.messageId), 401, "unauthorized");
  });

  test("a method a route does not serve answers a JSON 405 naming the ones it does, on every route", async () => {
    const wrong = [
      ["PUT", "/v1/messages", "POST"],
      ["GET", "/v1/messages", "POST"],
      ["DELETE", `/v1/messages/${crypto.randomUUID()}`, "GET, HEAD"],
      ["GET", "/hook/set-status", "POST"],
      ["POST", "/health", "GET, HEAD"],
      ["DELETE", "/metrics", "GET, HEAD"],
      ["POST", "/dashboard", "GET, HEAD"],
      // OPTIONS is a CORS preflight only for a listed origin (none here).
      ["OPTIONS", "/v1/messages", "POST"],
      ["OPTIONS", "/hook/set-status", "POST"],
      ["OPTIONS", "/health", "GET, HEAD"],
    ] as const;
    for (const [method, path, allow] of wrong) {
      const res = await fetch(`${broker.url}${path}`, { method });
      const body = (await res.json()) as ErrorBody;
      expect({ path, method, status: res.status, code: body.error.code, allow: res.headers.get("allow") }).toEqual({
        path,
        method,
        status: 405,
        code: "method_not_allowed",
        allow,
      });
      expect(body.error.message).toStartWith(`${method} is not allowed here`);
    }
    // TRACE and CONNECT too (written raw: fetch sends neither, nor reads the body of a TRACE's answer).
    for (const [method, path, allow] of [["TRACE", "/metrics", "GET, HEAD"], ["CONNECT", "/v1/messages", "POST"]] as const) {
      const raw = await rawRequest(broker.url, `${method} ${path} HTTP/1.0\r\nHost: ${new URL(broker.url).host}\r\n\r\n`);
      expect({ method, status: raw.status, allow: /^allow: (.*)$/im.exec(raw.headers)?.[1], body: JSON.parse(raw.body) as unknown }).toMatchObject({
        method,
        status: 405,
        allow,
        body: { error: { code: "method_not_allowed" } },
      });
    }
    // HEAD goes to a route's GET: where there is none, it is refused as itself.
    const head = await fetch(`${broker.url}/v1/messages`, { method: "HEAD" });
    expect({ status: head.status, allow: head.headers.get("allow") }).toEqual({ status: 405, allow: "POST" });
    // Methods Bun does not route by key (they reached the 404 fallback: "no route PROPFIND /health").
    const unrouted = [
      ["PROPFIND", "/health", "GET, HEAD"],
      ["QUERY", "/v1/messages", "POST"],
      ["PURGE", `/v1/messages/${crypto.randomUUID()}`, "GET, HEAD"],
      ["MKCOL", "/hook/set-status", "POST"],
    ] as const;
    for (const [method, path, allow] of unrouted) {
      const res = await fetch(`${broker.url}${path}`, { method });
      const body = (await res.json()) as ErrorBody;
      expect({ method, path, status: res.status, code: body.error.code, allow: res.headers.get("allow") }).toEqual({
        method,
        path,
        status: 405,
        code: "method_not_allowed",
        allow,
      });
    }
    // A path no route has is still not found, whatever the method; so is one a parameter's segment would be empty in.
    for (const path of ["/nowhere", "/v1/messages/", "/v1/messages/x/y"]) {
      const res = await fetch(`${broker.url}${path}`, { method: "PROPFIND" });
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
    }
  });

  test("a request whose body stops coming is ended unanswered, and the broker's stderr stays JSON lines", async () => {
    const { tokens } = await meshWithTokens(1);
    // Half a body, then nothing: the server ends it once it has been idle 10 s.
    const stalled = await rawRequest(
      broker.url,
      `POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tokens[0]}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`,
    );
    expect(stalled.status).toBe(0);
    // A line logged after it: stderr has been read past the end of the stalled request.
    const marker = await RawWebSocket.open(broker.wsUrl);
    marker.sendText(`not a hello ${crypto.randomUUID()}`);
    await broker.process.waitForLog("ws hello refused", 10_000, (line) => line.connectionId !== undefined && line.code === "malformed");
    marker.destroy();
    const notJson = broker.process.stderrText().trim().split("\n").filter((line) => {
      try {
        JSON.parse(line);
        return false;
      } catch {
        return true;
      }
    });
    expect(notJson).toEqual([]);
  });

  test("a request without a usable Host header (HTTP/1.0 may leave it out) is served as any other, not failed", async () => {
    const { members, tokens } = await meshWithTokens(2);
    const body = JSON.stringify(httpBody(members[1]!.pubkey));
    const send = (host: string) =>
      rawRequest(broker.url, `POST /v1/messages?wait=1 HTTP/1.0\r\n${host}Authorization: Bearer ${tokens[0]}\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    for (const host of ["", "Host: a b\r\n", "Host: u@x\r\n"]) {
      const sent = await send(host);
      expect({ host, status: sent.status }).toEqual({ host, status: 201 });
      expect(JSON.parse(sent.body)).toMatchObject({ queued: true, recipients: 1, reply: null });
    }
    const missing = await rawRequest(broker.url, "GET /no/such/path HTTP/1.0\r\n\r\n");
    expect({ status: missing.status, body: JSON.parse(missing.body) as unknown }).toEqual({
      status: 404,
      body: { error: { code: "not_found", message: "no route GET /no/such/path" } },
    });
    expect(broker.process.logs.filter((l) => (l.level ?? 0) >= 50)).toEqual([]);
  });

  test("a token that was just used is refused at once when its member is revoked", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    expect((await post(tokens[0]!, httpBody(members[1]!.pubkey))).status).toBe(201);
    await broker.admin.revokeMember(mesh.id, members[0]!.id);
    expectError(await post(tokens[0]!, httpBody(members[1]!.pubkey)), 401, "unauthorized");
    expectError(await messageStatus(broker.url, tokens[0]!, crypto.randomUUID()), 401, "unauthorized");
  });

  test("a token that was just used is refused at once when it alone is revoked; the member's other token still sends", async () => {
    const { mesh, members } = await meshWithTokens(2, 0);
    const [sender, target] = members as [SetupMember, SetupMember];
    const doomed = await broker.admin.issueToken(mesh.id, sender.id, "api");
    const kept = await broker.admin.createApiToken(mesh.id, sender.id);
    expect((await post(doomed.token, httpBody(target.pubkey))).status).toBe(201);
    await broker.admin.revokeToken(mesh.id, sender.id, doomed.id);
    expectError(await post(doomed.token, httpBody(target.pubkey)), 401, "unauthorized");
    expectError(await messageStatus(broker.url, doomed.token, crypto.randomUUID()), 401, "unauthorized");
    expect((await post(kept, httpBody(target.pubkey))).status).toBe(201);
  });

  test("400 invalid: not JSON, a bad field, ephemeral, an Idempotency-Key over 64 characters, a wait outside 1–60", async () => {
    const { members, tokens } = await meshWithTokens(2);
    const token = tokens[0]!;
    const to = members[1]!.pubkey;
    expectError(await post(token, "{not json"), 400, "invalid");
    expect(await post(token, { targetSpec: to, ciphertext: "x" })).toMatchObject({ status: 400, body: { error: { code: "invalid", message: "nonce: required" } } });
    // A target none of whose forms fit, or none at all, is told what the forms are.
    const forms = "a pubkey (64 lowercase hex characters), *, #channel or tag:name";
    const badTarget = await post(token, httpBody("not-a-target"));
    expect(badTarget).toMatchObject({ status: 400, body: { error: { code: "invalid", message: `targetSpec: expected ${forms}` } } });
    const { targetSpec: _none, ...untargeted } = httpBody(to);
    expect(await post(token, untargeted)).toMatchObject({ status: 400, body: { error: { code: "invalid", message: `targetSpec: required: ${forms}` } } });
    expectError(await post(token, httpBody(to, { priority: "urgent" })), 400, "invalid");
    expectError(await post(token, httpBody(to, { replyTo: "not-a-uuid" })), 400, "invalid");
    expectError(await post(token, httpBody(to, { ephemeral: true })), 400, "invalid");
    expectError(await post(token, httpBody(to), { key: "k".repeat(65) }), 400, "invalid");
    for (const wait of ["0", "61", "abc", "1.5", "-1", ""]) expectError(await post(token, httpBody(to), { wait }), 400, "invalid");
    expect(await post(token, httpBody(to), { wait: "2&wait=20" })).toMatchObject({ status: 400, body: { error: { code: "invalid", message: "wait must be given once" } } });
    // Refused headers and query count as rejected sends, as refused bodies do.
    const INVALID = "broker_messages_rejected_total{reason=invalid}";
    const before = await scrape(broker.url);
    expect(before.has(INVALID)).toBe(true);
    expectError(await post(token, httpBody(to), { key: "k".repeat(65) }), 400, "invalid");
    expectError(await post(token, httpBody(to), { wait: "0" }), 400, "invalid");
    expect(deltas(before, await scrape(broker.url), [INVALID])).toEqual({ [INVALID]: 2 });
    // Unknown fields are ignored; 64 characters of key are fine.
    const ok = await post(token, httpBody(to, { extra: { nested: true }, type: "whatever" }), { key: "k".repeat(64) });
    expect(ok.status).toBe(201);
  });

  test("403 forbidden for an observer's token; 404 unknown_target for a pubkey outside the mesh or an unknown channel", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const observer = await broker.admin.addMember(mesh.id, { pubkey: (await newIdentity()).publicKey, displayName: "watcher", role: "observer" });
    const observerToken = await broker.admin.createApiToken(mesh.id, observer.id);
    expectError(await post(observerToken, httpBody(members[0]!.pubkey)), 403, "forbidden");
    expectError(await post(tokens[0]!, httpBody("cd".repeat(32))), 404, "unknown_target");
    expectError(await post(tokens[0]!, httpBody("#nobody-here")), 404, "unknown_target");
  });

  test("403 forbidden for a body naming a mesh the token is not of, and nothing stored; its own mesh by slug or id sends", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const other = await setupMesh(broker.admin, { members: 1 });
    const runner = members[1]!;
    const peer = await connect(mesh.id, runner);
    const before = await scrape(broker.url);
    for (const named of [other.mesh.slug, other.mesh.id]) {
      const refused = await post<ErrorBody>(tokens[0]!, httpBody(runner.pubkey, { mesh: named }));
      expectError(refused, 403, "forbidden");
      expect(refused.body.error.message).toBe(`this API token belongs to mesh ${mesh.slug}, not ${named}`);
    }
    expect(deltas(before, await scrape(broker.url), ['broker_messages_rejected_total{reason=forbidden}'])).toEqual({
      'broker_messages_rejected_total{reason=forbidden}': 2,
    });
    expectError(await post(tokens[0]!, httpBody(runner.pubkey, { mesh: "" })), 400, "invalid");
    const sent = [];
    for (const named of [mesh.slug, mesh.id.toUpperCase(), undefined]) {
      const answer = await post(tokens[0]!, httpBody(runner.pubkey, named === undefined ? {} : { mesh: named }));
      expect(answer.status).toBe(201);
      sent.push(answer.body.messageId);
    }
    // Had a refused send been stored, it would be pushed first.
    expect((await peer.waitForPushes(3)).map((p) => p.messageId)).toEqual(sent);
  });

  test("403 forbidden for a body whose senderPubkey is not the token's member, and nothing stored; the member's own key sends", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    const peer = await connect(mesh.id, runner);
    const before = await scrape(broker.url);
    const refused = await post<ErrorBody>(tokens[0]!, httpBody(runner.pubkey, { senderPubkey: runner.pubkey }));
    expectError(refused, 403, "forbidden");
    expect(refused.body.error.message).toBe(`this API token belongs to member ${app.pubkey}, not ${runner.pubkey}, whose key sealed the message`);
    expect(deltas(before, await scrape(broker.url), ["broker_messages_rejected_total{reason=forbidden}"])).toEqual({
      "broker_messages_rejected_total{reason=forbidden}": 1,
    });
    expectError(await post(tokens[0]!, httpBody(runner.pubkey, { senderPubkey: app.pubkey.toUpperCase() })), 400, "invalid");
    const sent = await post(tokens[0]!, httpBody(runner.pubkey, { senderPubkey: app.pubkey }));
    expect(sent.status).toBe(201);
    // Had the refused send been stored, it would be pushed first.
    expect((await peer.waitForPushes(1)).map((p) => p.messageId)).toEqual([sent.body.messageId]);
  });

  test("413 too_large for a body over MAX_MESSAGE_BYTES, and for a nonce and ciphertext that would not fit a push", async () => {
    const { members, tokens } = await meshWithTokens(2);
    const to = members[1]!.pubkey;
    expectError(await post(tokens[0]!, httpBody(to, { ciphertext: "x".repeat(MAX_MESSAGE_BYTES + 10) })), 413, "too_large");
    expectError(await post(tokens[0]!, httpBody(to, { ciphertext: "x".repeat(MAX_MESSAGE_BYTES - 400) })), 413, "too_large");
    expect((await post(tokens[0]!, httpBody(to, { ciphertext: "x".repeat(1000) }))).status).toBe(201);
  });

  test("429 rate_limited with Retry-After past SEND_RATE_LIMIT_PER_MIN, for the member whatever the path", async () => {
    const { members, tokens } = await meshWithTokens(2);
    const to = members[1]!.pubkey;
    const answers = [];
    for (let i = 0; i < SEND_RATE_LIMIT_PER_MIN + 3; i++) answers.push(await post(tokens[0]!, httpBody(to)));
    const limited = answers.filter((a) => a.status === 429);
    expect(answers.filter((a) => a.status === 201).length).toBeLessThanOrEqual(SEND_RATE_LIMIT_PER_MIN);
    expect(limited.length).toBeGreaterThanOrEqual(3);
    for (const a of limited) {
      expectError(a, 429, "rate_limited");
      const retryAfter = Number(a.headers.get("retry-after"));
      expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 120).toBe(true);
    }
  });

  test("?wait=S: the reply's commit wakes the request, which returns it as the push it would be, acked", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    const peer = await connect(mesh.id, runner);
    // The longest wait, cut short by the test: a request not woken by the reply's commit would look again only at its end.
    const waiting = post(tokens[0]!, httpBody(runner.pubkey, { ciphertext: "Y21k" }), { wait: 60, signal: AbortSignal.timeout(20_000) });
    const [command] = await peer.waitForPushes(1);
    const replied = await peer.send(app.pubkey, { replyTo: str(command!.messageId), ciphertext: "cmVzdWx0", nonce: "n-r" });
    peer.ack([str(command!.messageId)]);

    const answer = await waiting;
    expect(answer.status).toBe(201);
    expect(answer.body).toEqual({
      messageId: str(command!.messageId),
      queued: true,
      recipients: 1,
      reply: {
        type: "push",
        messageId: str(replied.messageId),
        meshId: mesh.id,
        senderPubkey: runner.pubkey,
        targetSpec: app.pubkey,
        priority: "next",
        nonce: "n-r",
        ciphertext: "cmVzdWx0",
        createdAt: expect.stringMatching(ISO),
        replyTo: str(command!.messageId),
        attempt: 1,
      },
    });
    const state = await messageStatus<StatusBody>(broker.url, broker.adminToken, str(replied.messageId));
    expect(state.body.recipients).toEqual([
      { pubkey: app.pubkey, state: "acked", attempt: 1, deliveredAt: expect.stringMatching(ISO), ackedAt: expect.stringMatching(ISO) },
    ]);
  });

  test("?wait=S returns the first reply owed to the token's member: a reply to the message sent to another member, or a message without replyTo, is not it", async () => {
    const { mesh, members, tokens } = await meshWithTokens(3);
    const [app, runner, other] = members as [SetupMember, SetupMember, SetupMember];
    const peer = await connect(mesh.id, runner);
    const waiting = post(tokens[0]!, httpBody(runner.pubkey), { wait: 60, signal: AbortSignal.timeout(20_000) });
    const [command] = await peer.waitForPushes(1);
    const commandId = str(command!.messageId);
    await peer.send(other.pubkey, { replyTo: commandId });
    await peer.send(app.pubkey);
    const replied = await peer.send(app.pubkey, { replyTo: commandId });
    const answer = await waiting;
    expect(answer.status).toBe(201);
    expect(answer.body.reply).toMatchObject({ messageId: str(replied.messageId), targetSpec: app.pubkey, replyTo: commandId });
  });

  test("?wait=S retried with its key after the reply was returned gets that reply again, at once", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    const peer = await connect(mesh.id, runner);
    const body = httpBody(runner.pubkey);
    const waiting = post(tokens[0]!, body, { key: "lost-response", wait: 30 });
    const [command] = await peer.waitForPushes(1);
    const replied = await peer.send(app.pubkey, { replyTo: str(command!.messageId) });
    const first = await waiting;
    expect(first.body.reply?.messageId).toBe(replied.messageId);
    // As if that response had been lost on its way: the caller asks again.
    const again = await post(tokens[0]!, body, { key: "lost-response", wait: 2 });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ messageId: str(command!.messageId), duplicate: true });
    expect(again.body.reply?.messageId).toBe(replied.messageId);
  });

  test("?wait=S with no reply in time answers reply: null; a later reply goes to the member's socket", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    const answer = await post(tokens[0]!, httpBody(runner.pubkey), { wait: 1 });
    expect(answer.status).toBe(201);
    expect(answer.body.reply).toBeNull();
    await broker.process.waitForLog("reply wait ended", 10_000, (l) => l.requestId === answer.body.messageId);

    const runnerPeer = await connect(mesh.id, runner);
    await runnerPeer.waitForPushes(1);
    const late = await runnerPeer.send(app.pubkey, { replyTo: answer.body.messageId });
    const appPeer = await connect(mesh.id, app);
    const [push] = await appPeer.waitForPushes(1);
    expect(push).toMatchObject({ messageId: late.messageId, replyTo: answer.body.messageId });
  });

  test.skipIf(backendKind !== "postgres")("?wait=S that fails once the message is stored answers it stored, without a reply, never an error", async () => {
    const { members, tokens } = await meshWithTokens(2);
    const runner = members[1]!;
    const body = httpBody(runner.pubkey);
    // The wait's own hold is refused by the database; the send before it is stored.
    await queryPostgres(broker.backend, (sql) => sql.unsafe(`
      CREATE FUNCTION refuse_hold() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.ciphertext = '${String(body.ciphertext)}' AND OLD.reply_wait_until IS NOT NULL THEN RAISE EXCEPTION 'injected: hold refused'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_hold BEFORE UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION refuse_hold();`));
    try {
      const answer = await post(tokens[0]!, body, { wait: 5 });
      expect(answer.status).toBe(201);
      expect(answer.body.messageId).toMatch(UUID);
      expect(answer.body.reply).toBeUndefined();
      const stored = await queryPostgres(broker.backend, (sql) => sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM messages WHERE ciphertext = ${String(body.ciphertext)}`);
      expect(stored?.[0]?.n).toBe(1);
    } finally {
      await queryPostgres(broker.backend, (sql) => sql.unsafe(`DROP TRIGGER refuse_hold ON messages; DROP FUNCTION refuse_hold();`));
    }
  });

  test("a body that is not UTF-8 is refused 400 invalid on each route that reads a body, and nothing of it is kept", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const hookToken = await broker.admin.createHookToken(mesh.id, members[1]!.id);
    // Latin-1: its é is a byte no UTF-8 text has there; decoded anyway, it became U+FFFD and was stored so.
    const latin1 = (value: unknown) => Buffer.from(JSON.stringify(value), "latin1");
    const postBytes = (path: string, token: string, body: Uint8Array, headers: Record<string, string> = {}) =>
      fetch(`${broker.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...headers }, body });
    const NOT_UTF8 = "the body is not text in UTF-8";
    const key = crypto.randomUUID();
    const send = await postBytes("/v1/messages", tokens[0]!, latin1({ targetSpec: members[1]!.pubkey, nonce: "plain", ciphertext: "café" }), { "idempotency-key": key });
    expect({ status: send.status, body: await send.json() }).toEqual({ status: 400, body: { error: { code: "invalid", message: NOT_UTF8 } } });
    // Its key was not taken: the same key now stores a first message.
    expect((await post(tokens[0]!, httpBody(members[1]!.pubkey), { key })).status).toBe(201);
    const hook = await postBytes("/hook/set-status", hookToken, latin1({ status: "working", cwd: "/home/café" }));
    expect({ status: hook.status, body: await hook.json() }).toEqual({ status: 400, body: { ok: false, error: "invalid", message: NOT_UTF8 } });
    const slug = `latin-${crypto.randomUUID().slice(0, 8)}`;
    const created = await postBytes("/v1/meshes", broker.adminToken, latin1({ slug, name: "Café" }));
    expect({ status: created.status, body: await created.json() }).toEqual({ status: 400, body: { error: { code: "invalid", message: NOT_UTF8 } } });
    // Nor was the mesh made: its slug is free.
    expect((await postBytes("/v1/meshes", broker.adminToken, Buffer.from(JSON.stringify({ slug, name: "Café" })))).status).toBe(201);
  });

  test("a client that goes away mid-body is logged at debug, not as a failure, on each route that reads a body", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const hookToken = await broker.admin.createHookToken(mesh.id, members[1]!.id);
    const from = broker.process.logs.length;
    const posts: Array<[string, string]> = [
      ["/v1/messages", tokens[0]!],
      ["/hook/set-status", hookToken],
      ["/v1/meshes", broker.adminToken],
    ];
    for (const [path, token] of posts) {
      await postCutShort(broker.url, path, token);
      const line = await broker.process.waitForLog("client went away mid-body", 10_000, (l) => l.path === path);
      expect(line).toMatchObject({ level: 20, method: "POST" });
    }
    // Nothing at error level, which goes to error reporting (it was "http send failed").
    expect(broker.process.logs.slice(from).filter((l) => (l.level ?? 0) >= 50)).toEqual([]);
  });

  test("a caller that disconnects while waiting leaves the reply queued for its member, not lost", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    const gone = new AbortController();
    const waiting = post(tokens[0]!, httpBody(runner.pubkey), { key: "leaves-early", wait: 30, signal: gone.signal }).catch(
      (error: unknown) => error,
    );
    const runnerPeer = await connect(mesh.id, runner);
    const [command] = await runnerPeer.waitForPushes(1);
    gone.abort();
    expect(await waiting).toBeInstanceOf(Error);
    await broker.process.waitForLog("reply wait ended", 10_000, (l) => l.requestId === command!.messageId && l.ended === "aborted");

    const reply = await runnerPeer.send(app.pubkey, { replyTo: str(command!.messageId) });
    const state = await messageStatus<StatusBody>(broker.url, broker.adminToken, str(reply.messageId));
    expect(state.body.recipients[0]!.state).toBe("queued");
    const appPeer = await connect(mesh.id, app);
    const [push] = await appPeer.waitForPushes(1);
    expect(push).toMatchObject({ messageId: reply.messageId, replyTo: command!.messageId });
  });

  test("a waiting request gets its reply even when its member also has a live socket, which does not get it", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    const appPeer = await connect(mesh.id, app);
    const runnerPeer = await connect(mesh.id, runner);
    const waiting = post(tokens[0]!, httpBody(runner.pubkey), { wait: 30 });
    const [command] = await runnerPeer.waitForPushes(1);
    const reply = await runnerPeer.send(app.pubkey, { replyTo: str(command!.messageId) });
    expect((await waiting).body.reply).toMatchObject({ messageId: reply.messageId });
    // A later message reaches the socket; the reply never did.
    const marker = await runnerPeer.send(app.pubkey);
    const pushes = await appPeer.waitForPushes(1);
    expect(pushes.map((p) => p.messageId)).toEqual([marker.messageId]);
  });

  test("a retried send with the same key and ?wait gets the reply to the first message", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    const first = await post(tokens[0]!, httpBody(runner.pubkey), { key: "retry-me", wait: 1 });
    expect(first.body.reply).toBeNull();
    const runnerPeer = await connect(mesh.id, runner);
    const [command] = await runnerPeer.waitForPushes(1);
    const reply = await runnerPeer.send(app.pubkey, { replyTo: str(command!.messageId) });
    const retried = await post(tokens[0]!, httpBody(runner.pubkey), { key: "retry-me", wait: 5 });
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ messageId: first.body.messageId, duplicate: true, reply: { messageId: reply.messageId } });
  });

  test("a retried send with the same key and ?wait gets the reply pushed to its member's socket, not acknowledged there yet", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    const first = await post(tokens[0]!, httpBody(runner.pubkey), { key: "retry-pushed", wait: 1 });
    expect(first.body.reply).toBeNull();
    await broker.process.waitForLog("reply wait ended", 10_000, (l) => l.requestId === first.body.messageId);
    // No wait holds the reply now: it goes to the member's socket, which does not ack it.
    const appPeer = await connect(mesh.id, app);
    const runnerPeer = await connect(mesh.id, runner);
    const [command] = await runnerPeer.waitForPushes(1);
    const reply = await runnerPeer.send(app.pubkey, { replyTo: str(command!.messageId) });
    expect(await appPeer.waitForPushes(1)).toMatchObject([{ messageId: reply.messageId }]);
    // Nothing tells the wait of that socket's ack, if one ever comes: it must find the reply as it is.
    const retried = await post(tokens[0]!, httpBody(runner.pubkey), { key: "retry-pushed", wait: 10 });
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ messageId: first.body.messageId, duplicate: true, reply: { messageId: reply.messageId } });
    // The socket's ack afterwards is taken like any ack of a message acknowledged already.
    appPeer.ack([str(reply.messageId)]);
    expect(await appPeer.request({ type: "ping" })).toMatchObject({ type: "pong" });
    expect(appPeer.frames.filter((f) => f.type === "error")).toEqual([]);
  });

  test("two waits on one key: the first ending does not release the reply the second still waits for", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    // A live socket of the app's member would take a reply nobody holds.
    const appPeer = await connect(mesh.id, app);
    // Long enough for the second request to have placed its own hold before the first ends.
    const first = post(tokens[0]!, httpBody(runner.pubkey), { key: "twice", wait: 3 });
    const runnerPeer = await connect(mesh.id, runner);
    const [command] = await runnerPeer.waitForPushes(1);
    const second = post(tokens[0]!, httpBody(runner.pubkey), { key: "twice", wait: 15 });
    expect((await first).body.reply).toBeNull();
    const reply = await runnerPeer.send(app.pubkey, { replyTo: str(command!.messageId) });
    expect((await second).body).toMatchObject({ duplicate: true, reply: { messageId: reply.messageId } });
    // The socket never got it: a later message is the first thing it sees.
    const marker = await runnerPeer.send(app.pubkey);
    expect((await appPeer.waitForPushes(1)).map((p) => p.messageId)).toEqual([marker.messageId]);
  });

  /** Until `count` waits on the request have placed their holds and wait. */
  const waitsStarted = (requestId: string, count: number) =>
    waitUntil(
      () => broker.process.logs.filter((l) => l.msg === "reply wait started" && l.requestId === requestId).length >= count || undefined,
      10_000,
      `${count} waits on ${requestId}`,
    );

  test("two waits on one key at once and one reply: both answer with it", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    // The first caller's connection stays open (a proxy that did not pass its abort on) while it retries.
    const first = post(tokens[0]!, httpBody(runner.pubkey), { key: "both", wait: 30 });
    const runnerPeer = await connect(mesh.id, runner);
    const [command] = await runnerPeer.waitForPushes(1);
    const second = post(tokens[0]!, httpBody(runner.pubkey), { key: "both", wait: 30 });
    await waitsStarted(str(command!.messageId), 2);
    const reply = await runnerPeer.send(app.pubkey, { replyTo: str(command!.messageId) });
    const answers = await Promise.all([first, second]);
    expect(answers.map((a) => a.body.reply?.messageId)).toEqual([reply.messageId, reply.messageId]);
  });

  test("two waits on one key: the one holding longer going away does not release the reply the other still waits for", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    const appPeer = await connect(mesh.id, app);
    const gone = new AbortController();
    const longer = post(tokens[0]!, httpBody(runner.pubkey), { key: "longer", wait: 30, signal: gone.signal }).catch((error: unknown) => error);
    const runnerPeer = await connect(mesh.id, runner);
    const [command] = await runnerPeer.waitForPushes(1);
    const shorter = post(tokens[0]!, httpBody(runner.pubkey), { key: "longer", wait: 15 });
    // The shorter wait's hold is placed (it waits), then the longer one's caller goes away.
    await waitsStarted(str(command!.messageId), 2);
    gone.abort();
    expect(await longer).toBeInstanceOf(Error);
    await broker.process.waitForLog("reply wait ended", 10_000, (l) => l.requestId === command!.messageId && l.ended === "aborted");
    const reply = await runnerPeer.send(app.pubkey, { replyTo: str(command!.messageId) });
    expect((await shorter).body).toMatchObject({ duplicate: true, reply: { messageId: reply.messageId } });
    // The socket never got it: a later message is the first thing it sees.
    const marker = await runnerPeer.send(app.pubkey);
    expect((await appPeer.waitForPushes(1)).map((p) => p.messageId)).toEqual([marker.messageId]);
  });

  test(`at most MAX_REPLY_WAITERS (${MAX_REPLY_WAITERS}) wait at once: the next is refused with 503 before anything is stored`, async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [, runner] = members as [SetupMember, SetupMember];
    const waits = Array.from({ length: MAX_REPLY_WAITERS }, (_, i) => post(tokens[0]!, httpBody(runner.pubkey), { wait: 8, key: `w-${i}` }));
    const runnerPeer = await connect(mesh.id, runner);
    await runnerPeer.waitForPushes(MAX_REPLY_WAITERS);
    const UNAVAILABLE = "broker_messages_rejected_total{reason=unavailable}";
    const before = await scrape(broker.url);
    const refused = await post(tokens[0]!, httpBody(runner.pubkey), { wait: 3, key: "w-refused" });
    expectError(refused, 503, "unavailable");
    expect(refused.headers.get("retry-after")).toBe("1");
    // A send refused, counted by its reason as every other refusal is.
    expect(deltas(before, await scrape(broker.url), [UNAVAILABLE])).toEqual({ [UNAVAILABLE]: 1 });
    // Without waiting the same instant is fine; the refused key was never stored.
    const marker = await post(tokens[0]!, httpBody(runner.pubkey));
    expect(marker.status).toBe(201);
    const pushes = await runnerPeer.waitForPushes(MAX_REPLY_WAITERS + 1);
    expect(pushes.at(-1)!.messageId).toBe(marker.body.messageId);
    await Promise.all(waits);
    expect((await post(tokens[0]!, httpBody(runner.pubkey), { key: "w-refused" })).status).toBe(201);
  });

  test("GET /v1/messages/:id: per-recipient state for the sender and the admin; 404 for anyone else or an unknown id", async () => {
    const { mesh, members, tokens } = await meshWithTokens(3, 2);
    const [, other, runner] = members as [SetupMember, SetupMember, SetupMember];
    const sent = await post(tokens[0]!, httpBody(`*`));
    const id = sent.body.messageId;

    const queued = await messageStatus<StatusBody>(broker.url, tokens[0]!, id);
    expect(queued.status).toBe(200);
    expect(queued.body).toEqual({
      messageId: id,
      createdAt: expect.stringMatching(ISO),
      expiresAt: expect.stringMatching(ISO),
      recipients: expect.arrayContaining([
        { pubkey: other.pubkey, state: "queued", attempt: 0, deliveredAt: null, ackedAt: null },
        { pubkey: runner.pubkey, state: "queued", attempt: 0, deliveredAt: null, ackedAt: null },
      ]),
    });
    expect(queued.body.recipients.length).toBe(2);

    const peer = await connect(mesh.id, runner);
    await peer.waitForPushes(1);
    const leased = await messageStatus<StatusBody>(broker.url, broker.adminToken, id);
    expect(leased.body.recipients.find((r) => r.pubkey === runner.pubkey)).toEqual({
      pubkey: runner.pubkey,
      state: "leased",
      attempt: 1,
      deliveredAt: expect.stringMatching(ISO),
      ackedAt: null,
    });
    peer.ack([id]);
    await peer.request({ type: "ping" });
    const acked = await messageStatus<StatusBody>(broker.url, tokens[0]!, id);
    expect(acked.body.recipients.find((r) => r.pubkey === runner.pubkey)?.state).toBe("acked");

    expectError(await messageStatus(broker.url, tokens[1]!, id), 404, "not_found");
    expectError(await messageStatus(broker.url, tokens[0]!, crypto.randomUUID()), 404, "not_found");
    expectError(await messageStatus(broker.url, tokens[0]!, "not-a-uuid"), 404, "not_found");
    const malformed = await messageStatus<ErrorBody>(broker.url, tokens[0]!, "%ZZ");
    expect({ status: malformed.status, message: malformed.body.error.message }).toEqual({
      status: 404,
      message: "a path parameter with a malformed percent-escape or bytes that are not UTF-8 names nothing",
    });
    expectError(await messageStatus(broker.url, null, id), 401, "unauthorized");
    expectError(await messageStatus(broker.url, "sba_nope", id), 401, "unauthorized");
  });

  test("GET /v1/messages/:id: the sender is the member, whichever way it sent and whichever of its tokens asks", async () => {
    const { mesh, members, tokens } = await meshWithTokens(2);
    const [app, runner] = members as [SetupMember, SetupMember];
    const appPeer = await connect(mesh.id, app);
    const bySocket = str((await appPeer.send(runner.pubkey)).messageId);
    const secondToken = await broker.admin.createApiToken(mesh.id, app.id);
    for (const token of [tokens[0]!, secondToken]) {
      const seen = await messageStatus<StatusBody>(broker.url, token, bySocket);
      expect({ status: seen.status, recipients: seen.body.recipients?.map((r) => r.pubkey) }).toEqual({ status: 200, recipients: [runner.pubkey] });
    }
  });

  test("a queued message past its TTL reads as expired", async () => {
    const { members, tokens } = await meshWithTokens(2);
    const sent = await post(tokens[0]!, httpBody(members[1]!.pubkey, { ttlSeconds: 1 }));
    let state = "queued";
    for (const until = Date.now() + 10_000; state === "queued" && Date.now() < until; await Bun.sleep(200)) {
      state = (await messageStatus<StatusBody>(broker.url, tokens[0]!, sent.body.messageId)).body.recipients[0]!.state;
    }
    expect(state).toBe("expired");
  });
});

describe("reply waits shared out among members (MAX_REPLY_WAITERS=4, MAX_REPLY_WAITERS_PER_MEMBER=2)", () => {
  const broker = useTestBroker({ MAX_REPLY_WAITERS: "4", MAX_REPLY_WAITERS_PER_MEMBER: "2" });

  test("one member's waits past its share are refused with 503 before anything is stored; another member's wait is still served", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 3 });
    const [app, other, runner] = members as [SetupMember, SetupMember, SetupMember];
    const [appToken, otherToken] = await Promise.all([app, other].map((m) => broker.admin.createApiToken(mesh.id, m.id)));
    const runnerPeer = await pool.connect(broker.wsUrl, runner, mesh.id);
    // As many waits as the instance holds, from one member: each is either
    // refused at once or stored, and so pushed to the runner while it waits.
    const waits = Array.from({ length: 4 }, (_, i) => postMessage<SendReply>(broker.url, appToken!, httpBody(runner.pubkey), { wait: 30, key: `share-${i}` }));
    const answered: Array<Awaited<(typeof waits)[number]>> = [];
    for (const w of waits) void w.then((a) => answered.push(a));
    await waitUntil(() => answered.length + runnerPeer.pushes().length === 4, 15_000, "each wait refused or stored");

    const theirs = await postMessage<SendReply>(broker.url, otherToken!, httpBody(runner.pubkey), { wait: 1 });
    expect({ status: theirs.status, reply: theirs.body.reply }).toEqual({ status: 201, reply: null });
    expect(answered.map((a) => [a.status, (a.body as unknown as ErrorBody).error?.code, a.headers.get("retry-after")])).toEqual([
      [503, "unavailable", "1"],
      [503, "unavailable", "1"],
    ]);

    // The two held ones get their replies; the refused keys were never stored.
    const held = runnerPeer.pushes().filter((p) => p.senderPubkey === app.pubkey);
    expect(held).toHaveLength(2);
    for (const push of held) await runnerPeer.send(app.pubkey, { replyTo: str(push.messageId) });
    const returned = await Promise.all(waits);
    expect(returned.filter((a) => a.status === 201).map((a) => a.body.reply?.replyTo).sort()).toEqual(held.map((p) => str(p.messageId)).sort());
    const keys = returned.flatMap((a, i) => (a.status === 503 ? [`share-${i}`] : []));
    for (const key of keys) expect((await postMessage(broker.url, appToken!, httpBody(runner.pubkey), { key })).status).toBe(201);
  });
});

describe.skipIf(backendKind !== "postgres")("HTTP messaging over two instances (needs DATABASE_URL: instances share a Postgres server)", () => {
  const pair = useTestBrokerPair();

  test("a revocation on one instance refuses the member's token on the other at once", async () => {
    const { a, b } = pair;
    const { mesh, members } = await setupMesh(a.admin, { members: 2 });
    const token = await a.admin.createApiToken(mesh.id, members[0]!.id);
    expect((await postMessage(b.url, token, httpBody(members[1]!.pubkey))).status).toBe(201);
    await a.admin.revokeMember(mesh.id, members[0]!.id);
    // The revocation reaches b over the bus; until then its statement refuses the send as forbidden.
    let status = 0;
    for (const until = Date.now() + 10_000; Date.now() < until; await Bun.sleep(100)) {
      status = (await postMessage(b.url, token, httpBody(members[1]!.pubkey))).status;
      if (status === 401) break;
      expect(status).toBe(403);
    }
    expect(status).toBe(401);
  });

  test("a token revoked on one instance is refused on the other once the revocation's notice came, not when its memory of it runs out", async () => {
    const { a, b } = pair;
    const { mesh, members } = await setupMesh(a.admin, { members: 3 });
    const [sender, target, sentinel] = members as [SetupMember, SetupMember, SetupMember];
    const issued = await a.admin.issueToken(mesh.id, sender.id, "api");
    // b remembers the token's member from here on.
    expect((await postMessage(b.url, issued.token, httpBody(target.pubkey))).status).toBe(201);
    const onB = await pool.connect(b.wsUrl, sentinel, mesh.id);
    await a.admin.revokeToken(mesh.id, sender.id, issued.id);
    // Notices reach b in the order of their commits: once the later
    // revocation has closed the sentinel's socket there, b heard of the token's.
    await a.admin.revokeMember(mesh.id, sentinel.id);
    expect((await onB.closed).code).toBe(4002);
    const refused = await postMessage<ErrorBody>(b.url, issued.token, httpBody(target.pubkey));
    expect({ status: refused.status, code: refused.body.error.code }).toEqual({ status: 401, code: "unauthorized" });
  });
});

describe.skipIf(!ownPostgresTestsRun())("HTTP messaging API while the database is down", () => {
  let own: BrokerOnOwnPostgres | undefined;
  afterAll(() => own?.dispose());

  test("503 unavailable with Retry-After, and a send once it is back", async () => {
    own = await startBrokerOnOwnPostgres();
    const { cluster, broker } = own;
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const token = await broker.admin.createApiToken(mesh.id, members[0]!.id);

    await cluster.stop();
    await broker.process.waitForLog("db ping failed", 15_000);
    const down = await postMessage(broker.url, token, httpBody(members[1]!.pubkey), { key: "during-outage" });
    expect({ status: down.status, code: (down.body as unknown as ErrorBody).error.code }).toEqual({ status: 503, code: "unavailable" });
    expect(down.headers.get("retry-after")).toBe("1");

    await cluster.start();
    await broker.process.waitForLog("db healthy", 20_000);
    const up = await postMessage(broker.url, token, httpBody(members[1]!.pubkey), { key: "during-outage" });
    expect(up.status).toBe(201);
  });
});
