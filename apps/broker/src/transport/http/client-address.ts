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

export function clientAddress(req: Request, server: Server<unknown>, trusted: TrustedProxies): string {
  const peer = server.requestIP(req)?.address ?? "unknown";
  if (!trusted(peer)) return peer;
  const hops = (req.headers.get("x-forwarded-for") ?? "")
    .split(",")
    .map((hop) => hop.trim())
    .filter((hop) => isIP(hop) !== 0);
  for (let i = hops.length - 1; i >= 0; i--) if (!trusted(hops[i]!)) return hops[i]!;
  return hops[0] ?? peer;
}
