// verifyWebhook against a signature computed independently (openssl dgst
// -sha256 -hmac), and every way a request can fail the check.
import { describe, expect, test } from "bun:test";
import { webhookSignature } from "@switchboard/protocol";
import { runInNewContext } from "node:vm";
import { SwitchboardError, verifyWebhook } from "../src/index.ts";

const SECRET = "whsec-example-0123456789";
const T = 1767225600;
const NOW = T * 1000 + 30_000;
const BODY =
  '{"type":"push_batch","messages":[{"type":"push","messageId":"7f2e8df2-9a41-4eb4-9ef0-80182c97ccc8",' +
  '"meshId":"cf69dcff-9083-4958-b012-1922a6d5a018","senderPubkey":"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",' +
  '"targetSpec":"#ops","priority":"next","nonce":"plain","ciphertext":"eyJvayI6dHJ1ZX0=","createdAt":"2026-01-01T00:00:00.000Z",' +
  '"replyTo":null,"attempt":1}]}';
// printf '%s' "1767225600.$BODY" | openssl dgst -sha256 -hmac "$SECRET"
const V1 = "269cec7d8aec83989afc0cd7c681f2b0e8fbf9f09ad11cce9f30333c1ddd872a";
const HEADER = `t=${T},v1=${V1}`;

const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => "verified",
    (error: { code: string }) => error.code,
  );

describe("verifyWebhook", () => {
  test("accepts the documented example and returns the batch", async () => {
    const batch = await verifyWebhook(SECRET, new Headers({ "X-Switchboard-Signature": HEADER }), BODY, { now: NOW });
    expect(batch.type).toBe("push_batch");
    expect(batch.messages.map((m) => m.messageId)).toEqual(["7f2e8df2-9a41-4eb4-9ef0-80182c97ccc8"]);
  });

  test("takes Node's header object and a byte body alike", async () => {
    const headers = { "x-switchboard-signature": [HEADER], "content-type": "application/json" };
    const batch = await verifyWebhook(SECRET, headers, new TextEncoder().encode(BODY), { now: NOW });
    expect(batch.messages.length).toBe(1);
  });

  test("takes any headers object with a get, such as another library's Headers class", async () => {
    class OtherHeaders {
      readonly #byName = new Map<string, string>();
      constructor(init: Record<string, string>) {
        for (const [name, value] of Object.entries(init)) this.#byName.set(name.toLowerCase(), value);
      }
      get(name: string): string | null {
        return this.#byName.get(name.toLowerCase()) ?? null;
      }
    }
    const batch = await verifyWebhook(SECRET, new OtherHeaders({ "X-Switchboard-Signature": HEADER }), BODY, { now: NOW });
    expect(batch.messages.length).toBe(1);
  });

  test("takes a get that answers undefined for a missing header (a Map, Express's req), refusing that as bad_signature", async () => {
    const signed = new Map([["x-switchboard-signature", HEADER]]);
    expect(await codeOf(verifyWebhook(SECRET, signed, BODY, { now: NOW }))).toBe("verified");
    expect(await codeOf(verifyWebhook(SECRET, new Map<string, string>(), BODY, { now: NOW }))).toBe("bad_signature");
  });

  test("accepts a header with several v1 signatures when one matches", async () => {
    const headers = { "X-Switchboard-Signature": `t=${T},v1=${"0".repeat(64)},v1=${V1}` };
    expect(await codeOf(verifyWebhook(SECRET, headers, BODY, { now: NOW }))).toBe("verified");
  });

  test("refuses a wrong secret, a changed body, a stale or future timestamp, a missing or malformed header", async () => {
    const at = (header: string | undefined, body = BODY, secret = SECRET, now = NOW) =>
      codeOf(verifyWebhook(secret, header === undefined ? {} : { "x-switchboard-signature": header }, body, { now }));
    expect(await at(HEADER, BODY, "another-secret-0123456789")).toBe("bad_signature");
    expect(await at(HEADER, BODY.replace('"next"', '"now"'))).toBe("bad_signature");
    expect(await at(HEADER, `${BODY}\n`)).toBe("bad_signature");
    expect(await at(HEADER, BODY, SECRET, T * 1000 + 301_000)).toBe("bad_signature");
    expect(await at(HEADER, BODY, SECRET, T * 1000 - 301_000)).toBe("bad_signature");
    expect(await at(`t=${T + 1},v1=${V1}`)).toBe("bad_signature");
    expect(await at(undefined)).toBe("bad_signature");
    expect(await at(`v1=${V1}`)).toBe("bad_signature");
    expect(await at(`t=${T}`)).toBe("bad_signature");
    expect(await at(`t=${T},v1=${V1.toUpperCase()}`)).toBe("bad_signature");
    expect(await at("garbage")).toBe("bad_signature");
    // A wider tolerance lets an old request through.
    expect(await codeOf(verifyWebhook(SECRET, { "x-switchboard-signature": HEADER }, BODY, { now: T * 1000 + 400_000, toleranceSeconds: 600 }))).toBe(
      "verified",
    );
  });

  test("a tolerance that is not a number of seconds (NaN from an unset variable) or an empty secret is invalid, never a pass", async () => {
    const headers = { "X-Switchboard-Signature": HEADER };
    const aYearLater = NOW + 365 * 86_400_000;
    for (const toleranceSeconds of [Number.NaN, Number.POSITIVE_INFINITY, -1]) {
      expect(await codeOf(verifyWebhook(SECRET, headers, BODY, { now: aYearLater, toleranceSeconds }))).toBe("invalid");
    }
    expect(await codeOf(verifyWebhook("", headers, BODY, { now: NOW }))).toBe("invalid");
  });

  test("a secret that is not a string (null from a JSON config, a number, undefined) is invalid: a request signed with its text as key does not pass", async () => {
    // As JSON.parse gives it: typed any, so TypeScript lets it through.
    const config = JSON.parse('{"secret":null,"numeric":12345}') as { secret: string; numeric: string };
    for (const [secret, keyItWouldBe] of [
      [config.secret, "null"],
      [config.numeric, "12345"],
      [undefined as unknown as string, "undefined"],
    ] as const) {
      const forged = `t=${T},v1=${await webhookSignature(keyItWouldBe, T, BODY)}`;
      expect(await codeOf(verifyWebhook(secret, { "x-switchboard-signature": forged }, BODY, { now: NOW }))).toBe("invalid");
    }
  });

  test("a body already parsed (express.json()'s req.body, typed any) is refused invalid saying to pass the raw body; an ArrayBuffer of it verifies", async () => {
    const headers = { "x-switchboard-signature": HEADER };
    const parsed = JSON.parse(BODY) as string;
    const refused = await verifyWebhook(SECRET, headers, parsed, { now: NOW }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(SwitchboardError);
    expect((refused as SwitchboardError).code).toBe("invalid");
    expect((refused as SwitchboardError).message).toContain("raw body");
    // What fetch's req.arrayBuffer() gives: the body as received.
    expect(await codeOf(verifyWebhook(SECRET, headers, new TextEncoder().encode(BODY).buffer, { now: NOW }))).toBe("verified");
  });

  test("bytes made in another realm (a vm context, a test runner's sandbox) verify as bytes of this one do", async () => {
    const headers = { "x-switchboard-signature": HEADER };
    const codes = JSON.stringify([...new TextEncoder().encode(BODY)]);
    const bytes = runInNewContext(`new Uint8Array(${codes})`) as Uint8Array;
    const buffer = runInNewContext(`new Uint8Array(${codes}).buffer`) as ArrayBuffer;
    expect(bytes).not.toBeInstanceOf(Uint8Array);
    expect(await codeOf(verifyWebhook(SECRET, headers, bytes, { now: NOW }))).toBe("verified");
    expect(await codeOf(verifyWebhook(SECRET, headers, buffer, { now: NOW }))).toBe("verified");
  });

  test("a correctly signed body that is not a push batch is invalid", async () => {
    const body = '{"type":"something_else"}';
    const header = `t=${T},v1=${await webhookSignature(SECRET, T, body)}`;
    expect(await codeOf(verifyWebhook(SECRET, { "x-switchboard-signature": header }, body, { now: NOW }))).toBe("invalid");
  });
});
