// Whether 32 bytes are an ed25519 public key: the encoding of a point of the
// curve (RFC 8032 §5.1.3) outside its subgroup of small order. WebCrypto's
// importKey takes any 32 bytes, and a member enrolled with bytes that name no
// point could never sign a hello nor be sealed a message. A point of small
// order (the identity, and seven more) is no key pair's either (a secret
// scalar is a multiple of 8 times the base point), and worse: for it, a
// signature anyone can make verifies, so whoever knew it could say hello as
// its member. BigInt arithmetic, so the broker and a browser need no curve
// library for it.
const P = 2n ** 255n - 19n;

function mod(a: bigint): bigint {
  const r = a % P;
  return r < 0n ? r + P : r;
}

function pow(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  let b = mod(base);
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
  }
  return result;
}

const D = mod(-121665n * pow(121666n, P - 2n));
const SQRT_MINUS_1 = pow(2n, (P - 1n) / 4n);

/** 64 hex characters (any case) that decode to a point of the ed25519 curve not of small order. */
export function isEd25519PublicKey(hex: string): boolean {
  return isCurvePoint(hex) && !SMALL_ORDER_KEYS.has(hex.toLowerCase());
}

/**
 * The eight points of small order, as the canonical encodings isCurvePoint
 * lets through (it refuses the others: y ≥ p, or x = 0 with its sign set).
 * A set, so a hello's signature by one is refused without curve arithmetic.
 */
export const SMALL_ORDER_KEYS: ReadonlySet<string> = new Set([
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0000000000000000000000000000000000000000000000000000000000000080",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
]);

function isCurvePoint(hex: string): boolean {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return false;
  // Little-endian y; the top bit is the sign of x.
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16));
  const xOdd = y >> 255n === 1n;
  y &= (1n << 255n) - 1n;
  if (y >= P) return false;
  // x² = (y² − 1) / (d·y² + 1): a point exactly when that has a square root.
  const y2 = (y * y) % P;
  const u = mod(y2 - 1n);
  const v = mod(D * y2 + 1n);
  const v3 = (((v * v) % P) * v) % P;
  const v7 = (((v3 * v3) % P) * v) % P;
  let x = (((u * v3) % P) * pow((u * v7) % P, (P - 5n) / 8n)) % P;
  const vx2 = (v * ((x * x) % P)) % P;
  if (vx2 === mod(-u)) x = (x * SQRT_MINUS_1) % P;
  else if (vx2 !== u) return false;
  // x = 0 has no odd form.
  return !(x === 0n && xOdd);
}
