// What the CLI hands to the broker as a target and what it looks up as a
// member's display name. A malformed #channel or tag: goes to the broker,
// whose error names what is wrong with it.
import { PUBKEY } from "@switchboard/protocol";

export function isBrokerTarget(target: string): boolean {
  return PUBKEY.test(target) || target === "*" || target.startsWith("#") || target.startsWith("tag:");
}
