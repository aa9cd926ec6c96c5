/**
 * The monitoring artifacts in deploy/monitoring, checked by Prometheus's own tool (Debian's
 * `prometheus` package, installed by scripts/setup.sh; the test fails without it): the rules
 * parse (`promtool check rules`) and each alert fires exactly when it should (`promtool test
 * rules` over rules.test.yaml). The Operator's PrometheusRule and the chart's template carry the
 * same expressions; the dashboard and the rules query only series vipd exports.
 */

import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { METALLB_METRIC_NAMES } from "../../src/api/metallb-metrics.ts";
import { API_METRIC_NAMES } from "../../src/api/metrics.ts";

const ROOT = join(import.meta.dir, "../..");
const MON = join(ROOT, "deploy/monitoring");
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");

type Rule = { alert: string; expr: string; for?: string; labels?: Record<string, string> };
const rules = (parse(read("deploy/monitoring/rules.yaml")) as { groups: { rules: Rule[] }[] }).groups.flatMap(
  (g) => g.rules,
);

function promtool(...args: string[]) {
  const r = Bun.spawnSync(["promtool", ...args], { cwd: MON, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: `${r.stdout.toString()}${r.stderr.toString()}` };
}

describe("promtool", () => {
  test("check rules: rules.yaml parses", () => {
    const r = promtool("check", "rules", "rules.yaml");
    expect(r.out).toContain("SUCCESS: 7 rules found");
    expect(r.code).toBe(0);
  });

  test("test rules: every alert fires when it should and waits for its `for`", () => {
    const r = promtool("test", "rules", "rules.test.yaml");
    expect(r.out).toContain("SUCCESS");
    expect(r.code).toBe(0);
  });

  test("MetalLB's alert names, all of them tested", () => {
    expect(rules.map((r) => r.alert)).toEqual([
      "MetalLBStaleConfig",
      "MetalLBConfigNotLoaded",
      "MetalLBAddressPoolExhausted",
      "MetalLBAddressPoolUsage75Percent",
      "MetalLBAddressPoolUsage85Percent",
      "MetalLBAddressPoolUsage95Percent",
      "MetalLBBGPSessionDown",
    ]);
    const tested = read("deploy/monitoring/rules.test.yaml");
    for (const r of rules) expect(tested).toContain(`alertname: ${r.alert}`);
  });
});

describe("one set of rules everywhere", () => {
  test("the Operator's PrometheusRule holds exactly rules.yaml's groups", () => {
    const obj = parse(read("deploy/monitoring/prometheusrule.yaml")) as {
      kind: string;
      spec: { groups: unknown };
    };
    expect(obj.kind).toBe("PrometheusRule");
    expect(obj.spec.groups).toEqual(parse(read("deploy/monitoring/rules.yaml")).groups);
  });

  test("the chart's template has rules.yaml's expressions (its thresholds come from values)", () => {
    const tpl = read("deploy/helm/vipd/templates/prometheusrule.yaml");
    const exprs = [...tpl.matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1]!);
    const values = parse(read("deploy/helm/vipd/values.yaml")) as {
      prometheus: { prometheusRule: { addressPoolUsage: { thresholds: { percent: number }[] } } };
    };
    const percents = values.prometheus.prometheusRule.addressPoolUsage.thresholds.map((t) => t.percent);
    const rendered = exprs.flatMap((e) =>
      e.includes("{{ .percent }}") ? percents.map((p) => e.replace("{{ .percent }}", String(p))) : [e],
    );
    expect(rendered.sort()).toEqual(rules.map((r) => r.expr).sort());
  });
});

/** Metric names in a PromQL expression (identifiers followed by {, [, ) or space, not functions). */
function metricNames(expr: string): string[] {
  const keywords = new Set(["by", "on", "or", "and", "unless", "without", "ignoring", "bool"]);
  return [...expr.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)]
    .map((m) => m[1]!)
    .filter((n) => n.includes("_") && !keywords.has(n) && !n.startsWith("__") && n === n.toLowerCase());
}

function vipdNamesInSource(): Set<string> {
  const names = new Set<string>(API_METRIC_NAMES);
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith(".ts"))
        for (const m of readFileSync(p, "utf8").matchAll(/"(vipd_[a-z0-9_]+)"/g)) names.add(m[1]!);
    }
  };
  walk(join(ROOT, "src"));
  return names;
}

describe("only series vipd exports", () => {
  const known = new Set<string>([...METALLB_METRIC_NAMES, ...vipdNamesInSource(), "ALERTS"]);
  const labels = new Set(["instance", "job", "pool", "peer", "reason", "alertstate", "alertname"]);

  test("the rules", () => {
    for (const r of rules)
      for (const n of metricNames(r.expr))
        expect({ alert: r.alert, n, known: known.has(n) }).toEqual({ alert: r.alert, n, known: true });
  });

  test("the Grafana dashboard (and the chart's copy is the same file)", () => {
    const text = read("deploy/monitoring/grafana-dashboard.json");
    expect(read("deploy/helm/vipd/dashboards/vipd.json")).toBe(text);
    const d = JSON.parse(text) as { panels: { title: string; targets?: { expr: string }[] }[] };
    const exprs = d.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
    expect(exprs.length).toBeGreaterThan(10);
    for (const { panel, expr } of exprs)
      for (const n of metricNames(expr.replace(/\$__rate_interval|\$instance/g, "")).filter(
        (x) => !labels.has(x),
      ))
        expect({ panel, n, known: known.has(n) }).toEqual({ panel, n, known: true });
  });
});
