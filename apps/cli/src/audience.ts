// The broker name a hello is signed for, when it is not the URL's host: a
// broker reached through a tunnel or a port forward, whose HELLO_AUDIENCES
// lists the name it is known by rather than the one dialled.
import { givenAudience } from "@switchboard/protocol";
import type { Config } from "./config.ts";
import { UsageError } from "./errors.ts";

/**
 * The SDK's `audience` option. Checked here as the broker checks it, so a
 * name it would refuse is a usage error before any connect, and is never
 * written into an install.
 */
export function audienceOption(config: Config): { audience?: string } {
  if (config.audience === undefined) return {};
  const resolved = givenAudience(config.audience);
  if ("error" in resolved) throw new UsageError(`audience "${config.audience}" is not a broker name: ${resolved.error}`);
  return resolved;
}
