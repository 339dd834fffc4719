// The metric names a PromQL expression reads. Strings, label matchers, range
// selectors, grouping label lists, Grafana variables and offsets are set
// aside; what is left that is a name and not a function call, an aggregation
// or a keyword is a metric.
const KEYWORDS = new Set(["and", "or", "unless", "bool", "inf", "nan"]);

export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, " ")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\$\{?\w+\}?/g, " ")
    .replace(/\boffset\s+-?\w+/g, " ");
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?/g)) {
    if (m[2] === undefined && !KEYWORDS.has(m[1]!.toLowerCase())) names.add(m[1]!);
  }
  return [...names];
}

const SERIES_SUFFIXES = ["_bucket", "_sum", "_count"];

/** The family a series belongs to: a histogram's _bucket, _sum and _count are its own name's. */
export function familyOf(name: string, families: ReadonlySet<string>): string | null {
  if (families.has(name)) return name;
  const suffix = SERIES_SUFFIXES.find((s) => name.endsWith(s) && families.has(name.slice(0, -s.length)));
  return suffix ? name.slice(0, -suffix.length) : null;
}
