// The README's configuration tables against the schema the broker parses
// its environment with: every variable has a row, every default written
// there is the one the broker takes, and every range written there is the
// one it enforces.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { configSchema } from "../src/config.ts";

const readme = await Bun.file(join(import.meta.dir, "..", "..", "..", "README.md")).text();

/** The README's configuration rows: variable → [default cell, meaning cell]. */
const rows = new Map(
  [...readme.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \| ([^|]*) \| (.*) \|$/gm)].map((m) => [m[1]!, [m[2]!.trim(), m[3]!]] as const),
);

const defaults: Record<string, unknown> = configSchema.parse({});
const variables = Object.keys(configSchema.shape);

// The backoff's bounds are each checked with the other as far out as it goes (the minimum may not exceed the maximum).
const apart = { WEBHOOK_BACKOFF_MIN_MS: "10", WEBHOOK_BACKOFF_MAX_MS: "86400000" };
const accepts = (variable: string, value: number) => configSchema.safeParse({ ...apart, [variable]: String(value) }).success;
const RANGE = /From (\d+) to (\d+)\./;

describe("README configuration tables", () => {
  test("have a row for every variable the broker reads", () => {
    expect(variables.filter((v) => !rows.has(v))).toEqual([]);
  });

  test("state the defaults the broker takes", () => {
    const stated = variables
      .filter((v) => ["number", "string", "boolean"].includes(typeof defaults[v]))
      .map((v) => [v, rows.get(v)?.[0]]);
    expect(stated).toEqual(stated.map(([v]) => [v, `\`${String(defaults[v as string])}\``]));
  });

  test("state the ranges the broker enforces", () => {
    const ranged = [...rows].flatMap(([variable, [, meaning]]) => {
      const range = RANGE.exec(meaning);
      return range ? [{ variable, min: Number(range[1]), max: Number(range[2]) }] : [];
    });
    expect(ranged.length).toBeGreaterThan(10);
    const enforced = ranged.map(({ variable, min, max }) => ({
      variable,
      min: accepts(variable, min) && !accepts(variable, min - 1),
      max: accepts(variable, max) && !accepts(variable, max + 1),
    }));
    expect(enforced).toEqual(ranged.map(({ variable }) => ({ variable, min: true, max: true })));
  });

  // The README says "Numbers are whole numbers, from 1 up unless a range is given".
  test("a number with no range stated takes whole numbers from 1 up", () => {
    const parsedFive = (v: string): Record<string, unknown> => configSchema.safeParse({ ...apart, [v]: "5" }).data ?? {};
    const numeric = variables.filter((v) => typeof parsedFive(v)[v] === "number");
    expect(numeric.length).toBeGreaterThan(20);
    const unstated = numeric.filter((v) => !RANGE.test(rows.get(v)?.[1] ?? ""));
    const fromOne = unstated.map((v) => ({ variable: v, fromOne: accepts(v, 1) && !accepts(v, 0) && accepts(v, 2_147_483_647) }));
    expect(fromOne).toEqual(unstated.map((v) => ({ variable: v, fromOne: true })));
  });
});
