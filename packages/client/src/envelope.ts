// The end-to-end envelope (docs/client.md has it byte by byte). Only audited
// primitives, all of them pure JavaScript so the SDK runs unchanged in a
// browser: X25519 and the ed25519→Montgomery maps from @noble/curves,
// XChaCha20-Poly1305 from @noble/ciphers, HKDF-SHA256 from @noble/hashes.
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { randomBytes } from "@noble/ciphers/utils.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { hexToBytes } from "@switchboard/protocol";
import { fromBase64, toBase64 } from "./base64.ts";
import { SwitchboardError } from "./errors.ts";

export const NONCE_PREFIX = "x1:";
export const PLAIN_NONCE = "plain";
export const DIRECT_INFO = "switchboard/1 direct";
const NONCE_BYTES = 24;
const KEY_BYTES = 32;

export interface Envelope {
  nonce: string;
  ciphertext: string;
}

const utf8 = new TextEncoder();

/** "switchboard/1\n<senderPubkey>\n<recipient pubkey or targetSpec>", UTF-8. */
export function associatedData(senderPubkey: string, to: string): Uint8Array {
  return utf8.encode(`switchboard/1\n${senderPubkey}\n${to}`);
}

/**
 * The key two members share for direct messages: X25519 of their keys mapped
 * to Montgomery form, through HKDF-SHA256 with salt = both public keys (raw
 * bytes, lower one first) and info "switchboard/1 direct". Both sides get the same key.
 */
export function directKey(mySecretHex: string, myPublicHex: string, peerPublicHex: string): Uint8Array {
  try {
    const mine = ed25519.utils.toMontgomerySecret(hexToBytes(mySecretHex));
    const theirs = ed25519.utils.toMontgomery(hexToBytes(peerPublicHex));
    const shared = x25519.getSharedSecret(mine, theirs);
    const [low, high] = [myPublicHex.toLowerCase(), peerPublicHex.toLowerCase()].sort();
    const salt = hexToBytes(`${low}${high}`);
    return hkdf(sha256, shared, salt, utf8.encode(DIRECT_INFO), KEY_BYTES);
  } catch (error) {
    throw new SwitchboardError("invalid", `${peerPublicHex} is no ed25519 public key (it names no point of the curve, or one of small order): no direct message to it can be sealed`, { cause: error });
  }
}

export function parseSymmetricKey(hex: string, name: string): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new SwitchboardError("invalid", `channelKeys[${name}]: expected 64 hex characters`);
  return hexToBytes(hex.toLowerCase());
}

function payloadBytes(payload: unknown): Uint8Array {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload === undefined ? null : payload);
  } catch (error) {
    // A bigint, a cycle, a toJSON that throws: the caller's payload, not a failure of the SDK.
    throw new SwitchboardError("invalid", `the payload cannot be serialized to JSON: ${String(error)}`, { cause: error });
  }
  if (json === undefined) throw new SwitchboardError("invalid", "the payload cannot be serialized to JSON");
  return utf8.encode(json);
}

/** key null → the plain envelope. `nonce` only for test vectors: a reused nonce breaks the cipher. */
export function seal(payload: unknown, key: Uint8Array | null, ad: Uint8Array, nonce = randomBytes(NONCE_BYTES)): Envelope {
  const plain = payloadBytes(payload);
  if (key === null) return { nonce: PLAIN_NONCE, ciphertext: toBase64(plain) };
  const sealed = xchacha20poly1305(key, nonce, ad).encrypt(plain);
  return { nonce: `${NONCE_PREFIX}${toBase64(nonce)}`, ciphertext: toBase64(sealed) };
}

export function isPlain(envelope: Envelope): boolean {
  return envelope.nonce === PLAIN_NONCE;
}

/** The payload of an envelope; a plain one needs no key. Throws SwitchboardError("decrypt_failed"). */
export function open(envelope: Envelope, key: Uint8Array | null, ad: Uint8Array): unknown {
  let plain: Uint8Array;
  if (isPlain(envelope)) {
    plain = decodeBase64(envelope.ciphertext, "ciphertext");
  } else {
    if (!envelope.nonce.startsWith(NONCE_PREFIX)) {
      throw new SwitchboardError("decrypt_failed", `unknown envelope nonce format "${envelope.nonce.slice(0, 8)}"`);
    }
    if (key === null) throw new SwitchboardError("decrypt_failed", "no key for this message");
    const nonce = decodeBase64(envelope.nonce.slice(NONCE_PREFIX.length), "nonce");
    if (nonce.length !== NONCE_BYTES) throw new SwitchboardError("decrypt_failed", "the nonce is not 24 bytes");
    try {
      plain = xchacha20poly1305(key, nonce, ad).decrypt(decodeBase64(envelope.ciphertext, "ciphertext"));
    } catch (error) {
      if (error instanceof SwitchboardError) throw error;
      throw new SwitchboardError("decrypt_failed", "the message does not authenticate with this key", { cause: error });
    }
  }
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(plain)) as unknown;
  } catch (error) {
    throw new SwitchboardError("decrypt_failed", "the payload is not UTF-8 JSON", { cause: error });
  }
}

function decodeBase64(text: string, what: string): Uint8Array {
  try {
    return fromBase64(text);
  } catch (error) {
    throw new SwitchboardError("decrypt_failed", `the ${what} is not base64`, { cause: error });
  }
}
