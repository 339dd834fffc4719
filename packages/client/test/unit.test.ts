// The SDK's pure parts: backoff, the envelope, de-duplication, ack batching, URLs.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { bytesToHex, generateKeypair, publicKeyOf, signedHelloFrame } from "@switchboard/protocol";
import { waitUntil } from "@switchboard/testkit";
import { AckBatcher } from "../src/acks.ts";
import { backoffDelay, isFinalCloseCode, isFinalHelloCode } from "../src/backoff.ts";
import { RecentIds } from "../src/dedupe.ts";
import { Inbox } from "../src/inbox.ts";
import { associatedData, directKey, open, seal } from "../src/envelope.ts";
import { KeyRing } from "../src/keys.ts";
import { brokerWsUrl } from "../src/url.ts";
import { MAX_ACK_DELAY_MS, resolveConfig } from "../src/config.ts";
import { buildHello } from "../src/hello.ts";
import { SwitchboardError } from "../src/errors.ts";
import { SwitchboardClient } from "../src/client.ts";
import { HttpSender } from "../src/http-sender.ts";

describe("backoffDelay", () => {
  const policy = { minDelayMs: 100, maxDelayMs: 5000 };

  test("stays within [0, maxDelayMs] for any random value and attempt", () => {
    for (const r of [0, 1e-9, 0.25, 0.5, 0.999999, 1]) {
      for (let attempt = 0; attempt < 80; attempt++) {
        const d = backoffDelay(attempt, policy, () => r);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(policy.maxDelayMs);
      }
    }
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelay(i % 40, policy);
      expect(d >= 0 && d <= policy.maxDelayMs).toBe(true);
    }
  });

  test("the ceiling doubles from minDelayMs until maxDelayMs (full jitter scales it)", () => {
    const top = (attempt: number) => backoffDelay(attempt, policy, () => 0.999999);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map(top)).toEqual([99, 199, 399, 799, 1599, 3199, 4999, 4999]);
    for (let a = 1; a < 10; a++) expect(top(a)).toBeGreaterThanOrEqual(top(a - 1));
    expect(backoffDelay(3, policy, () => 0.5)).toBe(400);
    expect(backoffDelay(3, policy, () => 0)).toBe(0);
    expect(backoffDelay(1000, policy, () => 0.5)).toBe(2500);
  });

  test("final refusals and close codes", () => {
    expect(isFinalHelloCode("unauthorized")).toBe(true);
    expect(isFinalHelloCode("bad_signature")).toBe(true);
    expect(isFinalHelloCode("capacity")).toBe(false);
    expect(isFinalHelloCode("timestamp_skew")).toBe(false);
    expect(isFinalCloseCode(4000)).toBe(true);
    expect(isFinalCloseCode(4002)).toBe(true);
    expect(isFinalCloseCode(1001)).toBe(false);
    expect(isFinalCloseCode(1006)).toBe(false);
  });
});

describe("envelope", () => {
  test("both sides derive the same direct key; a third party does not", async () => {
    const [a, b, c] = await Promise.all([generateKeypair(), generateKeypair(), generateKeypair()]);
    const ab = directKey(a.secretKey, a.publicKey, b.publicKey);
    expect(ab).toHaveLength(32);
    expect(directKey(b.secretKey, b.publicKey, a.publicKey)).toEqual(ab);
    expect(directKey(c.secretKey, c.publicKey, b.publicKey)).not.toEqual(ab);
  });

  test("a send to 64 hex characters that are no ed25519 public key says so: no direct message to it can be sealed", async () => {
    const a = await generateKeypair();
    const client = await SwitchboardClient.start({ url: "http://127.0.0.1:1", meshId: "m", secretKey: a.secretKey, reconnect: false });
    try {
      const target = "f".repeat(64);
      expect(await client.send(target, "x").catch((error: unknown) => error)).toMatchObject({
        code: "invalid",
        message: `${target} is no ed25519 public key (it names no point of the curve, or one of small order): no direct message to it can be sealed`,
      });
    } finally {
      await client.close();
    }
  });

  test("sealed payloads open only with the same key and associated data", () => {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const ad = associatedData("aa".repeat(32), "#ops");
    const payload = { text: "the secret plan", n: [1, 2, 3] };
    const env = seal(payload, key, ad);
    expect(env.nonce).toMatch(/^x1:[A-Za-z0-9+/]{32}$/);
    expect(Buffer.from(env.nonce.slice(3), "base64")).toHaveLength(24);
    expect(Buffer.from(env.ciphertext, "base64")).toHaveLength(JSON.stringify(payload).length + 16);
    expect(Buffer.from(env.ciphertext, "base64").toString("utf8")).not.toContain("secret");
    expect(open(env, key, ad)).toEqual(payload);
    expect(seal(payload, key, ad).nonce).not.toBe(env.nonce);

    expect(() => open(env, crypto.getRandomValues(new Uint8Array(32)), ad)).toThrow(expect.objectContaining({ code: "decrypt_failed" }));
    expect(() => open(env, key, associatedData("bb".repeat(32), "#ops"))).toThrow(expect.objectContaining({ code: "decrypt_failed" }));
    const bytes = Buffer.from(env.ciphertext, "base64");
    bytes[0] = bytes[0]! ^ 1;
    expect(() => open({ ...env, ciphertext: bytes.toString("base64") }, key, ad)).toThrow(
      expect.objectContaining({ code: "decrypt_failed" }),
    );
    expect(() => open({ nonce: "x2:AAAA", ciphertext: env.ciphertext }, key, ad)).toThrow(expect.objectContaining({ code: "decrypt_failed" }));
  });

  test("the test vector of docs/client.md", async () => {
    const [sa, sb] = ["01".repeat(32), "02".repeat(32)];
    const [pa, pb] = [await publicKeyOf(sa), await publicKeyOf(sb)];
    expect([pa, pb]).toEqual([
      "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
      "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
    ]);
    const key = directKey(sa, pa, pb);
    expect(bytesToHex(key)).toBe("016570a8bb62981a69f6ba3e3c902c5e61e8e772c76adde3442146127787110b");
    const nonce = Uint8Array.from({ length: 24 }, (_, i) => i);
    expect(seal({ hello: "bob" }, key, associatedData(pa, pb), nonce)).toEqual({
      nonce: "x1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",
      ciphertext: "LARC6M4Ii+YssVS9ds607Fn7KQXlyAdYKHZTnFocMQ==",
    });
    expect(seal("hi all", new Uint8Array(32).fill(0x5a), associatedData(pa, "#ops"), nonce)).toEqual({
      nonce: "x1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",
      ciphertext: "CbrrUVOOriCspVwKkv4j4tNcjqaKfA64",
    });
  });

  test("the plain envelope is the base64 of the JSON", () => {
    const env = seal({ hi: "there" }, null, new Uint8Array());
    expect(env).toEqual({ nonce: "plain", ciphertext: Buffer.from('{"hi":"there"}').toString("base64") });
    expect(open(env, null, new Uint8Array())).toEqual({ hi: "there" });
  });

  test("KeyRing: direct always sealed; channel keys by target, '*' as fallback; explicit encrypt without key refused", async () => {
    const [a, b] = await Promise.all([generateKeypair(), generateKeypair()]);
    const k1 = "11".repeat(32);
    const star = "22".repeat(32);
    const ringA = new KeyRing(a.secretKey, a.publicKey, { "#ops": k1, "*": star });
    const ringB = new KeyRing(b.secretKey, b.publicKey, { "#ops": k1, "*": star });
    const plainRing = new KeyRing(b.secretKey, b.publicKey);

    const direct = ringA.sealFor(b.publicKey, "hello b");
    expect(direct.nonce.startsWith("x1:")).toBe(true);
    expect(ringB.openFrom(a.publicKey, b.publicKey, direct)).toBe("hello b");
    // Bound to sender and recipient: the same bytes claimed by someone else do not open.
    expect(() => ringB.openFrom(b.publicKey, b.publicKey, direct)).toThrow();

    const ops = ringA.sealFor("#ops", 1);
    expect(ringB.openFrom(a.publicKey, "#ops", ops)).toBe(1);
    expect(() => ringB.openFrom(a.publicKey, "#dev", ops)).toThrow();
    expect(() => plainRing.openFrom(a.publicKey, "#ops", ops)).toThrow(expect.objectContaining({ code: "decrypt_failed" }));
    expect(ringB.openFrom(a.publicKey, "tag:x", ringA.sealFor("tag:x", 2))).toBe(2);

    expect(plainRing.sealFor("*", 3).nonce).toBe("plain");
    expect(plainRing.sealFor(a.publicKey, 3, false).nonce).toBe("plain");
    expect(() => plainRing.sealFor("#ops", 3, true)).toThrow(expect.objectContaining({ code: "no_key" }));
    expect(() => new KeyRing(a.secretKey, a.publicKey, { "#x": "abc" })).toThrow(expect.objectContaining({ code: "invalid" }));
  });
});

describe("channelKeys names", () => {
  const key = "11".repeat(32);

  test("a name is a channel as join takes it (ops means #ops); * and tag:name stay as they are", async () => {
    const [a, b] = await Promise.all([generateKeypair(), generateKeypair()]);
    const ringA = new KeyRing(a.secretKey, a.publicKey, { ops: key, "tag:gpu": key });
    const ringB = new KeyRing(b.secretKey, b.publicKey, { "#ops": key, "tag:gpu": key });
    const ops = ringA.sealFor("#ops", "hi");
    expect(ops.nonce).toStartWith("x1:");
    expect(ringB.openFrom(a.publicKey, "#ops", ops)).toBe("hi");
    expect(ringB.openFrom(a.publicKey, "tag:gpu", ringA.sealFor("tag:gpu", 2))).toBe(2);
  });

  test("a name no channel can have, or one channel named twice, is refused as invalid when the client or sender is made", async () => {
    const a = await generateKeypair();
    const refused: Array<Record<string, string>> = [{ "no spaces": key }, { "#": key }, { "tag:": key }, { ops: key, "#ops": "22".repeat(32) }];
    for (const channelKeys of refused) {
      expect(() => new KeyRing(a.secretKey, a.publicKey, channelKeys)).toThrow(expect.objectContaining({ code: "invalid" }));
      const started = await SwitchboardClient.start({ url: "http://127.0.0.1:1", meshId: "m", secretKey: a.secretKey, channelKeys, reconnect: false }).catch(
        (error: unknown) => error,
      );
      if (started instanceof SwitchboardClient) await started.close();
      expect(started).toMatchObject({ code: "invalid" });
    }
  });

  test("HttpSender with channel keys but no secretKey (it could not seal with them) is refused as invalid", async () => {
    const made = await HttpSender.create({ url: "http://127.0.0.1:1", token: "sba_x", channelKeys: { "#ops": key } }).catch((error: unknown) => error);
    expect(made).toMatchObject({ code: "invalid" });
  });
});

describe("RecentIds", () => {
  test("remembers the last N ids only", () => {
    const ids = new RecentIds(3);
    expect(ids.add("a")).toBe(true);
    expect(ids.add("a")).toBe(false);
    ids.add("b");
    ids.add("c");
    ids.add("d");
    expect(ids.size).toBe(3);
    expect(ids.has("a")).toBe(false);
    expect(ids.has("d")).toBe(true);
    expect(ids.add("a")).toBe(true);
  });
});

describe("Inbox, manual acks", () => {
  const push = (messageId: string) => ({
    type: "push" as const,
    messageId,
    meshId: "00000000-0000-0000-0000-000000000001",
    senderPubkey: "a".repeat(64),
    targetSpec: "*",
    priority: "next" as const,
    nonce: "plain",
    ciphertext: btoa(JSON.stringify("hi")),
    createdAt: "2026-01-02T03:04:05.000Z",
    replyTo: null,
    attempt: 1,
  });

  test("a message the application still holds is not handed over again once the recent-ids window moved past it", async () => {
    const acked: string[] = [];
    const acks = new AckBatcher(10_000, (ids) => (acked.push(...ids), ids.length));
    const me = await generateKeypair();
    const inbox = new Inbox(new KeyRing(me.secretKey, me.publicKey), acks, "manual", new RecentIds(3));
    const kinds = ["x", "a", "b", "c", "x"].map((id) => inbox.receive(push(id)).kind);
    expect(kinds).toEqual(["message", "message", "message", "message", "duplicate"]);
    acks.flush();
    // Still held by the application: the redelivery is not acked for it.
    expect(acked).toEqual([]);
    inbox.ack("x");
    acks.flush();
    expect(acked).toEqual(["x"]);
    acks.dispose();
  });
});

describe("AckBatcher", () => {
  test("one frame per delay window, at once at 200 ids, kept while there is no socket", async () => {
    const frames: string[][] = [];
    const refused: string[][] = [];
    let online = true;
    const acks = new AckBatcher(30, (ids) => {
      if (!online) {
        refused.push(ids);
        return null;
      }
      frames.push(ids);
      return ids.length;
    });
    acks.add("1");
    acks.add("2");
    expect(frames).toHaveLength(0);
    await waitUntil(() => frames.length > 0, 5000, "the first frame");
    expect(frames).toEqual([["1", "2"]]);

    for (let i = 0; i < 200; i++) acks.add(`x${i}`);
    expect(frames).toHaveLength(2);
    expect(frames[1]).toHaveLength(200);

    online = false;
    acks.add("late");
    // The window's flush found no socket: the id is kept for the next one.
    await waitUntil(() => refused.length > 0, 5000, "the flush without a socket");
    expect(refused).toEqual([["late"]]);
    expect(acks.pending).toBe(1);
    online = true;
    acks.flush();
    expect(frames[2]).toEqual(["late"]);
    acks.dispose();
  });
});

test("a runtime without WebSocket, and no class given, is refused as invalid, not retried as unreachable", async () => {
  const base = { url: "http://127.0.0.1:1", meshId: "m", secretKey: (await generateKeypair()).secretKey };
  const own = globalThis.WebSocket;
  Reflect.deleteProperty(globalThis, "WebSocket");
  try {
    expect(await resolveConfig(base).catch((error: unknown) => error)).toMatchObject({ code: "invalid", message: expect.stringContaining("options.WebSocket") });
    expect((await resolveConfig({ ...base, WebSocket: own })).WebSocket).toBe(own);
  } finally {
    globalThis.WebSocket = own;
  }
});

test("brokerWsUrl", () => {
  expect(brokerWsUrl("ws://127.0.0.1:7900/ws")).toBe("ws://127.0.0.1:7900/ws");
  expect(brokerWsUrl("http://127.0.0.1:7900")).toBe("ws://127.0.0.1:7900/ws");
  expect(brokerWsUrl("https://sb.example.com/base/")).toBe("wss://sb.example.com/base/ws");
  expect(brokerWsUrl("http://h:1/ws")).toBe("ws://h:1/ws");
  expect(brokerWsUrl("http://h:1/ws/")).toBe("ws://h:1/ws");
  expect(brokerWsUrl("https://sb.example.com/base/ws//")).toBe("wss://sb.example.com/base/ws");
  expect(() => brokerWsUrl("ftp://x")).toThrow();
});

test("a user and password in the broker URL (basic authentication at a proxy) are shown as *** in every error", async () => {
  const secretKey = (await generateKeypair()).secretKey;
  // Nothing listens on port 1: the socket never opens.
  const unreachable = await SwitchboardClient.connect({ url: "ws://proxy-user:pr0xy-s3cret@127.0.0.1:1/ws", meshId: "m", secretKey }).catch((error: unknown) => error);
  expect(unreachable).toMatchObject({ code: "unreachable" });
  expect((unreachable as Error).message).toStartWith("cannot connect to ws://***:***@127.0.0.1:1/ws");
  const invalid = await SwitchboardClient.connect({ url: "ftp://t0ken-s3cret@127.0.0.1:1/", meshId: "m", secretKey }).catch((error: unknown) => error);
  expect(invalid).toMatchObject({ code: "invalid", message: "expected a ws://, wss://, http:// or https:// URL, got ftp://***@127.0.0.1:1/" });
});

test("a URL with a fragment, which no WebSocket can open, is refused as invalid by connect and start, not retried as unreachable", async () => {
  const secretKey = (await generateKeypair()).secretKey;
  for (const url of ["http://127.0.0.1:1/#top", "ws://127.0.0.1:1/ws#x", "https://sb.example.com/base#"]) {
    for (const make of [SwitchboardClient.connect, SwitchboardClient.start]) {
      const made = await make({ url, meshId: "m", secretKey, reconnect: { minDelayMs: 1, maxDelayMs: 1, maxAttempts: 3 } }).catch((error: unknown) => error);
      expect(made).toMatchObject({ code: "invalid", message: `the broker URL must have no fragment: ${url}` });
    }
  }
  // A query is kept: it may be what a proxy in front of the broker routes by.
  expect(brokerWsUrl("http://h:1/?via=edge")).toBe("ws://h:1/ws?via=edge");
});

test("hello fields the broker would refuse as malformed (ending the client for good) are refused as invalid when the client is made", async () => {
  const base = { url: "http://127.0.0.1:1", meshId: "m", secretKey: (await generateKeypair()).secretKey };
  for (const [bad, field] of [
    [{ displayName: "d".repeat(129) }, "displayName"],
    [{ displayName: "" }, "displayName"],
    [{ cwd: `/${"c".repeat(4096)}` }, "cwd"],
    [{ cwd: "/tmp/\u0000x" }, "cwd"],
    [{ meshId: "m".repeat(129) }, "meshId"],
    [{ sessionId: "s\u0000" }, "sessionId"],
  ] as const) {
    expect(await resolveConfig({ ...base, ...bad }).catch((error: unknown) => error)).toMatchObject({ code: "invalid", message: expect.stringMatching(new RegExp(`^${field}: `)) });
    expect(await SwitchboardClient.start({ ...base, ...bad }).catch((error: unknown) => error)).toMatchObject({ code: "invalid" });
  }
  expect(await resolveConfig({ ...base, displayName: "d".repeat(128), cwd: "/work" })).toMatchObject({ displayName: "d".repeat(128), cwd: "/work" });
});

test("a hello is signed for the URL's host as the broker's schema takes it (any port a scheme leaves out kept), or for the audience given", async () => {
  const secretKey = (await generateKeypair()).secretKey;
  const audience = async (url: string, given?: string) =>
    (await resolveConfig({ url, meshId: "m", secretKey, ...(given === undefined ? {} : { audience: given }) })).audience;
  expect(await audience("https://Broker.Example.com/")).toBe("broker.example.com");
  expect(await audience("wss://broker.example.com:443/ws")).toBe("broker.example.com");
  expect(await audience("https://broker.example.com:80")).toBe("broker.example.com:80");
  expect(await audience("ws://broker.example.com:443")).toBe("broker.example.com:443");
  expect(await audience("http://[::1]:7900")).toBe("[::1]:7900");
  expect(await audience("http://127.0.0.1:1", " Broker.Example.com ")).toBe("broker.example.com");
  for (const url of ["https://broker.example.com:80", "ws://broker.example.com:443", "http://[::1]:7900"]) {
    expect(signedHelloFrame.shape.audience.safeParse(await audience(url)).success).toBe(true);
  }
  expect(await audience("http://127.0.0.1:1", "broker.example.com/ws").catch((error: unknown) => error)).toMatchObject({
    code: "invalid",
    message: expect.stringMatching(/^audience: /),
  });
});

test("an HttpSender mesh no send can name (empty, over 63 characters) is refused as invalid at create, not by the broker at every send", async () => {
  for (const mesh of ["", "m".repeat(64)]) {
    expect(await HttpSender.create({ url: "http://127.0.0.1:1", token: "sba_x", mesh }).catch((error: unknown) => error)).toMatchObject({ code: "invalid", message: expect.stringMatching(/^mesh: /) });
  }
});

test("timeouts a timer cannot keep (over 2^31 - 1 ms), and acks or offline modes that do not exist, are refused as invalid", async () => {
  const base = { url: "http://127.0.0.1:1", meshId: "m", secretKey: (await generateKeypair()).secretKey };
  for (const bad of [
    { requestTimeoutMs: 3e9 },
    { requestTimeoutMs: Infinity },
    { connectTimeoutMs: 2 ** 31 },
    { connectTimeoutMs: 0 },
    { heartbeatMs: -1 },
    { heartbeatMs: 2 ** 31 },
    { heartbeatMs: Number.NaN },
  ]) {
    expect(await resolveConfig({ ...base, ...bad }).catch((error: unknown) => error)).toMatchObject({ code: "invalid" });
  }
  expect((await resolveConfig({ ...base, requestTimeoutMs: 2 ** 31 - 1 })).requestTimeoutMs).toBe(2 ** 31 - 1);
  expect((await resolveConfig({ ...base, heartbeatMs: 0 })).heartbeatMs).toBe(0);
  // A reconnect policy that would retry in a tight loop: a delay that never grows, or one no timer keeps.
  for (const reconnect of [{ minDelayMs: 0 }, { minDelayMs: 0, maxDelayMs: 0 }, { maxDelayMs: 2 ** 31 }, { minDelayMs: 100, maxDelayMs: 50 }]) {
    expect(await resolveConfig({ ...base, reconnect }).catch((error: unknown) => error)).toMatchObject({ code: "invalid" });
  }
  expect((await resolveConfig({ ...base, reconnect: { minDelayMs: 1, maxDelayMs: 2 ** 31 - 1 } })).reconnect).toMatchObject({ minDelayMs: 1, maxDelayMs: 2 ** 31 - 1 });
  // Options a JavaScript caller may misspell are refused, not taken for the default.
  for (const bad of [{ acks: "manul" }, { offline: "drop" }]) {
    expect(await resolveConfig({ ...base, ...(bad as object) }).catch((error: unknown) => error)).toMatchObject({ code: "invalid" });
  }
  expect(await HttpSender.create({ url: "http://127.0.0.1:1", token: "sba_x", timeoutMs: 3e9 }).catch((error: unknown) => error)).toMatchObject({ code: "invalid" });
  const client = await SwitchboardClient.start({ ...base, reconnect: false });
  try {
    expect(await client.request("*", "x", { timeoutMs: Infinity }).catch((error: unknown) => error)).toMatchObject({ code: "invalid" });
  } finally {
    await client.close();
  }
});

test("an ackDelayMs that is no delay, or holds acks past a third of the broker's default lease, is refused as invalid", async () => {
  const base = { url: "http://127.0.0.1:1", meshId: "m", secretKey: (await generateKeypair()).secretKey };
  // Past the lease (LEASE_SECONDS, default 30 s) the broker pushes every message again before its ack goes out.
  for (const ackDelayMs of [-1, Number.NaN, Infinity, MAX_ACK_DELAY_MS + 1, 60_000]) {
    expect(await resolveConfig({ ...base, ackDelayMs }).catch((error: unknown) => error)).toMatchObject({
      code: "invalid",
      message: `ackDelayMs must be ≥ 0 and at most ${MAX_ACK_DELAY_MS} ms (a third of the broker's default lease of 30 s)`,
    });
    expect(await SwitchboardClient.start({ ...base, ackDelayMs }).catch((error: unknown) => error)).toMatchObject({ code: "invalid" });
  }
  expect(MAX_ACK_DELAY_MS).toBe(10_000);
  expect((await resolveConfig({ ...base, ackDelayMs: 0 })).ackDelayMs).toBe(0);
  expect((await resolveConfig({ ...base, ackDelayMs: MAX_ACK_DELAY_MS })).ackDelayMs).toBe(MAX_ACK_DELAY_MS);
});

describe("a background connect's failed attempts", () => {
  const started = async (reconnect: { maxAttempts: number; minDelayMs: number; maxDelayMs: number }) =>
    SwitchboardClient.start({ url: "http://127.0.0.1:1", meshId: "m", secretKey: (await generateKeypair()).secretKey, reconnect, connectTimeoutMs: 2_000 });

  test("each is told with its error and whether another follows; then the client gives up with error and close", async () => {
    const client = await started({ maxAttempts: 3, minDelayMs: 1, maxDelayMs: 5 });
    const seen: string[] = [];
    client.on("connectFailed", (f) => void seen.push(`failed ${f.attempt} ${f.error.code} retry=${f.willRetry}`));
    client.on("error", (e) => void seen.push(`error ${e.code}`));
    client.on("close", (c) => void seen.push(`close willReconnect=${c.willReconnect}`));
    await waitUntil(() => seen.some((s) => s.startsWith("close")) || undefined, 30_000, "the client to give up");
    expect(seen).toEqual([
      "failed 1 unreachable retry=true",
      "failed 2 unreachable retry=true",
      "failed 3 unreachable retry=false",
      "error closed",
      "close willReconnect=false",
    ]);
  });

  test("a listener that closes the client on a failure stops the attempts there, the last one included: no error of giving up after it", async () => {
    for (const closeOn of [1, 2]) {
      const client = await started({ maxAttempts: 2, minDelayMs: 1, maxDelayMs: 5 });
      const seen: string[] = [];
      client.on("connectFailed", (f) => {
        seen.push(`failed ${f.attempt}`);
        if (f.attempt === closeOn) void client.close();
      });
      client.on("error", (e) => void seen.push(`error ${e.code}`));
      client.on("close", (c) => void seen.push(`close willReconnect=${c.willReconnect}`));
      await waitUntil(() => seen.some((s) => s.startsWith("close")) || undefined, 30_000, "the client to close");
      // A further attempt, or the giving up, would follow within the 5 ms delay and a refused connect.
      await Bun.sleep(300);
      expect(seen).toEqual([...Array.from({ length: closeOn }, (_, i) => `failed ${i + 1}`), "close willReconnect=false"]);
    }
  });
});

describe("buildHello with a token source", () => {
  const config = async (token: () => Promise<string>) =>
    resolveConfig({ url: "http://127.0.0.1:1", meshId: "m", secretKey: (await generateKeypair()).secretKey, token, connectTimeoutMs: 100 });

  test("a source that never answers fails the attempt with token_failed after connectTimeoutMs", async () => {
    const attempt = buildHello(await config(() => new Promise<string>(() => {})), Date.now()).catch((error: unknown) => error);
    const failure = await Promise.race([attempt, Bun.sleep(5_000).then(() => "still waiting for the token source")]);
    expect(failure).toBeInstanceOf(SwitchboardError);
    expect(failure).toMatchObject({ code: "token_failed" });
    expect(String((failure as Error).message)).toContain("within 100 ms");
  });

  test("a client closed while its token source never answers lets the process exit: no deadline is left waiting", async () => {
    const child = Bun.spawn(["bun", join(import.meta.dir, "fixtures", "closed-awaiting-token.ts")], { stdout: "pipe", stderr: "inherit" });
    try {
      await waitUntil(() => child.exitCode !== null, 30_000, "the process to exit after close()");
      expect(child.exitCode).toBe(0);
      expect(await new Response(child.stdout).text()).toBe("closed\n");
    } finally {
      child.kill();
    }
  });

  test("a source that throws is token_failed; one that answers in time gives a JWT hello", async () => {
    const thrown = await buildHello(await config(() => Promise.reject(new Error("backend down"))), Date.now()).catch((error: unknown) => error);
    expect(thrown).toMatchObject({ code: "token_failed" });
    // Even an error of the SDK's own kind, thrown by the source, is the source failing.
    const own = await buildHello(await config(() => Promise.reject(new SwitchboardError("closed", "x"))), Date.now()).catch((error: unknown) => error);
    expect(own).toMatchObject({ code: "token_failed" });
    const hello = await buildHello(await config(async () => "a.b.c"), Date.now());
    expect(hello).toMatchObject({ type: "hello", meshId: "m", jwt: "a.b.c" });
  });
});
