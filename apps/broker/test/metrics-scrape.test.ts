import { afterEach, describe, expect, mock, spyOn, test } from "bun:test";
import fs from "node:fs";
import v8 from "node:v8";
import { parsePrometheusText } from "@switchboard/testkit";
import { createMetrics } from "../src/metrics";

afterEach(() => mock.restore());

describe("a scrape of /metrics", () => {
  // Calls a scrape must not make on the event loop, each of which grows with
  // what the broker holds. Under Bun both heap statistics walk the whole heap
  // (tens of milliseconds for a broker's); a synchronous listing of
  // /proc/self/fd takes about 12 ms with 10,000 sockets open.
  test("makes no call that blocks the event loop in proportion to the heap or the sockets", async () => {
    const { registry } = createMetrics();
    const spies = [spyOn(v8, "getHeapSpaceStatistics"), spyOn(v8, "getHeapStatistics"), spyOn(fs, "readdirSync")];
    const families = parsePrometheusText(await registry.metrics());
    await registry.metrics();
    for (const spy of spies) expect(spy).not.toHaveBeenCalled();
    // What those calls measured stays visible, read another way.
    expect(families.get("nodejs_heap_size_used_bytes")?.samples[0]?.value).toBeGreaterThan(0);
    expect(families.get("process_resident_memory_bytes")?.samples[0]?.value).toBeGreaterThan(0);
    if (process.platform === "linux") {
      expect(families.get("process_open_fds")?.type).toBe("gauge");
      expect(families.get("process_open_fds")?.samples[0]?.value).toBeGreaterThan(0);
    }
  });

  // prom-client's gauge exists on Linux alone, and so does this one.
  test.skipIf(process.platform !== "linux")("counts the process's open file descriptors", async () => {
    const { registry } = createMetrics();
    const read = async () => parsePrometheusText(await registry.metrics()).get("process_open_fds")?.samples[0]?.value ?? 0;
    const before = await read();
    const opened = Array.from({ length: 20 }, () => fs.openSync("/dev/null", "r"));
    try {
      expect(await read()).toBeGreaterThanOrEqual(before + 20);
    } finally {
      for (const fd of opened) fs.closeSync(fd);
    }
  });
});
