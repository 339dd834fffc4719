// The text of a refusal for input a schema did not take, the same from every
// edge (frames, HTTP bodies, tool arguments). zod says a missing field as
// "Invalid input: expected string, received undefined"; "required" says it
// plainly. Each field at fault is named, so a caller fixes them in one go.
import type { z } from "zod";

/** More issues than this are counted, not listed: the refusal stays one readable line. */
const MAX_LISTED = 5;

/** "path: what is wrong" for each issue, "; "-joined; `whole` names the input itself (an issue at no path). */
export function issueText(error: z.ZodError, input: unknown, whole: string): string {
  const listed = error.issues.slice(0, MAX_LISTED).map((issue) => {
    const at = issue.path.length > 0 ? issue.path.map(String).join(".") : whole;
    const missing = issue.code === "invalid_type" && issue.path.length > 0 && valueAt(input, issue.path) === undefined;
    return `${at}: ${missing ? "required" : issue.message}`;
  });
  const more = error.issues.length - listed.length;
  return more > 0 ? `${listed.join("; ")}; and ${more} more` : listed.join("; ") || `${whole}: invalid`;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}
