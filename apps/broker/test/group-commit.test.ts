// Group commit and the retry policy as pure code, without a database: what
// goes into one flush, who gets which result, and what is retried.
import { describe, expect, test } from "bun:test";
import { createGroupCommit, type GroupCommit } from "../src/services/group-commit.ts";
import { retryTransient } from "../src/services/retry.ts";

/** A flush the test finishes by hand, recording every batch it was given. */
function manualFlush<I>() {
  const batches: I[][] = [];
  const finish: Array<(results: string[]) => void> = [];
  const fail: Array<(error: unknown) => void> = [];
  const flush = (items: I[]) =>
    new Promise<string[]>((resolve, reject) => {
      batches.push(items);
      finish.push(resolve);
      fail.push(reject);
    });
  return { batches, finish, fail, flush };
}

/** Lets pending promise reactions and setImmediate callbacks run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

/** With two flushes under way, drain() resolves once both are finished, not after the first. */
async function expectDrainAfterBoth(commit: GroupCommit<string, string>, finish: Array<(results: string[]) => void>, results: [string, string]) {
  let drained = false;
  const draining = commit.drain().then(() => {
    drained = true;
  });
  finish[0]!([results[0]]);
  await settle();
  expect(drained).toBe(false);
  finish[1]!([results[1]]);
  await draining;
  expect(drained).toBe(true);
}

describe("createGroupCommit", () => {
  test("an item submitted to an idle group commit is flushed at once, alone", async () => {
    const { batches, finish, flush } = manualFlush<string>();
    const commit = createGroupCommit(flush, 100);
    const result = commit.submit("a");
    expect(batches).toEqual([["a"]]);
    finish[0]!(["A"]);
    expect(await result).toBe("A");
  });

  test("items submitted while a flush runs go out together in the next one, each getting its own result", async () => {
    const { batches, finish, flush } = manualFlush<string>();
    const commit = createGroupCommit(flush, 100);
    const first = commit.submit("a");
    const later = ["b", "c", "d"].map((item) => commit.submit(item));
    expect(batches).toEqual([["a"]]);

    finish[0]!(["A"]);
    await settle();
    expect(batches).toEqual([["a"], ["b", "c", "d"]]);
    finish[1]!(["B", "C", "D"]);
    expect(await first).toBe("A");
    expect(await Promise.all(later)).toEqual(["B", "C", "D"]);
  });

  test("no flush takes more than maxBatch items; the rest follow in order", async () => {
    const { batches, finish, flush } = manualFlush<number>();
    const commit = createGroupCommit(flush, 2);
    const results = [1, 2, 3, 4, 5, 6].map((item) => commit.submit(item));
    for (let i = 0; i < 4; i++) {
      const batch = batches[i]!;
      finish[i]!(batch.map((n) => `r${n}`));
      await settle();
    }
    expect(batches).toEqual([[1], [2, 3], [4, 5], [6]]);
    expect(await Promise.all(results)).toEqual(["r1", "r2", "r3", "r4", "r5", "r6"]);
  });

  test("a failed flush rejects the items of its batch only; the next batch still goes out", async () => {
    const { batches, finish, fail, flush } = manualFlush<string>();
    const commit = createGroupCommit(flush, 100);
    const first = commit.submit("a").then(
      () => "resolved",
      (error: unknown) => error,
    );
    const second = [commit.submit("b"), commit.submit("c")];
    const boom = new Error("database went away");
    fail[0]!(boom);
    await settle();
    expect(batches).toEqual([["a"], ["b", "c"]]);
    finish[1]!(["B", "C"]);
    expect(await first).toBe(boom);
    expect(await Promise.all(second)).toEqual(["B", "C"]);
  });

  test("a flush that returns too few or too many results fails its batch instead of handing out wrong ones", async () => {
    const flushes: Array<[string, (items: string[]) => string[]]> = [
      ["0 results for 1 items", () => []],
      ["2 results for 1 items", (items) => [...items, "extra"]],
    ];
    for (const [message, results] of flushes) {
      const commit = createGroupCommit(async (items: string[]) => results(items), 100);
      const outcome = await commit.submit("a").then(
        (value) => ({ value }),
        (error: unknown) => ({ error: String(error) }),
      );
      expect(outcome).toEqual({ error: expect.stringContaining(message) });
    }
  });

  test("the replies of one flush are handed out before the next flush starts", async () => {
    const events: string[] = [];
    const commit = createGroupCommit(async (items: string[]) => {
      events.push(`flush ${items.join(",")}`);
      return items;
    }, 100);
    const done = [commit.submit("a"), commit.submit("b")].map((p) => p.then((item) => events.push(`reply ${item}`)));
    await Promise.all(done);
    expect(events).toEqual(["flush a", "reply a", "flush b", "reply b"]);
  });

  test("drain resolves once everything submitted so far is flushed; an idle group commit starts again on the next submit", async () => {
    const { batches, finish, flush } = manualFlush<string>();
    const commit = createGroupCommit(flush, 100);
    void commit.submit("a");
    void commit.submit("b");
    await expectDrainAfterBoth(commit, finish, ["A", "B"]);
    await commit.drain();

    const again = commit.submit("c");
    expect(batches).toEqual([["a"], ["b"], ["c"]]);
    finish[2]!(["C"]);
    expect(await again).toBe("C");
  });

  describe("bounded by weight (items: sender:size)", () => {
    const weight = {
      keyOf: (item: string) => item.split(":")[0]!,
      weightOf: (item: string) => Number(item.split(":")[1]),
      max: 100,
    };

    /** Submits `first` alone (flushed at once), then the rest while it runs; returns every batch once all are flushed. */
    async function batchesOf(first: string, rest: string[], maxBatch = 10): Promise<string[][]> {
      const { batches, finish, flush } = manualFlush<string>();
      const commit = createGroupCommit(flush, maxBatch, weight);
      const all = [first, ...rest].map((item) => commit.submit(item));
      for (let i = 0; i < batches.length; i++) {
        finish[i]!(batches[i]!.map((x) => x.toUpperCase()));
        await settle();
      }
      expect(await Promise.all(all)).toEqual([first, ...rest].map((x) => x.toUpperCase()));
      return batches;
    }

    test("a batch stops short of the bound; another sender's small item behind a big one still joins it", async () => {
      const batches = await batchesOf("a:1", ["big:60", "big:60", "big:60", "small:1"]);
      expect(batches).toEqual([["a:1"], ["big:60", "small:1"], ["big:60"], ["big:60"]]);
    });

    test("each sender's items are flushed in the order submitted, even when a later one would fit", async () => {
      const batches = await batchesOf("a:1", ["x:90", "y:50", "x:5", "y:5", "z:5"]);
      // y:50 does not fit beside x:90: y is held back, so y:5 may not overtake it; x:5 and z:5 fit.
      expect(batches).toEqual([["a:1"], ["x:90", "x:5", "z:5"], ["y:50", "y:5"]]);
      for (const sender of ["x", "y"]) {
        const order = batches.flat().filter((item) => item.startsWith(`${sender}:`));
        expect(order).toEqual(["x:90", "y:50", "x:5", "y:5"].filter((item) => item.startsWith(`${sender}:`)));
      }
    });

    test("an item heavier than the bound goes alone rather than never", async () => {
      const batches = await batchesOf("a:1", ["huge:500", "b:1"]);
      expect(batches).toEqual([["a:1"], ["huge:500"], ["b:1"]]);
    });

    test("maxBatch still bounds the count", async () => {
      const batches = await batchesOf("a:1", ["b:1", "c:1", "d:1"], 2);
      expect(batches).toEqual([["a:1"], ["b:1", "c:1"], ["d:1"]]);
    });
  });

  describe("a second lane beside a heavy flush (items: sender:size; heavy from 50 of one sender)", () => {
    const weight = {
      keyOf: (item: string) => item.split(":")[0]!,
      weightOf: (item: string) => Number(item.split(":")[1]),
      max: 100,
      lanes: { max: 2, heavy: 50 },
    };

    test("another sender's item is flushed beside a heavy flush, not behind it", async () => {
      const { batches, finish, flush } = manualFlush<string>();
      const commit = createGroupCommit(flush, 10, weight);
      const big = commit.submit("big:90");
      const small = commit.submit("small:1");
      expect(batches).toEqual([["big:90"], ["small:1"]]);
      finish[1]!(["SMALL"]);
      expect(await small).toBe("SMALL");
      finish[0]!(["BIG"]);
      expect(await big).toBe("BIG");
    });

    test("beside a light flush, even one of many senders' items, the next waits", async () => {
      const { batches, finish, flush } = manualFlush<string>();
      const commit = createGroupCommit(flush, 10, weight);
      const first = commit.submit("a:40");
      const waiting = ["b:30", "c:30", "d:1"].map((item) => commit.submit(item));
      expect(batches).toEqual([["a:40"]]);
      finish[0]!(["A"]);
      await settle();
      // Three senders, 61 in all, none of them 50: still one flush at a time.
      expect(batches).toEqual([["a:40"], ["b:30", "c:30", "d:1"]]);
      const more = commit.submit("e:1");
      expect(batches.length).toBe(2);
      finish[1]!(["B", "C", "D"]);
      await settle();
      finish[2]!(["E"]);
      expect(await Promise.all([first, ...waiting, more])).toEqual(["A", "B", "C", "D", "E"]);
    });

    test("a sender is in one flush at a time, its items in the order submitted; after the heavy flush, one lane again", async () => {
      const { batches, finish, flush } = manualFlush<string>();
      const commit = createGroupCommit(flush, 10, weight);
      const items = ["x:90", "x:5", "y:1", "x:6", "z:1"];
      const all = items.map((item) => commit.submit(item));
      // x:5 may not join y's flush while x:90 is being flushed; z waits for a lane.
      expect(batches).toEqual([["x:90"], ["y:1"]]);
      finish[1]!(["Y:1"]);
      await settle();
      expect(batches).toEqual([["x:90"], ["y:1"], ["z:1"]]);
      finish[0]!(["X:90"]);
      await settle();
      // No heavy flush runs now: x's next batch waits for z's flush.
      expect(batches.length).toBe(3);
      finish[2]!(["Z:1"]);
      await settle();
      expect(batches).toEqual([["x:90"], ["y:1"], ["z:1"], ["x:5", "x:6"]]);
      finish[3]!(["X:5", "X:6"]);
      expect(await Promise.all(all)).toEqual(["X:90", "X:5", "Y:1", "X:6", "Z:1"]);
      await commit.drain();
    });

    test("drain waits for every lane", async () => {
      const { finish, flush } = manualFlush<string>();
      const commit = createGroupCommit(flush, 10, weight);
      void commit.submit("x:60");
      void commit.submit("y:1");
      await expectDrainAfterBoth(commit, finish, ["X", "Y"]);
    });
  });
  describe("two lanes for a backlog (items: sender:size; a backlog from 6 waiting)", () => {
    const weight = {
      keyOf: (item: string) => item.split(":")[0]!,
      weightOf: (item: string) => Number(item.split(":")[1]),
      max: 100,
      lanes: { max: 2, heavy: 1000, backlog: 6 },
    };
    const keysOf = (batch: string[]) => new Set(batch.map((item) => item.split(":")[0]));

    test("a backlog is split by sender into two flushes side by side, each sender's items in one of them, in order", async () => {
      const { batches, finish, flush } = manualFlush<string>();
      const commit = createGroupCommit(flush, 100, weight);
      const first = commit.submit("a:1");
      const items = ["s1:1", "s2:1", "s3:1", "s4:1", "s1:2", "s2:2", "s3:2", "s4:2"];
      const all = items.map((item) => commit.submit(item));
      expect(batches).toEqual([["a:1"]]);
      finish[0]!(["A"]);
      await settle();
      // Both flushes were taken before either finished.
      expect(batches.length).toBe(3);
      const [one, two] = [batches[1]!, batches[2]!];
      expect(one.length).toBeGreaterThan(0);
      expect(two.length).toBeGreaterThan(0);
      expect([...keysOf(one)].filter((key) => keysOf(two).has(key))).toEqual([]);
      expect([...one, ...two].sort()).toEqual([...items].sort());
      for (const batch of [one, two]) {
        for (const key of keysOf(batch)) expect(batch.filter((item) => item.startsWith(`${key}:`))).toEqual([`${key}:1`, `${key}:2`]);
      }
      finish[2]!(two.map((item) => item.toUpperCase()));
      finish[1]!(one.map((item) => item.toUpperCase()));
      expect(await Promise.all([first, ...all])).toEqual(["A", ...items.map((item) => item.toUpperCase())]);
      await commit.drain();
    });

    test("short of the backlog, one flush at a time takes every sender", async () => {
      const { batches, finish, flush } = manualFlush<string>();
      const commit = createGroupCommit(flush, 100, weight);
      const first = commit.submit("a:1");
      const items = ["s1:1", "s2:1", "s3:1", "s4:1", "s1:2"];
      const all = items.map((item) => commit.submit(item));
      finish[0]!(["A"]);
      await settle();
      expect(batches).toEqual([["a:1"], items]);
      finish[1]!(items.map((item) => item.toUpperCase()));
      expect(await Promise.all([first, ...all])).toEqual(["A", ...items.map((item) => item.toUpperCase())]);
    });
  });
});

/** An error as postgres.js raises it (code on the error) or as drizzle wraps it (code on its cause). */
const pgError = (code: string, wrapped = false) =>
  wrapped ? Object.assign(new Error("Failed query"), { cause: { code } }) : Object.assign(new Error(`pg ${code}`), { code });

describe("retryTransient", () => {
  test("a serialization failure or a deadlock is retried until the work succeeds", async () => {
    for (const failure of [pgError("40001"), pgError("40P01"), pgError("40001", true), pgError("40P01", true)]) {
      let calls = 0;
      const result = await retryTransient(async () => {
        calls++;
        if (calls < 3) throw failure;
        return "done";
      });
      expect({ code: failure.message, result, calls }).toEqual({ code: failure.message, result: "done", calls: 3 });
    }
  });

  test("gives up after the given attempts with the last error", async () => {
    let calls = 0;
    const failure = pgError("40P01");
    const outcome = await retryTransient(async () => {
      calls++;
      throw failure;
    }, 3).then(
      () => "resolved",
      (error: unknown) => error,
    );
    expect(outcome).toBe(failure);
    expect(calls).toBe(3);
  });

  test("any other error is thrown at once", async () => {
    for (const failure of [pgError("23505"), pgError("23505", true), new Error("no code"), Object.assign(new Error("odd"), { code: 40001 })]) {
      let calls = 0;
      const outcome = await retryTransient(async () => {
        calls++;
        throw failure;
      }).then(
        () => "resolved",
        (error: unknown) => error,
      );
      expect({ outcome, calls }).toEqual({ outcome: failure, calls: 1 });
    }
  });

  test("work that succeeds runs once", async () => {
    let calls = 0;
    expect(await retryTransient(async () => ++calls)).toBe(1);
    expect(calls).toBe(1);
  });
});
