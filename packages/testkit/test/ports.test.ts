// freePort() picks below the kernel's ephemeral range, which a bind on port 0
// or an outgoing connection can take from under a test between the pick and
// its use.
import { expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { freePort } from "../src/ports.ts";

const RANGE = "/proc/sys/net/ipv4/ip_local_port_range";

test.skipIf(!existsSync(RANGE))("free ports come from below the ephemeral range, and can be bound", async () => {
  const low = Number(readFileSync(RANGE, "utf8").trim().split(/\s+/)[0]);
  const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
  for (const port of ports) {
    expect(port).toBeGreaterThanOrEqual(10_000);
    expect(port).toBeLessThan(low);
  }
  for (const port of new Set(ports)) {
    const server = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    expect(server.port).toBe(port);
    server.stop(true);
  }
});
