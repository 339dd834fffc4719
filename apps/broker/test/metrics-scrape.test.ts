import { afterEach, describe, expect, test } from "bun:test";
import v8 from "node:v8";
import { parsePrometheusText } from "@switchboard/testkit";
import { createMetrics } from "../src/metrics";

// Under Bun both calls walk the whole heap: tens of milliseconds for a
// broker's heap, during which the event loop moves nothing.
const HEAP_WALKS = ["getHeapSpaceStatistics", "getHeapStatistics"] as const;
const originals = HEAP_WALKS.map((name) => [name, v8[name]] as const);

afterEach(() => {
  for (const [name, original] of originals) Object.assign(v8, { [name]: original });
});

describe("a scrape of /metrics", () => {
  test("does not walk the heap", async () => {
    const { registry } = createMetrics();
    const walks: string[] = [];
    for (const [name, original] of originals) {
      Object.assign(v8, {
        [name]: (...args: never[]) => {
          walks.push(name);
          return (original as (...a: never[]) => unknown)(...args);
        },
      });
    }
    const families = parsePrometheusText(await registry.metrics());
    await registry.metrics();
    expect(walks).toEqual([]);
    // The process's memory stays visible, from the cheap process.memoryUsage().
    expect(families.get("nodejs_heap_size_used_bytes")?.samples[0]?.value).toBeGreaterThan(0);
    expect(families.get("process_resident_memory_bytes")?.samples[0]?.value).toBeGreaterThan(0);
  });
});
