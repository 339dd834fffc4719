// The hello signature: ed25519 over a fixed text, through WebCrypto so the
// broker, the SDK and the CLI share one implementation.
import { SMALL_ORDER_KEYS } from "./curve.ts";

export const HELLO_CONTEXT = "switchboard/1 hello";

export function helloSigningText(meshId: string, pubkey: string, sessionId: string, timestamp: number): string {
  return `${HELLO_CONTEXT}\n${meshId}\n${pubkey}\n${sessionId}\n${timestamp}`;
}

/**
 * The second signature of a hello that names the broker it is for (its
 * `audience`): an endpoint that takes the hello cannot pass it on to another
 * broker that checks the name. A context of its own, so neither text can be
 * read as the other.
 */
export const HELLO_AUDIENCE_CONTEXT = "switchboard/1 hello for";

export function helloAudienceSigningText(audience: string, meshId: string, pubkey: string, sessionId: string, timestamp: number): string {
  return `${HELLO_AUDIENCE_CONTEXT}\n${audience}\n${meshId}\n${pubkey}\n${sessionId}\n${timestamp}`;
}

/**
 * A broker's name as a hello's audience: the host of the URL a peer dials,
 * lower case, with its port unless it is the scheme's default (as URL.host
 * writes it). Null when the text is no host.
 */
export function audienceOf(url: string): string | null {
  try {
    const host = new URL(url).host.toLowerCase();
    return host === "" ? null : host;
  } catch {
    return null;
  }
}

export function hexToBytes(hex: string): Uint8Array<ArrayBuffer> {
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(hex)) throw new Error("not a hex string");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function bytesToHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** base64url without Buffer, so this module also runs in a browser. */
function base64UrlToBytes(text: string): Uint8Array {
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

// PKCS#8 wrapping of a raw 32-byte ed25519 seed (RFC 8410).
const PKCS8_PREFIX = hexToBytes("302e020100300506032b657004220420");

export interface Keypair {
  /** 32-byte seed, hex. Keep it secret. */
  secretKey: string;
  /** 32-byte public key, hex: the member's identity. */
  publicKey: string;
}

async function privateKeyFromSeed(seedHex: string): Promise<CryptoKey> {
  const seed = hexToBytes(seedHex);
  if (seed.length !== 32) throw new Error("an ed25519 secret key is 32 bytes (64 hex)");
  const pkcs8 = new Uint8Array(PKCS8_PREFIX.length + 32);
  pkcs8.set(PKCS8_PREFIX);
  pkcs8.set(seed, PKCS8_PREFIX.length);
  return crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
}

export async function publicKeyOf(secretKeyHex: string): Promise<string> {
  const key = await privateKeyFromSeed(secretKeyHex);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  return bytesToHex(base64UrlToBytes(jwk.x ?? ""));
}

export async function generateKeypair(): Promise<Keypair> {
  const secretKey = bytesToHex(crypto.getRandomValues(new Uint8Array(32)));
  return { secretKey, publicKey: await publicKeyOf(secretKey) };
}

export async function signText(secretKeyHex: string, text: string): Promise<string> {
  const key = await privateKeyFromSeed(secretKeyHex);
  const signature = await crypto.subtle.sign("Ed25519", key, new TextEncoder().encode(text));
  return bytesToHex(new Uint8Array(signature));
}

export async function verifyText(publicKeyHex: string, signatureHex: string, text: string): Promise<boolean> {
  // A key of small order verifies signatures anyone can make (curve.ts).
  if (SMALL_ORDER_KEYS.has(publicKeyHex.toLowerCase())) return false;
  try {
    const key = await crypto.subtle.importKey("raw", hexToBytes(publicKeyHex), { name: "Ed25519" }, false, ["verify"]);
    return await crypto.subtle.verify("Ed25519", key, hexToBytes(signatureHex), new TextEncoder().encode(text));
  } catch {
    return false;
  }
}

export interface SignedHelloFields {
  meshId: string;
  pubkey: string;
  sessionId: string;
  timestamp: number;
  signature: string;
  /** With an audience: the broker it names, and the signature of that text too. */
  audience?: string;
  audienceSignature?: string;
}

/**
 * A hello's signed fields. With `audience` it carries both signatures: the
 * first for brokers that predate the audience (they ignore the other
 * fields), the second for those that check it.
 */
export async function signHello(
  secretKeyHex: string,
  fields: { meshId: string; sessionId: string; timestamp?: number; audience?: string },
): Promise<SignedHelloFields> {
  const pubkey = await publicKeyOf(secretKeyHex);
  const { meshId, sessionId, audience } = fields;
  const timestamp = fields.timestamp ?? Date.now();
  const signature = await signText(secretKeyHex, helloSigningText(meshId, pubkey, sessionId, timestamp));
  if (audience === undefined) return { meshId, pubkey, sessionId, timestamp, signature };
  const audienceSignature = await signText(secretKeyHex, helloAudienceSigningText(audience, meshId, pubkey, sessionId, timestamp));
  return { meshId, pubkey, sessionId, timestamp, signature, audience, audienceSignature };
}
