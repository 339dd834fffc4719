// The refusal text every edge gives for input its schema did not take.
import { expect, test } from "bun:test";
import { z } from "zod";
import { httpSendBody, issueText } from "../src/index.ts";

const textOf = (schema: z.ZodType, input: unknown, whole = "body") => {
  const parsed = schema.safeParse(input);
  if (parsed.success) throw new Error("the input was taken");
  return issueText(parsed.error, input, whole);
};

test("a missing field is said as required; a field of the wrong kind keeps zod's words; each field at fault is named", () => {
  expect(textOf(httpSendBody, { targetSpec: "*", ciphertext: 7 })).toBe("nonce: required; ciphertext: Invalid input: expected string, received number");
  // A field present as null is there, of the wrong kind: not "required".
  expect(textOf(z.object({ a: z.object({ b: z.string() }) }), { a: { b: null } })).toBe("a.b: Invalid input: expected string, received null");
  expect(textOf(z.object({ a: z.object({ b: z.string() }) }), { a: {} })).toBe("a.b: required");
  expect(textOf(z.object({ list: z.array(z.string()) }), { list: ["x", 1] })).toBe("list.1: Invalid input: expected string, received number");
});

test("an issue with the input itself is named by the input's name", () => {
  expect(textOf(httpSendBody, null)).toBe("body: Invalid input: expected object, received null");
  expect(textOf(z.object({}).strict(), { extra: 1 }, "frame")).toBe('frame: Unrecognized key: "extra"');
});

test("past five issues the rest are counted, so the refusal stays one line", () => {
  const seven = z.object(Object.fromEntries("abcdefg".split("").map((k) => [k, z.string()])));
  expect(textOf(seven, {})).toBe("a: required; b: required; c: required; d: required; e: required; and 2 more");
});
