// The signing test vector published in docs/protocol.md: if this fails, the
// docs and the implementation disagree.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  addMemberBody,
  audienceOf,
  generateKeypair,
  helloAudienceSigningText,
  helloSigningText,
  hexToBytes,
  isEd25519PublicKey,
  publicKeyOf,
  signHello,
  signedHelloFrame,
  SMALL_ORDER_KEYS,
  verifyText,
} from "../src/index.ts";

const SECRET = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const PUBKEY = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const SIGNATURE =
  "adf0576c788ce6c017d72e19b6e5f71393b542e1322f6ec6414de45fc5402be50a29d353e0b1be2cdbed12c93d97b33941382ecc4dfef79d7d07030974f0b407";

describe("hello signing", () => {
  test("the documented test vector", async () => {
    expect(await publicKeyOf(SECRET)).toBe(PUBKEY);
    const signed = await signHello(SECRET, { meshId: "demo", sessionId: "session-1", timestamp: 1767225600000 });
    expect(signed.signature).toBe(SIGNATURE);
    expect(helloSigningText("demo", PUBKEY, "session-1", 1767225600000)).toBe(
      `switchboard/1 hello\ndemo\n${PUBKEY}\nsession-1\n1767225600000`,
    );
    const docs = readFileSync(join(import.meta.dir, "..", "..", "..", "docs", "protocol.md"), "utf8");
    for (const value of [SECRET, PUBKEY, SIGNATURE]) expect(docs).toContain(value);
  });

  test("a changed field or key does not verify", async () => {
    const text = helloSigningText("demo", PUBKEY, "session-1", 1767225600000);
    expect(await verifyText(PUBKEY, SIGNATURE, text)).toBe(true);
    expect(await verifyText(PUBKEY, SIGNATURE, text.replace("session-1", "session-2"))).toBe(false);
    expect(await verifyText("00".repeat(32), SIGNATURE, text)).toBe(false);
    expect(await verifyText(PUBKEY, "zz", text)).toBe(false);
  });
});

const AUDIENCE_SIGNATURE =
  "94f10f19dedcb79fdcdd1cb93dec003a10e1c76463647b9d4b6041ccbd5f6b75f13f7bff335c0e54ca8a2027d41cc06604ef8329868c7b8ddb5c57fb84d5300a";

describe("a hello signed for its broker (audience)", () => {
  test("the documented test vector: both signatures, the first as without an audience", async () => {
    const fields = { meshId: "demo", sessionId: "session-1", timestamp: 1767225600000, audience: "broker.example.com" };
    const signed = await signHello(SECRET, fields);
    expect(signed).toMatchObject({ signature: SIGNATURE, audience: "broker.example.com", audienceSignature: AUDIENCE_SIGNATURE });
    const text = helloAudienceSigningText("broker.example.com", "demo", PUBKEY, "session-1", 1767225600000);
    expect(text).toBe(`switchboard/1 hello for\nbroker.example.com\ndemo\n${PUBKEY}\nsession-1\n1767225600000`);
    // Another implementation of ed25519 agrees (node:crypto's, not WebCrypto's).
    const { createPrivateKey, sign } = await import("node:crypto");
    const key = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), Buffer.from(SECRET, "hex")]), format: "der", type: "pkcs8" });
    expect(sign(null, Buffer.from(text), key).toString("hex")).toBe(AUDIENCE_SIGNATURE);
    // Neither signature verifies as the other: the two texts have contexts of their own.
    expect(await verifyText(PUBKEY, AUDIENCE_SIGNATURE, helloSigningText("demo", PUBKEY, "session-1", 1767225600000))).toBe(false);
    expect(await verifyText(PUBKEY, SIGNATURE, text)).toBe(false);
    expect(await verifyText(PUBKEY, AUDIENCE_SIGNATURE, text.replace("broker.example.com", "evil.example.com"))).toBe(false);
    const docs = readFileSync(join(import.meta.dir, "..", "..", "..", "docs", "protocol.md"), "utf8");
    expect(docs).toContain(AUDIENCE_SIGNATURE);
  });

  test("an audience is a host as a URL names it; the frame has both of its fields or neither", async () => {
    expect(audienceOf("wss://Broker.Example.com:443/ws")).toBe("broker.example.com");
    expect(audienceOf("ws://127.0.0.1:7900/ws")).toBe("127.0.0.1:7900");
    expect(audienceOf("ws://[::1]:7900/ws")).toBe("[::1]:7900");
    expect(audienceOf("not a url")).toBeNull();
    // The port another scheme would leave out is kept, and taken.
    expect(audienceOf("wss://broker.example.com:80/ws")).toBe("broker.example.com:80");
    expect(audienceOf("ws://broker.example.com:443/ws")).toBe("broker.example.com:443");
    const signed = await signHello(SECRET, { meshId: "demo", sessionId: "s", audience: "broker.example.com" });
    const hello = { type: "hello", ...signed };
    expect(signedHelloFrame.safeParse(hello).success).toBe(true);
    const { audienceSignature: _, ...alone } = hello;
    expect(signedHelloFrame.safeParse(alone).error?.issues[0]?.message).toBe("audience and audienceSignature come together");
    for (const audience of ["broker.example.com:80", "broker.example.com:443", "[::1]:7900"]) {
      expect({ audience, ok: signedHelloFrame.safeParse({ ...hello, audience }).success }).toEqual({ audience, ok: true });
    }
    for (const audience of ["Broker.example.com", "broker.example.com/ws", "user@broker", "broker example", "", "b".repeat(300)]) {
      expect({ audience, ok: signedHelloFrame.safeParse({ ...hello, audience }).success }).toEqual({ audience, ok: false });
    }
  });
});

describe("isEd25519PublicKey", () => {
  test("every public key of a key pair is one; 64 hex characters that name no point of the curve are not", async () => {
    expect(isEd25519PublicKey(PUBKEY)).toBe(true);
    for (let i = 0; i < 50; i++) expect(isEd25519PublicKey((await generateKeypair()).publicKey)).toBe(true);
    expect(isEd25519PublicKey(PUBKEY.toUpperCase())).toBe(true);
    for (const notAPoint of [
      "02" + "00".repeat(31), // y = 2: no x fits
      "e4d758b60af2c14ef008aafb43f35d787c1f7cd00adb3eda1d229d941f6005f9",
      "ed" + "ff".repeat(30) + "7f", // y = p: not canonical
      "f".repeat(64), // y = 2^255 − 1 ≥ p
      "01" + "00".repeat(30) + "80", // y = 1 with x odd: x is 0, which has no odd form
      "ab".repeat(32),
      "not hex",
      PUBKEY.slice(2),
    ]) {
      expect(isEd25519PublicKey(notAPoint)).toBe(false);
    }
  });

  // For a key of small order, R = the identity and S = 0 verify whenever the
  // message's hash is a multiple of the key's order (1 in 8 at worst): a
  // signature anyone can make. WebCrypto's own verify is the witness here.
  test("the eight points of small order are no public keys, and no signature verifies for them", async () => {
    expect(SMALL_ORDER_KEYS.size).toBe(8);
    const forged = "01" + "00".repeat(31) + "00".repeat(32);
    for (const key of SMALL_ORDER_KEYS) {
      expect({ key, accepted: isEd25519PublicKey(key) }).toEqual({ key, accepted: false });
      const raw = await crypto.subtle.importKey("raw", hexToBytes(key), { name: "Ed25519" }, false, ["verify"]);
      let text: string | undefined;
      for (let i = 0; i < 400 && text === undefined; i++) {
        if (await crypto.subtle.verify("Ed25519", raw, hexToBytes(forged), new TextEncoder().encode(`hello ${i}`))) text = `hello ${i}`;
      }
      expect({ key, forgeable: text !== undefined }).toEqual({ key, forgeable: true });
      expect(await verifyText(key, forged, text!)).toBe(false);
      expect(await verifyText(key.toUpperCase(), forged, text!)).toBe(false);
    }
  });

  test("an admin body's pubkey must be one, and one that is not 64 lowercase hex characters is told only that", () => {
    const issues = (pubkey: string) => addMemberBody.safeParse({ pubkey, displayName: "x" }).error?.issues.map((i) => i.message);
    expect(issues(PUBKEY)).toBeUndefined();
    const refused = ["not an ed25519 public key (it names no point of the curve, or one of small order: no key pair has it)"];
    expect(issues("02" + "00".repeat(31))).toEqual(refused);
    expect(issues("01" + "00".repeat(31))).toEqual(refused);
    expect(issues(PUBKEY.toUpperCase())).toEqual(["expected 64 lowercase hex characters"]);
  });
});
