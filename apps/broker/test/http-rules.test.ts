// The pure rules behind the HTTP API and webhooks: the retry delay, which
// addresses a webhook may not reach, when a rate-limited sender may send
// again, and their configuration.
import { describe, expect, test } from "bun:test";
import { loadConfig } from "../src/config.ts";
import { RateLimiter } from "../src/services/rate-limit.ts";
import { failureDelayMs, retryDelayMs } from "../src/services/webhooks/backoff.ts";
import { webhookLeaseSeconds } from "../src/services/webhooks/dispatcher.ts";
import { checkTarget, isInternalAddress } from "../src/services/webhooks/target-policy.ts";
import { retryAfterMs } from "../src/transport/webhook/poster.ts";

const PRODUCTION = { minMs: 1000, maxMs: 300_000 };

describe("webhook backoff", () => {
  test("the ceiling starts at the minimum and doubles per failure up to the maximum; full jitter below it", () => {
    const ceilings = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 40].map((n) => retryDelayMs(n, PRODUCTION, () => 0.999_999_999) + 1);
    expect(ceilings).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000, 300000]);
    expect(retryDelayMs(5, PRODUCTION, () => 0)).toBe(0);
    expect(retryDelayMs(5, PRODUCTION, () => 0.5)).toBe(8000);
  });

  test("a receiver's Retry-After is a lower bound on the delay, up to the maximum; seconds or an HTTP date", () => {
    expect(failureDelayMs(1, PRODUCTION, 120_000, () => 0.5)).toBe(120_000);
    expect(failureDelayMs(9, PRODUCTION, 1000, () => 0.5)).toBe(128_000);
    expect(failureDelayMs(1, PRODUCTION, 10 ** 9, () => 0)).toBe(300_000);
    expect(failureDelayMs(1, PRODUCTION, undefined, () => 0.5)).toBe(500);
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(retryAfterMs("120", now)).toBe(120_000);
    expect(retryAfterMs(" 0 ", now)).toBe(0);
    expect(retryAfterMs("Thu, 01 Jan 2026 00:01:30 GMT", now)).toBe(90_000);
    expect(retryAfterMs("Wed, 31 Dec 2025 23:00:00 GMT", now)).toBe(0);
    expect(retryAfterMs("Thursday, 01-Jan-26 00:00:10 GMT", now)).toBe(10_000);
    for (const unreadable of [null, "", "soon", "-5", "1.5"]) expect(retryAfterMs(unreadable, now)).toBeNull();
  });

  test("a webhook's lease outlives its request's timeout", () => {
    expect(webhookLeaseSeconds(30, 10_000)).toBe(30);
    expect(webhookLeaseSeconds(2, 10_000)).toBe(15);
    expect(webhookLeaseSeconds(3, 1000)).toBe(6);
  });
});

describe("webhook targets", () => {
  test.each([
    "127.0.0.1",
    "127.255.0.9",
    "10.0.0.1",
    "172.16.5.4",
    "172.31.255.255",
    "192.168.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fd12:3456::1",
    "fe80::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    // Gateways reach the IPv4 address these carry: NAT64, 6to4, IPv4-compatible; and site-local.
    "64:ff9b::a00:1",
    "64:ff9b::10.0.0.1",
    "64:ff9b::7f00:1",
    "64:ff9b:1::1",
    "2002:a00:1::1",
    "2002:c0a8:101::",
    "::10.0.0.1",
    "::8.8.8.8",
    "fec0::1",
    // Teredo, whose client address (inverted) is 127.0.0.1; IPv4-translated; discard; documentation.
    "2001:0:4136:e378:8000:63bf:80ff:fffe",
    "::ffff:0:7f00:1",
    "100::1",
    "2001:db8::1",
    "192.0.2.1",
    "198.51.100.7",
    "203.0.113.9",
    "not an address",
  ])("%s is internal", (address) => expect(isInternalAddress(address)).toBe(true));

  test.each(["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "2001:0:4136:e378:8000:63bf:f7f7:f7f7"])("%s is public", (address) =>
    expect(isInternalAddress(address)).toBe(false),
  );

  test("a name whose resolver never answers is refused once the timeout passes, not waited for", async () => {
    const never = () => new Promise<string[]>(() => {});
    expect(await checkTarget("https://hooks.example/x", false, 50, never)).toEqual({ refused: "hooks.example did not resolve within 50 ms" });
    const publicName = async () => ["93.184.216.34"];
    expect(await checkTarget("https://hooks.example/x", false, 50, publicName)).toEqual({ refused: null, connectTo: ["93.184.216.34"] });
    const internalName = async () => ["10.1.2.3"];
    const refused = await checkTarget("https://hooks.example/x", false, 50, internalName);
    expect(refused.refused).toContain("resolves to 10.1.2.3");
  });

  test("an allowed name is pinned to its addresses, in the resolver's order; one internal address among them refuses it; no address is no name", async () => {
    const twoPublic = async () => ["2606:4700::1111", "93.184.216.34"];
    expect(await checkTarget("https://hooks.example/x", false, 50, twoPublic)).toEqual({ refused: null, connectTo: ["2606:4700::1111", "93.184.216.34"] });
    const oneInternal = async () => ["93.184.216.34", "127.0.0.1"];
    expect((await checkTarget("https://hooks.example/x", false, 50, oneInternal)).refused).toContain("resolves to 127.0.0.1");
    const none = async () => [];
    expect(await checkTarget("https://hooks.example/x", false, 50, none)).toEqual({ refused: "hooks.example does not resolve" });
  });

  test("an address in the URL, or any host while private ones are allowed, is not looked up and not pinned", async () => {
    const asked: string[] = [];
    const resolve = async (host: string) => (asked.push(host), ["10.1.2.3"]);
    expect(await checkTarget("https://93.184.216.34:8443/x", false, 50, resolve)).toEqual({ refused: null, connectTo: null });
    expect(await checkTarget("https://[2606:4700::1111]/x", false, 50, resolve)).toEqual({ refused: null, connectTo: null });
    expect(await checkTarget("http://hooks.internal/x", true, 50, resolve)).toEqual({ refused: null, connectTo: null });
    expect(asked).toEqual([]);
  });
});

describe("Retry-After of a rate-limited sender", () => {
  const MINUTE = 60_000;

  /** The wait is exact to the millisecond: a send just before it is refused, one at it counts. */
  function expectExact(limiter: RateLimiter, now: number, wait: number) {
    expect(limiter.allow("m", now + wait - 1)).toBe(false);
    expect(limiter.allow("m", now + wait)).toBe(true);
  }

  test("this minute's own sends: wait into the next minute until their weight has faded", () => {
    const limiter = new RateLimiter(10);
    const start = 5 * MINUTE + 15_000;
    for (let i = 0; i < 10; i++) expect(limiter.allow("m", start)).toBe(true);
    expect(limiter.allow("m", start)).toBe(false);
    const wait = limiter.retryAfterMs("m", start);
    // 10 × (1 − x) + 1 ≤ 10 needs x ≥ 0.1: 6 s into the next minute, 45 s + 6 s from now.
    expect(Math.abs(wait - 51_000)).toBeLessThanOrEqual(1);
    expectExact(limiter, start, wait);
  });

  test("last minute's sends fading: the wait ends where the estimate leaves room for one more", () => {
    const limiter = new RateLimiter(10);
    for (let i = 0; i < 10; i++) limiter.allow("m", 7 * MINUTE + 59_000);
    const now = 8 * MINUTE + 3_000;
    // 10 × (1 − 3/60) + 1 > 10: refused; at 6 s into the minute, 10 × 0.9 + 1 = 10 fits.
    expect(limiter.allow("m", now)).toBe(false);
    const wait = limiter.retryAfterMs("m", now);
    expect(Math.abs(wait - 3_000)).toBeLessThanOrEqual(1);
    expectExact(limiter, now, wait);
  });

  test("a key that may send now, or was never seen, waits 0", () => {
    const limiter = new RateLimiter(10);
    expect(limiter.retryAfterMs("nobody", 0)).toBe(0);
    limiter.allow("m", 1000);
    expect(limiter.retryAfterMs("m", 1000)).toBe(0);
  });
});

describe("configuration of HTTP and webhooks", () => {
  test("production defaults", () => {
    expect(loadConfig({})).toMatchObject({
      WEBHOOK_ALLOW_PRIVATE: false,
      MAX_REPLY_WAITERS: 1000,
      MAX_REPLY_WAITERS_PER_MEMBER: 200,
      WEBHOOK_TIMEOUT_MS: 10_000,
      WEBHOOK_BACKOFF_MIN_MS: 1000,
      WEBHOOK_BACKOFF_MAX_MS: 300_000,
    });
    expect(loadConfig({ WEBHOOK_ALLOW_PRIVATE: "true" }).WEBHOOK_ALLOW_PRIVATE).toBe(true);
  });

  test.each([
    ["WEBHOOK_ALLOW_PRIVATE", "yes"],
    ["MAX_REPLY_WAITERS", "0"],
    ["MAX_REPLY_WAITERS_PER_MEMBER", "0"],
    ["WEBHOOK_TIMEOUT_MS", "fast"],
    ["WEBHOOK_BACKOFF_MIN_MS", "-1"],
  ])("a bad %s stops the start naming it", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`invalid environment variable ${name}`));
  });
});
