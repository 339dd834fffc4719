// What the CLI hands to the broker as a target and what it looks up as a
// member's display name. A malformed #channel or tag: goes to the broker,
// whose error names what is wrong with it.
import { PUBKEY } from "@switchboard/protocol";

// The protocol writes a pubkey in lowercase hex; the same key in capitals is
// that key (hex names the same bytes either way), not a member's name.
const PUBKEY_ANY_CASE = new RegExp(PUBKEY.source, "i");

/** A pubkey written in either case, in lowercase as the broker takes it; undefined for anything else. */
export function asPubkey(text: string): string | undefined {
  return PUBKEY_ANY_CASE.test(text) ? text.toLowerCase() : undefined;
}

/** The target as the broker takes it (a pubkey in lowercase), or undefined for a member's display name. */
export function brokerTarget(target: string): string | undefined {
  const pubkey = asPubkey(target);
  if (pubkey !== undefined) return pubkey;
  return target === "*" || target.startsWith("#") || target.startsWith("tag:") ? target : undefined;
}
