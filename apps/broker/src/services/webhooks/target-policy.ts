// Where the broker may send webhook requests. Only http(s) URLs; and unless
// WEBHOOK_ALLOW_PRIVATE is set, never to an address that resolves into a
// private, loopback, link-local or otherwise internal range, so a webhook
// cannot be aimed at the broker's own network. Checked when a webhook is set
// and again before every request (a name may resolve elsewhere later); the
// request then goes to the address the check approved, not to a second
// lookup's answer, which a name's owner could point inside (DNS rebinding).
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import { ipv6Groups } from "../ipv6.ts";
import { settleWithin } from "../timing.ts";

const INTERNAL = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  // Documentation (TEST-NET-1 to 3) and the old 6to4 relay: no one's webhook lives there.
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const) {
  INTERNAL.addSubnet(net, bits, "ipv4");
}
for (const [net, bits] of [
  ["::", 96],
  ["::1", 128],
  // IPv4-translated (SIIT), the discard prefix and documentation.
  ["::ffff:0:0:0", 96],
  ["100::", 64],
  ["2001:db8::", 32],
  ["64:ff9b:1::", 48],
  ["fc00::", 7],
  ["fe80::", 10],
  ["fec0::", 10],
  ["ff00::", 8],
] as const) {
  INTERNAL.addSubnet(net, bits, "ipv6");
}

// Prefixes whose addresses carry an IPv4 address a gateway reaches for them:
// NAT64's well-known 64:ff9b::/96 (the last 32 bits), 6to4's 2002::/16 (the
// 32 bits after the prefix) and Teredo's 2001::/32 (the last 32 bits, each
// inverted). Internal when that IPv4 address is.
function embeddedIPv4(address: string): string | null {
  const g = ipv6Groups(address);
  if (g === null) return null;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return v4(g[6]!, g[7]!);
  if (g[0] === 0x2002) return v4(g[1]!, g[2]!);
  if (g[0] === 0x2001 && g[1] === 0) return v4(g[6]! ^ 0xffff, g[7]! ^ 0xffff);
  return null;
}

export function isInternalAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  if (INTERNAL.check(address, family === 4 ? "ipv4" : "ipv6")) return true;
  const v4 = embeddedIPv4(address);
  return v4 !== null && INTERNAL.check(v4, "ipv4");
}

/** A host's addresses (node's resolver, which has no deadline of its own). */
export type Resolve = (host: string) => Promise<string[]>;

const resolveAll: Resolve = async (host) => (await lookup(host, { all: true })).map((a) => a.address);

/** The host's addresses; null when it does not resolve, "late" when the resolver took longer than timeoutMs. */
async function resolveWithin(resolve: Resolve, host: string, timeoutMs: number): Promise<string[] | null | "late"> {
  try {
    return await settleWithin(resolve(host), timeoutMs, () => "late" as const);
  } catch {
    return null;
  }
}

/** The addresses a request may connect to, in the order to try them; never empty. */
export type ApprovedAddresses = readonly [string, ...string[]];

/**
 * The check's verdict: refused, and why; or allowed, with the addresses the
 * request may connect to. They are null when there is no name to pin: the
 * host is an address already, or private ones are allowed.
 */
export type TargetVerdict = { refused: string } | { refused: null; connectTo: ApprovedAddresses | null };

/**
 * Whether the broker may send to this URL. A name that does not resolve
 * within `timeoutMs` is refused: the lookup runs while the webhook's lease
 * is held, and a stalled resolver must not outlast it. A name's addresses
 * must all be public; the request tries them in the resolver's order.
 */
export async function checkTarget(url: string, allowPrivate: boolean, timeoutMs: number, resolve: Resolve = resolveAll): Promise<TargetVerdict> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { refused: "not a URL" };
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return { refused: "only http:// and https:// URLs are allowed" };
  if (allowPrivate) return { refused: null, connectTo: null };
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  const literal = isIP(host) !== 0;
  const addresses = literal ? [host] : await resolveWithin(resolve, host, timeoutMs);
  if (addresses === "late") return { refused: `${host} did not resolve within ${timeoutMs} ms` };
  if (addresses === null || !nonEmpty(addresses)) return { refused: `${host} does not resolve` };
  const internal = addresses.find(isInternalAddress);
  if (internal !== undefined) {
    return { refused: `${host} resolves to ${internal}, a private, loopback or link-local address (WEBHOOK_ALLOW_PRIVATE is false)` };
  }
  return { refused: null, connectTo: literal ? null : addresses };
}

function nonEmpty(addresses: string[]): addresses is [string, ...string[]] {
  return addresses.length > 0;
}
