// The status rules of PROTOCOL.md §2: every branch of decideStatus and
// initialStatus as pure functions, and the table of what each status may
// receive checked against the SQL generated from it, on a real database.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type Database } from "@switchboard/db";
import { prioritySchema, statusSchema, type Status, type StatusSource } from "@switchboard/protocol";
import { scratchDir } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { rmSync } from "node:fs";
import { receivable, receivesEveryPriority, URGENT } from "../src/store/queue/eligibility.ts";
import { decideStatus, initialStatus, RECEIVABLE, type CurrentStatus, type StatusSignal } from "../src/services/status/rules.ts";

const WINDOW = 2000;
const FRESH = 10;
const STALE = WINDOW + 10;
const STATUSES: Status[] = ["idle", "working", "dnd"];
const SOURCES: StatusSource[] = ["hook", "manual", "jsonl"];

const cur = (status: Status, source: StatusSource, ageMs: number): CurrentStatus => ({ status, source, ageMs });
const sig = (status: Status, source: StatusSource): StatusSignal => ({ status, source });

describe("decideStatus: dnd", () => {
  test("a non-manual signal never leaves dnd, however old the dnd is", () => {
    for (const source of ["hook", "jsonl"] as const) {
      for (const status of STATUSES) {
        for (const age of [0, FRESH, WINDOW, STALE, 1e12]) {
          for (const dndSource of SOURCES) {
            const seen = { source, status, age, dndSource, result: decideStatus(cur("dnd", dndSource, age), sig(status, source), WINDOW) };
            expect(seen).toEqual({ source, status, age, dndSource, result: null });
          }
        }
      }
    }
  });

  test("a manual signal leaves dnd, even a fresh one", () => {
    for (const status of STATUSES) {
      for (const age of [0, FRESH, STALE]) {
        expect(decideStatus(cur("dnd", "manual", age), sig(status, "manual"), WINDOW)).toEqual(sig(status, "manual"));
      }
    }
  });

  test("a manual dnd always applies, even over a fresh hook status", () => {
    for (const status of ["idle", "working"] as const) {
      for (const source of SOURCES) {
        for (const age of [0, FRESH, STALE]) {
          expect(decideStatus(cur(status, source, age), sig("dnd", "manual"), WINDOW)).toEqual(sig("dnd", "manual"));
        }
      }
    }
  });
});

describe("decideStatus: source ranks hook > manual > jsonl", () => {
  const lowerOverHigher: [StatusSource, StatusSource][] = [
    ["manual", "hook"],
    ["jsonl", "hook"],
    ["jsonl", "manual"],
  ];

  test("a lower-ranked source may not overwrite a fresh status of a higher-ranked one", () => {
    for (const [signalSource, currentSource] of lowerOverHigher) {
      for (const age of [0, FRESH, WINDOW - 1]) {
        for (const [from, to] of [
          ["working", "idle"],
          ["idle", "working"],
        ] as const) {
          const seen = { signalSource, currentSource, age, result: decideStatus(cur(from, currentSource, age), sig(to, signalSource), WINDOW) };
          expect(seen).toEqual({ signalSource, currentSource, age, result: null });
        }
      }
    }
  });

  test("once the window has passed, the lower-ranked source applies", () => {
    for (const [signalSource, currentSource] of lowerOverHigher) {
      for (const age of [WINDOW, STALE, 1e12]) {
        expect(decideStatus(cur("working", currentSource, age), sig("idle", signalSource), WINDOW)).toEqual(sig("idle", signalSource));
      }
    }
  });

  test("the same or a higher-ranked source applies at once, even over a fresh status", () => {
    const rank: Record<StatusSource, number> = { hook: 3, manual: 2, jsonl: 1 };
    for (const signalSource of SOURCES) {
      for (const currentSource of SOURCES.filter((s) => rank[s] <= rank[signalSource])) {
        for (const age of [0, FRESH]) {
          const result = decideStatus(cur("working", currentSource, age), sig("idle", signalSource), WINDOW);
          expect({ signalSource, currentSource, result }).toEqual({ signalSource, currentSource, result: sig("idle", signalSource) });
        }
      }
    }
  });

  test("a signal that repeats the current status still applies (it refreshes the source)", () => {
    expect(decideStatus(cur("working", "jsonl", FRESH), sig("working", "hook"), WINDOW)).toEqual(sig("working", "hook"));
    expect(decideStatus(cur("working", "hook", STALE), sig("working", "jsonl"), WINDOW)).toEqual(sig("working", "jsonl"));
  });

  test("the window is a parameter, not a constant", () => {
    expect(decideStatus(cur("working", "hook", 5000), sig("idle", "manual"), 10_000)).toBeNull();
    expect(decideStatus(cur("working", "hook", 5000), sig("idle", "manual"), 1000)).toEqual(sig("idle", "manual"));
  });
});

describe("initialStatus", () => {
  /** A hook signal kept ageMs ago. */
  const kept = (status: "idle" | "working", ageMs = 500) => ({ status, ageMs });

  test("a pending hook signal is taken as a fresh hook status", () => {
    expect(initialStatus(kept("working"), null)).toEqual({ status: "working", source: "hook", ageMs: 0 });
    expect(initialStatus(kept("idle"), null)).toEqual({ status: "idle", source: "hook", ageMs: 0 });
  });

  test("a reconnect keeps its session's dnd over anything, and its working or idle (with source and age) unless a hook signal waited", () => {
    const dnd = { status: "dnd", source: "manual", ageMs: 90_000 } as const;
    const working = { status: "working", source: "hook", ageMs: 1500 } as const;
    expect(initialStatus(null, dnd)).toEqual(dnd);
    expect(initialStatus(kept("idle"), dnd)).toEqual(dnd);
    expect(initialStatus(null, working)).toEqual(working);
    expect(initialStatus(kept("idle"), working)).toEqual({ status: "idle", source: "hook", ageMs: 0 });
    expect(initialStatus(null, { status: "idle", source: "hook", ageMs: 10 })).toEqual({ status: "idle", source: "hook", ageMs: 10 });
  });

  test("a status the session was given after the signal was kept wins over the signal", () => {
    const stopped = { status: "idle", source: "hook", ageMs: 200 } as const;
    expect(initialStatus(kept("working", 900), stopped)).toEqual(stopped);
    expect(initialStatus(kept("working", 900), { status: "working", source: "hook", ageMs: 100 })).toEqual({ status: "working", source: "hook", ageMs: 100 });
    // Kept after the status was set: the signal is the newer.
    expect(initialStatus(kept("working", 100), stopped)).toEqual({ status: "working", source: "hook", ageMs: 0 });
  });

  test("without one a presence starts idle by default, which any first signal overrides", () => {
    const start = initialStatus(null, null);
    expect(start).toEqual({ status: "idle", source: "manual", ageMs: null });
    // The default is stored as set at the epoch: past every fresh window.
    expect(decideStatus({ status: start.status, source: start.source, ageMs: Date.now() }, sig("working", "jsonl"), WINDOW)).toEqual(
      sig("working", "jsonl"),
    );
  });
});

describe("RECEIVABLE", () => {
  test("idle takes every priority; working and dnd take only now", () => {
    expect(RECEIVABLE).toEqual({ idle: ["now", "next", "low"], working: ["now"], dnd: ["now"] });
  });

  // The claims read a queue through one of two indexes by this split (claim.ts).
  test("a status takes every priority or the urgent one alone", () => {
    for (const priorities of Object.values(RECEIVABLE)) {
      if (priorities.length !== prioritySchema.options.length) expect(priorities).toEqual([URGENT]);
    }
  });

  describe("as SQL", () => {
    let dir: string;
    let db: Database;
    beforeAll(async () => {
      dir = scratchDir("eligibility");
      db = await connect({ dataDir: dir });
    });
    afterAll(async () => {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    });

    test("the fragment the claim filters with agrees with the table for every status and priority, and refuses unknown statuses", async () => {
      const statuses = [...statusSchema.options, "bogus"];
      for (const status of statuses) {
        for (const priority of prioritySchema.options) {
          const [row] = await db.rows<{ ok: boolean }>(sql`SELECT ${receivable(sql`${status}::text`, sql`${priority}::text`)} AS ok`);
          const expected = (RECEIVABLE as Record<string, readonly string[]>)[status]?.includes(priority) ?? false;
          expect({ status, priority, ok: row?.ok }).toEqual({ status, priority, ok: expected });
        }
      }
    });

    test("the fragment that splits the claims says which statuses take every priority", async () => {
      for (const status of statusSchema.options) {
        const [row] = await db.rows<{ every: boolean }>(sql`SELECT ${receivesEveryPriority(sql`${status}::text`)} AS every`);
        expect({ status, every: row?.every }).toEqual({ status, every: RECEIVABLE[status].length === prioritySchema.options.length });
      }
    });
  });
});
