// JwtVerifier alone: which keys verify which algorithms, and a broker with no
// JWT key refuses every JWT hello.
import { describe, expect, test } from "bun:test";
import { SignJWT } from "jose";
import { generateKeyPairSync } from "node:crypto";
import { JwtVerifier } from "../src/services/jwt.ts";

const SECRET = "jwt-secret-for-tests-0123456789abcdef";
// An ed25519 public key (RFC 8032's first test vector): 64 hex characters that name no point are refused.
const PUBKEY = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const claims = () => ({ mesh: "demo", pubkey: PUBKEY, exp: Math.floor(Date.now() / 1000) + 60 });
const hs256 = () => new SignJWT(claims()).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(SECRET));

describe("JwtVerifier", () => {
  test("without JWT_SECRET or JWT_PUBLIC_KEY every token is unauthorized", async () => {
    const verifier = await JwtVerifier.create({});
    expect(verifier.enabled).toBe(false);
    expect(await verifier.verify(await hs256())).toMatchObject({ ok: false, code: "unauthorized" });
  });

  test("an RSA key verifies RS256 only; HS256 tokens need the secret", async () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = rsa.publicKey.export({ type: "spki", format: "pem" }).toString();
    const verifier = await JwtVerifier.create({ publicKey: { pem, alg: "RS256" } });
    const rs256 = await new SignJWT(claims()).setProtectedHeader({ alg: "RS256" }).sign(rsa.privateKey);
    expect(await verifier.verify(rs256)).toMatchObject({ ok: true, claims: { mesh: "demo", pubkey: PUBKEY, tags: [] } });
    expect(await verifier.verify(await hs256())).toMatchObject({ ok: false, code: "unauthorized" });
    const both = await JwtVerifier.create({ secret: SECRET, publicKey: { pem, alg: "RS256" } });
    expect((await both.verify(await hs256())).ok).toBe(true);
    expect((await both.verify(rs256)).ok).toBe(true);
  });

  test("claims of the wrong shape are unauthorized, an exp past the 30 s leeway is expired", async () => {
    const verifier = await JwtVerifier.create({ secret: SECRET });
    const key = new TextEncoder().encode(SECRET);
    const sign = (payload: Record<string, unknown>) => new SignJWT(payload).setProtectedHeader({ alg: "HS256" }).sign(key);
    expect(await verifier.verify(await sign({ ...claims(), pubkey: "AB".repeat(32) }))).toMatchObject({ code: "unauthorized" });
    expect(await verifier.verify(await sign({ ...claims(), pubkey: "ab".repeat(32) }))).toMatchObject({ code: "unauthorized" });
    expect(await verifier.verify(await sign({ ...claims(), tags: ["bad tag"] }))).toMatchObject({ code: "unauthorized" });
    const now = Math.floor(Date.now() / 1000);
    expect((await verifier.verify(await sign({ ...claims(), exp: now - 10 }))).ok).toBe(true);
    expect(await verifier.verify(await sign({ ...claims(), exp: now - 40 }))).toMatchObject({ code: "expired" });
  });
});
