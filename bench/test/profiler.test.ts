// A run's profile ends with a sample of its own (bench/src/switchboard.ts):
// Profiler.sampleNow waits for a sample under way, whose read of a stalled
// broker's /metrics may hang, then takes one more. So a window that ends
// after it holds two readings of each counter, and its rate per second.
// And a counter's reading is placed at the time it was answered: a window
// whose first samples a stalled broker answered only after the window's work
// counts from the reading answered before the window. A process that exits
// before the window's last sample (the load generator) keeps the CPU it used.
// A window and its samples are read on one clock (clock.ts), which a step of
// the wall clock does not move.
import { expect, test } from "bun:test";
import { now } from "../src/clock.ts";
import type { CounterSource } from "../src/counters.ts";
import { Profiler } from "../src/probe.ts";

test("sampleNow waits for the sample under way, then takes one of its own", async () => {
  let release = () => {};
  let reads = 0;
  const stalled: CounterSource = {
    read: () => {
      reads++;
      if (reads === 1) return new Promise((resolve) => (release = () => resolve({ sends: 10 })));
      return Promise.resolve({ sends: 30 });
    },
  };
  // Periodic samples would come only after a minute: each sample here is one the test asked for.
  const profiler = new Profiler(null, 60_000);
  profiler.trackCounters(stalled);
  const from = now();
  const first = profiler.sampleNow();
  const second = profiler.sampleNow();
  await Bun.sleep(20);
  expect(reads).toBe(1);
  release();
  await Promise.all([first, second]);
  await profiler.stop();
  expect(reads).toBe(2);
  const window = profiler.window(from, now());
  expect(window.perSecond.sends).toBeGreaterThan(0);
});

test("a broker stalled through a window's start: its counters count from the reading answered before the window, not from a late one inside it", async () => {
  let sends = 0;
  let release = () => {};
  let stall = false;
  const broker: CounterSource = {
    read: () => (stall ? new Promise((resolve) => (release = () => resolve({ sends }))) : Promise.resolve({ sends })),
  };
  const profiler = new Profiler(null, 60_000);
  profiler.trackCounters(broker);
  await profiler.sampleNow();
  await Bun.sleep(5);
  const from = now();
  // Asked inside the window, answered only once the window's work is done.
  stall = true;
  const late = profiler.sampleNow();
  await Bun.sleep(5);
  sends = 30;
  release();
  await late;
  stall = false;
  await Bun.sleep(5);
  await profiler.sampleNow();
  await profiler.stop();
  const window = profiler.window(from, now());
  expect(window.perSecond.sends).toBeGreaterThan(0);
});

test("a step back of the wall clock during a window leaves the window's samples in it", async () => {
  let sends = 0;
  const broker: CounterSource = { read: () => Promise.resolve({ sends }) };
  const profiler = new Profiler(null, 60_000);
  profiler.trackCounters(broker);
  const wallClock = Date.now;
  try {
    const from = now();
    await profiler.sampleNow();
    // A time daemon sets the clock a minute back.
    Date.now = () => wallClock() - 60_000;
    await Bun.sleep(5);
    sends = 30;
    await profiler.sampleNow();
    await profiler.stop();
    expect(profiler.window(from, now()).perSecond.sends).toBeGreaterThan(0);
  } finally {
    Date.now = wallClock;
  }
});

test("a process that exits before the window's last sample keeps the CPU it used", async () => {
  // Busy for 200 ms, says so, then waits for its input to end before it exits.
  const child = Bun.spawn(
    ["bun", "-e", "const end = performance.now() + 200; while (performance.now() < end); console.log('busy'); await Bun.stdin.text();"],
    { stdin: "pipe", stdout: "pipe" },
  );
  const profiler = new Profiler(null, 60_000);
  profiler.track("child", child.pid);
  const from = now();
  await profiler.sampleNow();
  const reader = child.stdout.getReader();
  await reader.read();
  await profiler.sampleNow();
  await child.stdin.end();
  await child.exited;
  await profiler.sampleNow();
  await profiler.stop();
  expect(profiler.window(from, now()).cpuPercent.child).toBeGreaterThan(0);
});
