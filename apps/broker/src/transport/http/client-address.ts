// The address a request comes from: the socket's peer, or, when that peer is
// a proxy the operator trusts (TRUSTED_PROXIES), the nearest address in
// X-Forwarded-For that is not one of them. Per-address limits key on it.
import type { Server } from "bun";
import { BlockList, isIP } from "node:net";

export type TrustedProxies = (address: string) => boolean;

export function trustedProxies(entries: readonly string[]): TrustedProxies {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = "", prefix] = entry.split("/");
    const family = isIP(address) === 6 ? "ipv6" : "ipv4";
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  }
  return (address) => {
    const plain = address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const family = isIP(plain);
    return family !== 0 && list.check(plain, family === 6 ? "ipv6" : "ipv4");
  };
}

/**
 * An X-Forwarded-For entry's address: a bare IP, or one with a port as some
 * proxies write it ("192.0.2.1:4711", "[2001:db8::1]:4711"); null for
 * anything else.
 */
function hopAddress(hop: string): string | null {
  if (isIP(hop) !== 0) return hop;
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(hop)?.[1];
  if (v6 !== undefined && isIP(v6) === 6) return v6;
  const v4 = /^([\d.]+):\d+$/.exec(hop)?.[1];
  return v4 !== undefined && isIP(v4) === 4 ? v4 : null;
}

export function clientAddress(req: Request, server: Server<unknown>, trusted: TrustedProxies): string {
  const peer = server.requestIP(req)?.address ?? "unknown";
  if (!trusted(peer)) return peer;
  const hops = (req.headers.get("x-forwarded-for") ?? "")
    .split(",")
    .map((hop) => hop.trim())
    .filter((hop) => hop !== "");
  // From the nearest hop back, the first not a trusted proxy is the client. One
  // that is no address ends the walk there: what lies left of it the client wrote.
  let leftmost = peer;
  for (const hop of hops.reverse()) {
    const address = hopAddress(hop);
    if (address === null) return hop;
    if (!trusted(address)) return address;
    leftmost = address;
  }
  return leftmost;
}
