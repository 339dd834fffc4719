// Flow control per presence as pure code on a clock the test sets: how many
// pushes may await an ack, and how acks and lease expiry make room again.
import { describe, expect, test } from "bun:test";
import { PushWindow } from "../src/services/delivery/push-window.ts";

/** A window on a clock the test moves. */
function windowOf(capacity: number) {
  let now = 1_000_000;
  const window = new PushWindow(capacity, () => now);
  return { window, advance: (ms: number) => (now += ms) };
}

describe("PushWindow", () => {
  test("room is the capacity less the pushes awaiting an ack", () => {
    const { window } = windowOf(3);
    expect(window.room()).toBe(3);
    window.opened("a", 30);
    window.opened("b", 30);
    expect(window.outstanding()).toBe(2);
    expect(window.room()).toBe(1);
    window.opened("c", 30);
    window.opened("d", 30);
    expect(window.room()).toBe(0);
  });

  test("awaited counts the distinct ids among those given that still await their ack", () => {
    const { window, advance } = windowOf(4);
    window.opened("a", 1);
    window.opened("b", 30);
    expect(window.awaited(["a", "b", "a", "never-pushed"])).toBe(2);
    window.settled(["b"]);
    expect(window.awaited(["a", "b"])).toBe(1);
    advance(1000);
    // a's lease ran out: the queue takes it back, so it no longer awaits an ack here.
    expect(window.awaited(["a", "b"])).toBe(0);
  });

  test("split: each awaited id once; never pushed, expired and repeated ids are late", () => {
    const { window, advance } = windowOf(4);
    window.opened("a", 1);
    window.opened("b", 30);
    expect(window.split(["a", "b", "a", "never-pushed"])).toEqual({ awaited: ["a", "b"], late: ["a", "never-pushed"] });
    advance(1000);
    expect(window.split(["a", "b"])).toEqual({ awaited: ["b"], late: ["a"] });
  });

  test("an ack makes room; acking an id twice or one never pushed changes nothing", () => {
    const { window } = windowOf(2);
    window.opened("a", 30);
    window.opened("b", 30);
    window.settled(["a"]);
    expect(window.room()).toBe(1);
    window.settled(["a", "never-pushed"]);
    expect(window.outstanding()).toBe(1);
  });

  test("a push whose lease ran out no longer counts, so a recipient that never acks is not stalled", () => {
    const { window, advance } = windowOf(2);
    window.opened("a", 1);
    window.opened("b", 5);
    advance(999);
    expect(window.room()).toBe(0);
    advance(1);
    expect(window.outstanding()).toBe(1);
    advance(4_000);
    expect(window.room()).toBe(2);
  });

  test("the same message pushed again counts once, with its new lease", () => {
    const { window, advance } = windowOf(2);
    window.opened("a", 1);
    advance(500);
    window.opened("a", 1);
    expect(window.outstanding()).toBe(1);
    advance(700);
    expect(window.outstanding()).toBe(1);
    advance(300);
    expect(window.outstanding()).toBe(0);
  });

  test("nextOpening is when the earliest outstanding lease runs out, null with none outstanding", () => {
    const { window, advance } = windowOf(3);
    expect(window.nextOpening()).toBeNull();
    window.opened("a", 5);
    window.opened("b", 2);
    window.opened("c", 9);
    expect(window.nextOpening()).toBe(1_000_000 + 2000);
    window.settled(["b"]);
    expect(window.nextOpening()).toBe(1_000_000 + 5000);
    advance(10_000);
    expect(window.outstanding()).toBe(0);
    expect(window.nextOpening()).toBeNull();
  });
});
