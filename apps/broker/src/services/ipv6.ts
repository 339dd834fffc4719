// IPv6 addresses as their eight 16-bit groups, for the checks that look
// inside one: the /64 a client counts under, the IPv4 address a NAT64 or
// 6to4 address carries.
import { isIP } from "node:net";

/** The eight groups of an IPv6 address (a zone id ignored, a dotted IPv4 tail as two groups); null for anything else. */
export function ipv6Groups(address: string): number[] | null {
  const plain = address.split("%")[0]!;
  if (isIP(plain) !== 6) return null;
  const text = plain.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_, a, b, c, d) =>
    `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`,
  );
  const [head = "", tail] = text.split("::");
  const groups = (part: string) => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const left = groups(head);
  if (tail === undefined) return left;
  const right = groups(tail);
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}
