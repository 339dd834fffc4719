// Reconnect policy: exponential backoff with full jitter, and which refusals
// and close codes end the client for good.
import { SwitchboardError } from "./errors.ts";

export interface ReconnectPolicy {
  maxAttempts: number;
  minDelayMs: number;
  maxDelayMs: number;
}

/** The longest delay a timer keeps: a longer one fires at once. */
export const MAX_TIMER_MS = 2_147_483_647;

export const DEFAULT_RECONNECT: ReconnectPolicy = { maxAttempts: Number.POSITIVE_INFINITY, minDelayMs: 1000, maxDelayMs: 30_000 };

/**
 * Delay before reconnect attempt `attempt` (0 for the first): uniform in
 * [0, min(maxDelayMs, minDelayMs · 2^attempt)). Full jitter spreads a crowd of
 * peers that lost the same broker instead of having them retry in lockstep.
 */
export function backoffDelay(
  attempt: number,
  policy: Pick<ReconnectPolicy, "minDelayMs" | "maxDelayMs">,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.minDelayMs * 2 ** Math.max(0, attempt));
  return Math.floor(Math.min(Math.max(random(), 0), 1) * ceiling);
}

export function resolvePolicy(option: Partial<ReconnectPolicy> | false | undefined): ReconnectPolicy | null {
  if (option === false) return null;
  const policy = { ...DEFAULT_RECONNECT, ...stripUndefined(option ?? {}) };
  // A minDelayMs of 0 never grows: every attempt would follow the last at
  // once, a tight loop against a broker that is down. A delay past the
  // longest a timer keeps would fire at once, the same loop.
  if (!(policy.minDelayMs >= 1) || !(policy.maxDelayMs >= policy.minDelayMs) || !(policy.maxDelayMs <= MAX_TIMER_MS) || !(policy.maxAttempts >= 0)) {
    throw new SwitchboardError("invalid", `reconnect: need 1 ≤ minDelayMs ≤ maxDelayMs ≤ ${MAX_TIMER_MS} and maxAttempts ≥ 0`);
  }
  return policy;
}

function stripUndefined(o: Partial<ReconnectPolicy>): Partial<ReconnectPolicy> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** Hello refusals that no retry can fix: the key is not (or no longer) welcome, or the hello itself is wrong. */
const FINAL_HELLO_CODES = new Set(["unauthorized", "bad_signature", "malformed"]);

export function isFinalHelloCode(code: string): boolean {
  return FINAL_HELLO_CODES.has(code);
}

/** 4000: another connection took over this session; 4002: the member was revoked. */
export function isFinalCloseCode(code: number): boolean {
  return code === 4000 || code === 4002;
}
