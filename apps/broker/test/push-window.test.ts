// Flow control per presence as pure code on a clock the test sets: how many
// pushes may await an ack, and how acks and lease expiry make room again.
import { describe, expect, test } from "bun:test";
import { PushWindow } from "../src/services/delivery/push-window.ts";

const LEASE_SECONDS = 10;
const START = 1_000_000;

/** A window with 10 s leases on a clock the test moves. */
function windowOf(capacity: number) {
  let now = START;
  const window = new PushWindow(capacity, LEASE_SECONDS, () => now);
  return { window, advance: (ms: number) => (now += ms) };
}

describe("PushWindow", () => {
  test("room is the capacity less the pushes awaiting an ack", () => {
    const { window } = windowOf(3);
    expect(window.room()).toBe(3);
    window.opened("a");
    window.opened("b");
    expect(window.outstanding()).toBe(2);
    expect(window.room()).toBe(1);
    window.opened("c");
    window.opened("d");
    expect(window.room()).toBe(0);
  });

  test("awaited counts the distinct ids among those given that still await their ack", () => {
    const { window, advance } = windowOf(4);
    window.opened("a");
    advance(9_000);
    window.opened("b");
    expect(window.split(["a", "b", "a", "never-pushed"]).awaited).toHaveLength(2);
    window.settled(["b"]);
    expect(window.split(["a", "b"]).awaited).toHaveLength(1);
    advance(1_000);
    // a's lease ran out: the queue takes it back, so it no longer awaits an ack here.
    expect(window.split(["a", "b"]).awaited).toHaveLength(0);
  });

  test("split: each awaited id once; never pushed, expired and repeated ids are late", () => {
    const { window, advance } = windowOf(4);
    window.opened("a");
    advance(9_000);
    window.opened("b");
    expect(window.split(["a", "b", "a", "never-pushed"])).toEqual({ awaited: ["a", "b"], late: ["a", "never-pushed"] });
    advance(1_000);
    expect(window.split(["a", "b"])).toEqual({ awaited: ["b"], late: ["a"] });
  });

  test("acks not committed after all: their pushes await their acks again, each lease running out when it would have", () => {
    const { window, advance } = windowOf(4);
    window.opened("a");
    advance(3_000);
    window.opened("b");
    advance(3_000);
    window.opened("c");
    const settled = window.settled(["a", "c", "never-pushed"]);
    expect(settled).toEqual([["a", START + 10_000], ["c", START + 16_000]]);
    expect(window.room()).toBe(3);
    window.unsettled(settled);
    expect(["a", "b", "c", "never-pushed"].map((id) => window.holds(id))).toEqual([true, true, true, false]);
    expect(window.room()).toBe(1);
    // In the order they end: a's first, then b's, then c's.
    advance(4_000);
    expect(window.lapseMark()).toBe(1);
    expect(window.holds("a")).toBe(false);
    advance(3_000);
    expect(window.lapseMark()).toBe(2);
    expect(window.nextOpening()).toBe(START + 16_000);
  });

  test("an ack makes room; acking an id twice or one never pushed changes nothing", () => {
    const { window } = windowOf(2);
    window.opened("a");
    window.opened("b");
    window.settled(["a"]);
    expect(window.room()).toBe(1);
    window.settled(["a", "never-pushed"]);
    expect(window.outstanding()).toBe(1);
  });

  test("a push whose lease ran out no longer counts, so a recipient that never acks is not stalled", () => {
    const { window, advance } = windowOf(2);
    window.opened("a");
    advance(4_000);
    window.opened("b");
    advance(5_999);
    expect(window.room()).toBe(0);
    advance(1);
    expect(window.outstanding()).toBe(1);
    advance(4_000);
    expect(window.room()).toBe(2);
  });

  test("a lease that runs out while the queue takes back the others still counts as lapsed after it", () => {
    const { window, advance } = windowOf(2);
    window.opened("a");
    advance(4_000);
    window.opened("b");
    advance(6_000);
    // a ran out: the pump marks it and asks the queue to take it back.
    expect(window.lapsed()).toBe(true);
    const mark = window.lapseMark();
    // Meanwhile b runs out too, seen by a send asking for the window's room.
    advance(4_000);
    expect(window.room()).toBe(2);
    window.tookBackLapsed(mark);
    // The queue took back a only: b must be taken back before anything newer is leased here.
    expect(window.lapsed()).toBe(true);
    window.tookBackLapsed(window.lapseMark());
    expect(window.lapsed()).toBe(false);
  });

  test("the same message pushed again counts once, with its new lease, behind the leases opened before it", () => {
    const { window, advance } = windowOf(3);
    window.opened("a");
    advance(2_000);
    window.opened("b");
    advance(3_000);
    window.opened("a");
    expect(window.outstanding()).toBe(2);
    // b's lease ends first now: at 12 s, a's at 15 s.
    expect(window.nextOpening()).toBe(START + 12_000);
    advance(7_000);
    expect(window.split(["a", "b"])).toEqual({ awaited: ["a"], late: ["b"] });
    advance(3_000);
    expect(window.outstanding()).toBe(0);
  });

  test("nextOpening is when the earliest outstanding lease runs out, null with none outstanding", () => {
    const { window, advance } = windowOf(3);
    expect(window.nextOpening()).toBeNull();
    window.opened("a");
    advance(2_000);
    window.opened("b");
    advance(2_000);
    window.opened("c");
    expect(window.nextOpening()).toBe(START + 10_000);
    window.settled(["a"]);
    expect(window.nextOpening()).toBe(START + 12_000);
    advance(8_000);
    // b ran out at 12 s: c's lease is the next to end.
    expect(window.nextOpening()).toBe(START + 14_000);
    advance(10_000);
    expect(window.outstanding()).toBe(0);
    expect(window.nextOpening()).toBeNull();
  });

  test("many leases: the ones that ran out go, however many are still running", () => {
    const { window, advance } = windowOf(10_000);
    for (let i = 0; i < 5_000; i++) {
      window.opened(`m${i}`);
      advance(1);
    }
    // Opened a millisecond apart, their leases end from 10 s to 15 s.
    advance(7_499);
    expect(window.outstanding()).toBe(2_500);
    advance(2_501);
    expect(window.outstanding()).toBe(0);
    for (let i = 0; i < 3; i++) window.opened(`n${i}`);
    expect(window.room()).toBe(10_000 - 3);
  });
});
