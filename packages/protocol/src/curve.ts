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
  const point = decodePoint(hex);
  return point !== null && !isSmallOrder(point);
}

/**
 * The encodings of the points of small order that a check of isEd25519PublicKey
 * lets through as points (canonical ones): a hello's signature by one of
 * these is refused without the curve arithmetic, which a hello cannot afford.
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

interface Point {
  x: bigint;
  y: bigint;
}

// Doubling on −x² + y² = 1 + d·x²·y², whose denominators (1 ± d·x²·y², here
// rewritten by the curve's equation) are never 0 for a point of it.
function double({ x, y }: Point): Point {
  const x2 = (x * x) % P;
  const y2 = (y * y) % P;
  const xs = mod(2n * x * y * pow(mod(y2 - x2), P - 2n));
  const ys = mod((y2 + x2) * pow(mod(2n - y2 + x2), P - 2n));
  return { x: xs, y: ys };
}

/** Whether 8·P is the identity (0, 1): P lies in the subgroup of order 8. */
function isSmallOrder(point: Point): boolean {
  const eight = double(double(double(point)));
  return eight.x === 0n && eight.y === 1n;
}

function decodePoint(hex: string): Point | null {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return null;
  // Little-endian y; the top bit is the sign of x.
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16));
  const xOdd = y >> 255n === 1n;
  y &= (1n << 255n) - 1n;
  if (y >= P) return null;
  // x² = (y² − 1) / (d·y² + 1): a point exactly when that has a square root.
  const y2 = (y * y) % P;
  const u = mod(y2 - 1n);
  const v = mod(D * y2 + 1n);
  const v3 = (((v * v) % P) * v) % P;
  const v7 = (((v3 * v3) % P) * v) % P;
  let x = (((u * v3) % P) * pow((u * v7) % P, (P - 5n) / 8n)) % P;
  const vx2 = (v * ((x * x) % P)) % P;
  if (vx2 === mod(-u)) x = (x * SQRT_MINUS_1) % P;
  else if (vx2 !== u) return null;
  // x = 0 has no odd form.
  if (x === 0n && xOdd) return null;
  return { x: (x & 1n) === (xOdd ? 1n : 0n) ? x : P - x, y };
}
