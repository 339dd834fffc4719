// .dockerignore as Docker reads it: one pattern a line relative to the
// context root, `#` comments, `!` re-includes, `*` within a path segment, `**`
// across segments; a pattern that matches a directory excludes all under it,
// and the last matching line decides.
interface Rule {
  glob: Bun.Glob;
  exclude: boolean;
}

function clean(pattern: string): string {
  return pattern.replace(/^(\.\/|\/)+/, "").replace(/\/+$/, "");
}

export class DockerIgnore {
  private readonly rules: Rule[];

  constructor(text: string) {
    this.rules = text
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"))
      .map((line) => {
        const exclude = !line.startsWith("!");
        return { glob: new Bun.Glob(clean(exclude ? line : line.slice(1))), exclude };
      });
  }

  /** Whether a path (relative to the context, `/`-separated) stays out of the build context. */
  excludes(path: string): boolean {
    const parts = clean(path).split("/");
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
    let excluded = false;
    for (const rule of this.rules) {
      if (prefixes.some((prefix) => rule.glob.match(prefix))) excluded = rule.exclude;
    }
    return excluded;
  }
}
