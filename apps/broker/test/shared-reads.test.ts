// SharedReads (services/shared-reads.ts): reads of one key asked for together
// are made once, and nobody is handed a read begun before it asked.
import { expect, test } from "bun:test";
import { SharedReads } from "../src/services/shared-reads.ts";

/** Reads whose answers the test gives, one at a time, in the order they began: the nth read answers n. */
function controlledReads() {
  const begun: Array<{ key: string; answer: (fail?: Error) => void }> = [];
  const reads = new SharedReads<string, number>(
    (key) =>
      new Promise<number>((resolve, reject) => {
        const n = begun.length + 1;
        begun.push({ key, answer: (fail) => (fail ? reject(fail) : resolve(n)) });
      }),
  );
  return { reads, begun };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

test("those who ask while a read is under way share the next one, begun after it; at most one waits per key", async () => {
  const { reads, begun } = controlledReads();
  const first = reads.get("mesh");
  const later = Array.from({ length: 100 }, () => reads.get("mesh"));
  expect(begun.length).toBe(1);
  begun[0]!.answer();
  expect(await first).toBe(1);
  await tick();
  // The hundred share one read, begun once the first ended.
  expect(begun.length).toBe(2);
  begun[1]!.answer();
  expect(new Set(await Promise.all(later))).toEqual(new Set([2]));
  // Nothing under way: the next asks at once.
  const fresh = reads.get("mesh");
  expect(begun.length).toBe(3);
  begun[2]!.answer();
  expect(await fresh).toBe(3);
});

test("keys do not wait for each other", async () => {
  const { reads, begun } = controlledReads();
  const a = reads.get("a");
  const b = reads.get("b");
  expect(begun.map((r) => r.key)).toEqual(["a", "b"]);
  begun[1]!.answer();
  expect(await b).toBe(2);
  begun[0]!.answer();
  expect(await a).toBe(1);
});

test("a failed read fails those who shared it, and the next ask reads again", async () => {
  const { reads, begun } = controlledReads();
  const first = reads.get("mesh");
  const shared = [reads.get("mesh"), reads.get("mesh")];
  begun[0]!.answer();
  await first;
  await tick();
  begun[1]!.answer(new Error("connection lost"));
  for (const p of shared) expect(await p.catch((error: Error) => error.message)).toBe("connection lost");
  const again = reads.get("mesh");
  expect(begun.length).toBe(3);
  begun[2]!.answer();
  expect(await again).toBe(3);
});
