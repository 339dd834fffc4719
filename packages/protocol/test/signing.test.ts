// The signing test vector published in docs/protocol.md: if this fails, the
// docs and the implementation disagree.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { helloSigningText, publicKeyOf, signHello, verifyText } from "../src/index.ts";

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
