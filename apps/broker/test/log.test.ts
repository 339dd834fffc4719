import { describe, expect, test } from "bun:test";
import { errorWithoutParams } from "../src/log.ts";

describe("log serializer", () => {
  test("a failed query's parameters (ciphertexts) never reach the log", () => {
    const cause = Object.assign(new Error("duplicate key value"), { code: "23505" });
    const error = Object.assign(
      new Error('Failed query: INSERT INTO messages VALUES ($1)\nparams: [{"ciphertext":"c2VjcmV0"}]', { cause }),
      { params: [{ ciphertext: "c2VjcmV0" }] },
    );
    const out = errorWithoutParams(error);
    expect(JSON.stringify(out)).not.toContain("c2VjcmV0");
    expect(out.message).toBe("Failed query: INSERT INTO messages VALUES ($1)");
    expect((out.cause as Record<string, unknown>).code).toBe("23505");
  });

  test("an invalid URL error's input (a URL with its password) never reaches the log", () => {
    let error: unknown;
    try {
      new URL("postgres://u:hunter2-password@db:notaport/x");
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(Error);
    expect(JSON.stringify(errorWithoutParams(error))).not.toContain("hunter2");
  });
});
