// The per-key limit behind the send, frame and hook rate limits, as pure code
// on a clock the test sets: a sliding minute estimated from this minute's
// count and the previous one's, with a bounded number of keys.
import { describe, expect, test } from "bun:test";
import { RateLimiter } from "../src/services/rate-limit.ts";

const MINUTE = 60_000;
/** A moment `seconds` into minute number `minute`. */
const at = (minute: number, seconds = 0) => 1_000 * MINUTE + minute * MINUTE + seconds * 1000;

/** How many of n events at `now` the limiter allows. */
function allowed(limiter: RateLimiter, key: string, n: number, now: number): number {
  let count = 0;
  for (let i = 0; i < n; i++) if (limiter.allow(key, now)) count++;
  return count;
}

describe("RateLimiter", () => {
  test("N events in a minute are allowed, the next is refused", () => {
    const limiter = new RateLimiter(5);
    expect(Array.from({ length: 7 }, (_, i) => limiter.allow("k", at(0, i)))).toEqual([true, true, true, true, true, false, false]);
  });

  test("each key has its own count", () => {
    const limiter = new RateLimiter(3);
    expect(allowed(limiter, "a", 5, at(0, 1))).toBe(3);
    expect(allowed(limiter, "b", 5, at(0, 1))).toBe(3);
    expect(limiter.allow("a", at(0, 2))).toBe(false);
  });

  test("the previous minute's count weighs on the next minute as it slides out", () => {
    const limiter = new RateLimiter(5);
    expect(allowed(limiter, "k", 5, at(0, 10))).toBe(5);
    // At the turn of the minute the previous five still count in full.
    expect(limiter.allow("k", at(1, 0))).toBe(false);
    // Halfway through, they count as 2.5: two more fit (2.5 + 2 ≤ 5 < 2.5 + 3).
    expect(allowed(limiter, "k", 10, at(1, 30))).toBe(2);
  });

  test("refused events are not counted", () => {
    const limiter = new RateLimiter(5);
    expect(allowed(limiter, "k", 50, at(0, 10))).toBe(5);
    // Had the 45 refusals counted, the estimate halfway through the next minute would be 25.
    expect(allowed(limiter, "k", 10, at(1, 30))).toBe(2);
  });

  test("an event may cost several; one that does not fit costs nothing", () => {
    const limiter = new RateLimiter(5);
    expect(limiter.allow("k", at(0), 3)).toBe(true);
    expect(limiter.allow("k", at(0), 3)).toBe(false);
    expect(limiter.allow("k", at(0), 2)).toBe(true);
    expect(limiter.allow("k", at(0), 1)).toBe(false);
  });

  test("exhausted says whether the next event would be refused, without counting one", () => {
    const limiter = new RateLimiter(3);
    expect(limiter.exhausted("k", at(0))).toBe(false);
    expect(allowed(limiter, "k", 2, at(0))).toBe(2);
    for (let i = 0; i < 5; i++) expect(limiter.exhausted("k", at(0))).toBe(false);
    expect(limiter.allow("k", at(0))).toBe(true);
    expect(limiter.exhausted("k", at(0))).toBe(true);
    // Two minutes on, nothing of it is left.
    expect(limiter.exhausted("k", at(2))).toBe(false);
  });

  test("after a minute without events the key starts afresh", () => {
    const limiter = new RateLimiter(5);
    expect(allowed(limiter, "k", 5, at(0, 59))).toBe(5);
    // Minute 1 saw nothing, so minute 2 owes nothing to minute 0.
    expect(allowed(limiter, "k", 10, at(2, 0))).toBe(5);
  });

  test("prune keeps the keys whose count still weighs and drops the idle ones", () => {
    const limiter = new RateLimiter(5);
    expect(allowed(limiter, "recent", 5, at(1, 50))).toBe(5);
    expect(allowed(limiter, "idle", 5, at(0, 0))).toBe(5);
    expect(limiter.size).toBe(2);
    limiter.prune(at(2, 0));
    expect(limiter.size).toBe(1);
    expect(limiter.allow("recent", at(2, 0))).toBe(false);
  });

  test("past maxKeys the oldest key is dropped, so the map stays bounded whatever keys come", () => {
    const limiter = new RateLimiter(1, 2);
    for (const key of ["a", "b", "c"]) expect(limiter.allow(key, at(0))).toBe(true);
    expect(limiter.size).toBe(2);
    // "a" went to make room for "c": it starts afresh, while "c" is still counted.
    expect(limiter.allow("c", at(0))).toBe(false);
    expect(limiter.allow("a", at(0))).toBe(true);
    expect(limiter.size).toBe(2);
  });
});
