// The Grafana dashboard and the Prometheus alert rules read only metrics a
// live broker exports; the dashboard is one Grafana can provision; promtool
// accepts the rules, the Prometheus config and a live /metrics scrape; the
// labels and values they match are ones the broker's metrics carry; the
// metrics tables of docs/protocol.md describe what a live broker exports.
import { beforeAll, describe, expect, test } from "bun:test";
import { parsePrometheusText, useTestBroker } from "@switchboard/testkit";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { familyOf, metricNames } from "./support/promql.ts";

const DEPLOY = join(import.meta.dir, "..");
const read = (path: string) => readFileSync(join(DEPLOY, path), "utf8");

interface Target {
  refId?: string;
  expr?: string;
  datasource?: { uid?: string };
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
}
interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: { name: string }[] };
}
interface Rule {
  alert?: string;
  expr?: string;
  for?: string;
  annotations?: { summary?: string; runbook?: string };
}

const dashboard = JSON.parse(read("grafana/switchboard.json")) as Dashboard;
const panels = (dashboard.panels ?? []).filter((p) => p.type !== "row");
const dashboardExprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ""));
const rules = (parse(read("prometheus/alerts.yml")) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const provisioned = parse(read("grafana/provisioning/datasources/prometheus.yaml")) as { datasources: { uid: string }[] };
// Series Prometheus makes itself, not the broker.
const PROMETHEUS_OWN = new Set(["up"]);

const protocolMd = readFileSync(join(DEPLOY, "..", "docs", "protocol.md"), "utf8");
// The rows of docs/protocol.md's metrics tables: | `name{label,…}` | type | meaning |.
const documented = [...protocolMd.matchAll(/^\s*\| `(broker_\w+)(?:\{([\w,]+)\})?` \| (\w+) \|/gm)].map((m) => ({
  name: m[1]!,
  labels: (m[2] ?? "").split(",").filter((l) => l !== ""),
  type: m[3]!,
}));

const broker = useTestBroker();
let scrape: string;
let exported: Set<string>;

beforeAll(async () => {
  scrape = await (await fetch(`${broker.url}/metrics`)).text();
  exported = new Set(parsePrometheusText(scrape).keys());
});

// Labels Prometheus attaches to every scraped series, and a histogram's own.
const TARGET_LABELS = new Set(["job", "instance"]);

/** What `promtool test rules` says of a scenario of the alert rules (its unit-test file's content). */
function ruleTest(scenario: object): { code: number; text: string } {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-rules-"));
  try {
    writeFileSync(join(dir, "test.yml"), JSON.stringify(scenario));
    const out = Bun.spawnSync([promtool!, "test", "rules", join(dir, "test.yml")]);
    return { code: out.exitCode, text: out.stdout.toString() + out.stderr.toString() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Label matchers and groupings of each expression that a live broker's
 * metrics do not carry: a label the metric lacks, or a value (=, !=) it never
 * shows (every label value the broker has is present from zero).
 */
function unknownLabels(exprs: string[]): string[] {
  const families = parsePrometheusText(scrape);
  const labelsOf = (name: string) => {
    const family = familyOf(name, exported);
    const samples = family === null ? [] : (families.get(family)?.samples ?? []);
    const values = new Map<string, Set<string>>();
    for (const sample of samples) for (const [k, v] of Object.entries(sample.labels)) values.set(k, (values.get(k) ?? new Set()).add(v));
    return values;
  };
  return exprs.flatMap((expr) => {
    const unknown: string[] = [];
    const read = new Map<string, Map<string, Set<string>>>();
    for (const [, name, matchers] of expr.matchAll(/([a-zA-Z_:][\w:]*)\{([^}]*)\}/g)) {
      const labels = labelsOf(name!);
      read.set(name!, labels);
      for (const [, label, op, value] of matchers!.matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
        if (TARGET_LABELS.has(label!) || PROMETHEUS_OWN.has(name!)) continue;
        if (!labels.has(label!) || ((op === "=" || op === "!=") && !labels.get(label!)!.has(value!))) unknown.push(`${name}{${label}${op}"${value}"} in ${expr}`);
      }
    }
    for (const name of metricNames(expr)) if (!read.has(name)) read.set(name, labelsOf(name));
    for (const [, list] of expr.matchAll(/\bby\s*\(([^)]*)\)/g)) {
      for (const label of list!.split(",").map((l) => l.trim())) {
        if (TARGET_LABELS.has(label) || [...read.values()].some((labels) => labels.has(label))) continue;
        unknown.push(`by (${label}) in ${expr}`);
      }
    }
    return unknown;
  });
}

function notExported(exprs: string[]): string[] {
  return exprs
    .flatMap(metricNames)
    .filter((name) => !PROMETHEUS_OWN.has(name) && familyOf(name, exported) === null);
}

describe("metric names in PromQL", () => {
  test("functions, aggregations, keywords, labels, ranges and variables are not metrics", () => {
    expect(metricNames('sum(up{job="x"}) == 0 or absent(up{job="x"})')).toEqual(["up"]);
    expect(
      metricNames('histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{instance=~"$instance"}[$__rate_interval])))'),
    ).toEqual(["a_seconds_bucket"]);
    expect(metricNames("sum(rate(a_total[5m])) > 0.05 * sum(rate(b_total[5m] offset 1h)) unless c")).toEqual([
      "a_total",
      "b_total",
      "c",
    ]);
  });

  test("a histogram's series belong to its family", () => {
    const families = new Set(["a_seconds"]);
    expect(["a_seconds_bucket", "a_seconds_count", "a_seconds", "b_bucket"].map((n) => familyOf(n, families))).toEqual([
      "a_seconds",
      "a_seconds",
      "a_seconds",
      null,
    ]);
  });
});

describe("Grafana dashboard", () => {
  test("is a dashboard Grafana can provision: ids, layout, data source, queries", () => {
    expect(dashboard.uid).toBe("switchboard");
    expect(dashboard.title).toBe("Switchboard");
    expect(typeof dashboard.schemaVersion).toBe("number");
    const ids = (dashboard.panels ?? []).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels ?? []) {
      const grid = panel.gridPos!;
      expect(grid.x >= 0 && grid.w > 0 && grid.h > 0 && grid.x + grid.w <= 24).toBe(true);
    }
    const uids = new Set(provisioned.datasources.map((d) => d.uid));
    const variables = new Set((dashboard.templating?.list ?? []).map((v) => v.name));
    expect(panels.length).toBeGreaterThan(0);
    for (const panel of panels) {
      expect(uids.has(panel.datasource?.uid ?? "")).toBe(true);
      const targets = panel.targets ?? [];
      expect(targets.length).toBeGreaterThan(0);
      expect(new Set(targets.map((t) => t.refId)).size).toBe(targets.length);
      for (const target of targets) {
        expect(target.expr?.trim()).toBeTruthy();
        // $__… are Grafana's own; any other variable must be defined.
        for (const [, name] of target.expr!.matchAll(/\$(\w+)/g)) {
          if (!name!.startsWith("__")) expect(variables.has(name!)).toBe(true);
        }
      }
    }
  });

  test("every metric it queries is exported by a live broker", () => {
    expect(notExported(dashboardExprs)).toEqual([]);
  });

  test("every label it matches or groups by, and every value it matches, is one a live broker's metrics carry", () => {
    expect(unknownLabels(dashboardExprs)).toEqual([]);
  });

  test("charts what an operator watches, per instance", () => {
    const read = new Set(dashboardExprs.flatMap(metricNames).map((n) => familyOf(n, exported) ?? n));
    for (const name of [
      "up",
      "broker_connections_active",
      "broker_messages_routed_total",
      "broker_queue_depth",
      "broker_send_commit_seconds",
      "broker_push_latency_seconds",
      "broker_hook_requests_total",
      "broker_hook_requests_rate_limited_total",
      "broker_db_healthy",
      "broker_redeliveries_total",
    ]) {
      expect(read.has(name)).toBe(true);
    }
    expect(dashboardExprs.some((e) => e.includes("by (priority)"))).toBe(true);
    expect(dashboardExprs.filter((e) => e.includes('instance=~"$instance"')).length).toBeGreaterThan(panels.length / 2);
  });
});

describe("Prometheus alert rules", () => {
  test("each has a summary and a runbook line", () => {
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) {
      expect(rule.alert).toMatch(/^Switchboard[A-Z]\w+$/);
      expect(rule.annotations?.summary?.trim()).toBeTruthy();
      expect(rule.annotations?.runbook?.trim()).toBeTruthy();
    }
  });

  test("the contract's alerts are there with its thresholds", () => {
    const byExpr = (pattern: RegExp) => rules.find((r) => pattern.test(r.expr ?? ""));
    expect(byExpr(/^broker_db_healthy == 0$/)?.for).toBe("60s");
    expect(byExpr(/broker_queue_depth\) > 10000$/)).toBeDefined();
    expect(byExpr(/broker_connections_rejected_total\{reason="capacity"\}/)).toBeDefined();
  });

  test("every metric they read is exported by a live broker", () => {
    expect(notExported(rules.map((r) => r.expr ?? ""))).toEqual([]);
  });

  test("every label they match or group by, and every value they match, is one a live broker's metrics carry", () => {
    expect(unknownLabels(rules.map((r) => r.expr ?? ""))).toEqual([]);
  });

  test("every metric a summary or runbook names is exported by a live broker", () => {
    const named = rules.flatMap((r) => [...`${r.annotations?.summary} ${r.annotations?.runbook}`.matchAll(/\bbroker_\w+/g)].map((m) => m[0]));
    expect(named.length).toBeGreaterThan(0);
    expect(named.filter((name) => familyOf(name, exported) === null)).toEqual([]);
  });
});

describe("docs/protocol.md's metrics tables", () => {
  test("every broker metric a live broker exports has a row, and every row is exported with its type and labels", () => {
    const families = parsePrometheusText(scrape);
    const rows = new Map(documented.map((d) => [d.name, d]));
    expect(documented.length).toBeGreaterThan(15);
    expect([...families.keys()].filter((name) => name.startsWith("broker_") && !rows.has(name))).toEqual([]);
    const shown = documented.map(({ name }) => {
      const family = families.get(name);
      const samples = (family?.samples ?? []).filter((s) => !s.name.endsWith("_bucket"));
      return { name, type: family?.type, labels: [...new Set(samples.flatMap((s) => Object.keys(s.labels)))].sort() };
    });
    expect(shown).toEqual(documented.map(({ name, type, labels }) => ({ name, type, labels: [...labels].sort() })));
  });
});

const promtool = Bun.which("promtool");
if (!promtool && process.env.CI) throw new Error("CI must provide promtool (Debian's prometheus package)");

describe.skipIf(!promtool)("promtool", () => {
  const check = (args: string[], stdin?: string) => {
    const out = Bun.spawnSync([promtool!, "check", ...args], { cwd: DEPLOY, stdin: stdin === undefined ? "ignore" : Buffer.from(stdin) });
    return { code: out.exitCode, text: out.stdout.toString() + out.stderr.toString() };
  };

  test("check rules: the alert file is clean", () => {
    const { code, text } = check(["rules", "prometheus/alerts.yml"]);
    expect(text).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(code).toBe(0);
  });

  test("check config: the scrape config and its rule file are clean", () => {
    const { code, text } = check(["config", "prometheus/prometheus.yml"]);
    expect(text).toContain("is valid prometheus config file syntax");
    expect(code).toBe(0);
  });

  // The gauge is 1 for 10 s after each refused write: refusals 20 s apart made
  // it fall back between them, and an alert on the gauge alone never fired.
  test("test rules: SwitchboardDatabaseFull fires for writes refused now and then, and clears 5 min after the last", () => {
    const rule = rules.find((r) => r.alert === "SwitchboardDatabaseFull")!;
    const labels = { instance: "broker-1:7900", job: "switchboard" };
    // Every 5 s for 5 minutes: a refusal every 20 s (two samples at 1), then 10 minutes of none.
    const values = [..."1 1 0 0 ".repeat(15).trim().split(" "), ...Array.from({ length: 120 }, () => "0")].join(" ");
    const firing = {
      exp_labels: { ...labels, severity: "page" },
      exp_annotations: { summary: rule.annotations!.summary!.replace("{{ $labels.instance }}", labels.instance), runbook: rule.annotations!.runbook! },
    };
    const scenario = {
      rule_files: [join(DEPLOY, "prometheus", "alerts.yml")],
      evaluation_interval: "5s",
      tests: [
        {
          interval: "5s",
          input_series: [{ series: `broker_db_full{instance="${labels.instance}",job="${labels.job}"}`, values }],
          alert_rule_test: [
            { eval_time: "2m", alertname: "SwitchboardDatabaseFull", exp_alerts: [firing] },
            { eval_time: "4m50s", alertname: "SwitchboardDatabaseFull", exp_alerts: [firing] },
            { eval_time: "11m", alertname: "SwitchboardDatabaseFull", exp_alerts: [] },
          ],
        },
      ],
    };
    expect(ruleTest(scenario)).toEqual({ code: 0, text: expect.stringContaining("SUCCESS") });
  });

  // The ping holds the gauge (once a second), so the rule reads it as it is.
  test("test rules: SwitchboardDatabaseReadOnly fires after a minute read-only, and clears once writable", () => {
    const rule = rules.find((r) => r.alert === "SwitchboardDatabaseReadOnly")!;
    const labels = { instance: "broker-1:7900", job: "switchboard" };
    // Every 15 s: writable for a minute, read-only for three (from 1m), writable after (from 4m).
    const values = ["0x3", "1x11", "0x20"].join(" ");
    const firing = {
      exp_labels: { ...labels, severity: "page" },
      exp_annotations: { summary: rule.annotations!.summary!.replace("{{ $labels.instance }}", labels.instance), runbook: rule.annotations!.runbook! },
    };
    const scenario = {
      rule_files: [join(DEPLOY, "prometheus", "alerts.yml")],
      evaluation_interval: "15s",
      tests: [
        {
          interval: "15s",
          input_series: [{ series: `broker_db_read_only{instance="${labels.instance}",job="${labels.job}"}`, values }],
          alert_rule_test: [
            { eval_time: "1m45s", alertname: "SwitchboardDatabaseReadOnly", exp_alerts: [] },
            { eval_time: "2m15s", alertname: "SwitchboardDatabaseReadOnly", exp_alerts: [firing] },
            { eval_time: "3m45s", alertname: "SwitchboardDatabaseReadOnly", exp_alerts: [firing] },
            { eval_time: "4m15s", alertname: "SwitchboardDatabaseReadOnly", exp_alerts: [] },
          ],
        },
      ],
    };
    expect(ruleTest(scenario)).toEqual({ code: 0, text: expect.stringContaining("SUCCESS") });
  });

  test("check metrics: a live /metrics scrape lints clean", () => {
    expect(check(["metrics"], scrape)).toEqual({ code: 0, text: "" });
  });
});
