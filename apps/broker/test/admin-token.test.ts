// The admin token a broker generates when ADMIN_TOKEN is not set (PROTOCOL.md
// §5): kept in DATA_DIR with mode 0600, its path logged, never the token.
import { describe, expect, test } from "bun:test";
import { embeddedBackend, spawnBroker } from "@switchboard/testkit";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";

describe("admin token without ADMIN_TOKEN", () => {
  test("is generated once into DATA_DIR/admin-token (0600), its path logged, and it works", async () => {
    const own = embeddedBackend({ withSchema: true });
    let proc = await spawnBroker(own.env);
    try {
      const path = join(own.dataDir ?? "", "admin-token");
      const logged = await proc.waitForLog("admin token generated");
      expect(logged.path).toBe(path);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      const token = readFileSync(path, "utf8").trim();
      expect(token).toMatch(/^[0-9a-f]{64}$/);
      expect(proc.stderrText()).not.toContain(token);

      const get = (t: string | null) =>
        fetch(`${proc.url}/v1/meshes`, { headers: t === null ? {} : { authorization: `Bearer ${t}` } });
      expect((await get(token)).status).toBe(200);
      expect((await get(null)).status).toBe(401);

      // A restart keeps the same token.
      expect(await proc.stop()).toBe(0);
      proc = await spawnBroker(own.env);
      expect((await proc.waitForLog("admin token loaded")).path).toBe(path);
      expect(proc.logs.some((l) => l.msg === "admin token generated")).toBe(false);
      expect(readFileSync(path, "utf8").trim()).toBe(token);
      expect((await get(token)).status).toBe(200);
    } finally {
      await proc.stop();
      await own.dispose();
    }
  });
});
