// What /health/ready says once the instance serves, from the states it reads:
// the database's, then the descriptors'. The flood in descriptors.test.ts
// cannot hold the instance at its ceiling long enough to read it there (the
// sockets it refuses close before the next count), so the order is read here.
import { describe, expect, test } from "bun:test";
import type { DbState } from "../src/services/db-health.ts";
import { Readiness } from "../src/services/readiness.ts";

describe("readiness", () => {
  test("ready; descriptors_short while short of descriptors; the database's state first; draining over both", () => {
    const db: { state: DbState } = { state: "up" };
    const descriptors = { short: false };
    const readiness = new Readiness();
    expect(readiness.status).toBe("migrating");
    readiness.serving(db, descriptors);
    expect(readiness.status).toBe("ready");
    descriptors.short = true;
    expect(readiness.status).toBe("descriptors_short");
    db.state = "down";
    expect(readiness.status).toBe("db_down");
    db.state = "up";
    descriptors.short = false;
    expect(readiness.status).toBe("ready");
    readiness.draining();
    descriptors.short = true;
    expect(readiness.status).toBe("draining");
  });

  test("without a count of descriptors (not Linux), only the database counts", () => {
    const readiness = new Readiness();
    readiness.serving({ state: "up" }, null);
    expect(readiness.status).toBe("ready");
  });
});
