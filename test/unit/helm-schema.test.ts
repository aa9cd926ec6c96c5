/**
 * The chart's values.schema.json, checked as Helm checks it, with a real JSON-schema validator
 * (Ajv, draft-07). Helm does not validate values.yaml alone: it first merges the user's values
 * over the chart's, then copies the global values into every sub-chart's key (`crds.global`) and
 * sets a top-level `global`, and only then validates the whole tree against the schema. A schema
 * with `additionalProperties: false` on `crds` and no `global` in it therefore broke install,
 * template and lint with the default values (issue 18). No helm binary exists here, so the merge
 * is done by `helmValues` below, following Helm's coalescing rules for what the chart uses.
 */

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import Ajv from "ajv";
import { parse } from "yaml";

const CHART = join(import.meta.dir, "../../deploy/helm/vipd");
type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

const schema = JSON.parse(readFileSync(join(CHART, "values.schema.json"), "utf8")) as Json;
const defaults = parse(readFileSync(join(CHART, "values.yaml"), "utf8")) as Json;
const subcharts = (
  parse(readFileSync(join(CHART, "Chart.yaml"), "utf8")) as { dependencies: { name: string }[] }
).dependencies;

/** Helm's coalescing: the user's maps merge into the chart's, anything else replaces; null deletes. */
function merge(base: unknown, over: unknown): unknown {
  if (!isObj(base) || !isObj(over)) return over === undefined ? base : over;
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else out[k] = merge(base[k], v);
  }
  return out;
}

/** The values Helm validates: merged overrides, `global` at the top and in every sub-chart's key. */
function helmValues(overrides: Json = {}): Json {
  const v = merge(structuredClone(defaults), overrides) as Json;
  const global = isObj(v.global) ? v.global : {};
  v.global = global;
  for (const { name } of subcharts) v[name] = { ...(isObj(v[name]) ? v[name] : {}), global: { ...global } };
  return v;
}

function validator(s: Json) {
  // Helm's schemas name draft-07 with https; Ajv knows it by its http id.
  const { $schema: _, ...rest } = s;
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
  const check = ajv.compile(rest);
  return (values: Json): string[] => {
    if (check(values)) return [];
    return (check.errors ?? []).map(
      (e) =>
        `${e.instancePath || "/"} ${e.message}${e.params && "additionalProperty" in e.params ? `: ${e.params.additionalProperty}` : ""}`,
    );
  };
}

const validate = validator(schema);

describe("values.schema.json as Helm validates it", () => {
  test("the default values, with Helm's globals added, are valid", () => {
    expect(subcharts.map((s) => s.name)).toContain("crds");
    const v = helmValues();
    expect(v.crds).toEqual({ enabled: true, global: {} });
    expect(validate(v)).toEqual([]);
  });

  test("user globals reach the sub-chart's key and are valid there too", () => {
    const v = helmValues({ global: { imageRegistry: "registry.example", imagePullSecrets: ["x"] } });
    expect((v.crds as Json).global).toEqual({ imageRegistry: "registry.example", imagePullSecrets: ["x"] });
    expect(validate(v)).toEqual([]);
  });

  test("common overrides are valid: interfaces, no CRDs, monitoring on, custom thresholds", () => {
    for (const o of [
      { interfaces: ["eth1", "bond0"], interfaceConfigMap: "lb-settings" },
      { interfaces: [] },
      { crds: { enabled: false } },
      {
        prometheus: {
          serviceMonitor: { enabled: true, interval: "15s", additionalLabels: { release: "kps" } },
        },
      },
      {
        prometheus: {
          metricsPort: 9472,
          prometheusRule: {
            enabled: true,
            additionalLabels: { release: "kps" },
            addressPoolUsage: { thresholds: [{ percent: 90, labels: { severity: "page" } }] },
            bgpSessionDown: { enabled: false },
            extraAlerts: [{ alert: "Extra", expr: "vector(1)" }],
          },
        },
      },
      { grafana: { dashboard: { enabled: true, labels: { grafana_dashboard: "1" } } } },
      { l2LeaseFencing: { enabled: true, durationSeconds: 15 } },
    ])
      expect({ o, problems: validate(helmValues(o)) }).toEqual({ o, problems: [] });
  });

  test("bad values are refused with their path", () => {
    expect(validate(helmValues({ xdpMode: "fast" }))).toEqual([
      "/xdpMode must be equal to one of the allowed values",
    ]);
    expect(validate(helmValues({ prometheus: { metricsPort: 70000 } }))).toEqual([
      "/prometheus/metricsPort must be <= 65535",
    ]);
    expect(validate(helmValues({ interface: "eth0" }))).toEqual([
      "/ must NOT have additional properties: interface",
    ]);
    expect(validate(helmValues({ crds: { enable: false } }))).toEqual([
      "/crds must NOT have additional properties: enable",
    ]);
    expect(validate(helmValues({ interfaces: ["eth0/1"] }))).toEqual([
      '/interfaces/0 must match pattern "^[^/\\s:]+$"',
    ]);
    expect(
      validate(
        helmValues({
          prometheus: { prometheusRule: { addressPoolUsage: { thresholds: [{ percent: 150 }] } } },
        }),
      ),
    ).toEqual(["/prometheus/prometheusRule/addressPoolUsage/thresholds/0/percent must be <= 100"]);
  });

  test("the old mistake is caught: without `global` under `crds`, Helm's own values fail", () => {
    const broken = structuredClone(schema) as { properties: { crds: { properties: Json } } };
    delete broken.properties.crds.properties.global;
    expect(validator(broken as unknown as Json)(helmValues())).toEqual([
      "/crds must NOT have additional properties: global",
    ]);
  });
});
