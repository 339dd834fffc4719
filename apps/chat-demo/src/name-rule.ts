// What the demo takes as a display name, one rule for the page's form and
// for the server's /token. The broker keeps names in Postgres text, which
// holds neither NUL nor an unpaired surrogate: a token naming one is refused
// at the hello, and the page would close for good and forget its key.

export const MAX_NAME_CHARS = 64;

/** What is wrong with a name (already trimmed); null for a good one. */
export function nameProblem(name: string): string | null {
  if (name === "") return "a name needs a letter or two";
  if (name.length > MAX_NAME_CHARS) return `a name has at most ${MAX_NAME_CHARS} characters`;
  if (name.includes("\u0000") || !name.isWellFormed()) return "a name cannot hold a NUL or a lone surrogate";
  return null;
}
