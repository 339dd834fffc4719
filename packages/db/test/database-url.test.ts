import { describe, expect, test } from "bun:test";
import { withoutSettings } from "../src/database-url.ts";

describe("withoutSettings", () => {
  test("takes the named parameters out of the query and keeps the others as they were", () => {
    expect(withoutSettings("postgres://u:p@db:5432/app?application_name=mine&sslmode=require&jit=on", ["application_name", "jit"])).toEqual({
      url: "postgres://u:p@db:5432/app?sslmode=require",
      removed: ["application_name", "jit"],
    });
  });

  test("drops the question mark when nothing is left, and keeps a host list and a fragment", () => {
    expect(withoutSettings("postgres://u@h1:5432,h2:5433/app?application_name=a%20b#x", ["application_name"])).toEqual({
      url: "postgres://u@h1:5432,h2:5433/app#x",
      removed: ["application_name"],
    });
  });

  test("leaves a URL without those parameters untouched, byte for byte", () => {
    for (const url of ["postgres://u@db/app", "postgres://u@db/app?options=-c%20x%3Dy&sslmode=disable", "postgres://u@db/app?"]) {
      expect(withoutSettings(url, ["application_name"])).toEqual({ url, removed: [] });
    }
  });
});
