// A strict reader of the Prometheus text exposition format (0.0.4): every
// line must be a HELP, a TYPE or a sample of a declared family, or it throws.
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  type: string;
  help: string;
  samples: Sample[];
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const SAMPLE = new RegExp(`^(${NAME})(\\{(.*)\\})? (\\S+)( -?\\d+)?$`);
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
const SUFFIXES = ["_bucket", "_sum", "_count", "_total", "_created", "_info"];

// Prometheus reads values with Go's ParseFloat, which takes Inf and NaN in
// any letter case (prom-client writes a NaN gauge as "Nan").
function parseValue(raw: string): number {
  if (/^\+?inf$/i.test(raw)) return Infinity;
  if (/^-inf$/i.test(raw)) return -Infinity;
  if (/^nan$/i.test(raw)) return NaN;
  const value = Number(raw);
  if (Number.isNaN(value)) throw new Error(`bad sample value ${raw}`);
  return value;
}

function parseLabels(raw: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (!raw) return labels;
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < raw.length) {
    const m = LABEL.exec(raw);
    if (!m) throw new Error(`bad labels {${raw}}`);
    labels[m[1]!] = m[2]!;
  }
  return labels;
}

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { type: "untyped", help: "", samples: [] }));
    return f;
  };
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = line.match(new RegExp(`^# (HELP|TYPE) (${NAME}) ?(.*)$`));
    if (meta) {
      const f = family(meta[2]!);
      if (meta[1] === "TYPE") {
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(meta[3]!)) {
          throw new Error(`bad TYPE line: ${line}`);
        }
        f.type = meta[3]!;
      } else f.help = meta[3]!;
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = line.match(SAMPLE);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const name = m[1]!;
    const owner = families.has(name)
      ? name
      : SUFFIXES.map((s) => (name.endsWith(s) ? name.slice(0, -s.length) : "")).find((n) => n && families.has(n));
    if (!owner) throw new Error(`sample of an undeclared family: ${line}`);
    family(owner).samples.push({ name, labels: parseLabels(m[3]), value: parseValue(m[4]!) });
  }
  return families;
}

/** The value of an unlabelled series (a gauge) on a broker's /metrics now; undefined when it has none. */
export async function gaugeOf(baseUrl: string, name: string): Promise<number | undefined> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parsePrometheusText(await res.text()).get(name)?.samples.find((s) => Object.keys(s.labels).length === 0)?.value;
}
