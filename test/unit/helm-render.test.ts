/**
 * The chart rendered with Helm's template engine (text/template + sprig + include/toYaml/
 * required, Helm's value coalescing: test/helm/render.go, built here with Debian's Go and sprig;
 * no helm binary exists for Debian 12 or npm). Default values and overrides render to valid
 * objects that fit together: the DaemonSet's arguments are ones `vipd k8s` accepts, the
 * ServiceMonitor scrapes the port the pods really serve /metrics on, the PrometheusRule holds
 * deploy/monitoring/rules.yaml's rules, the dashboard ConfigMap holds the dashboard.
 */

import { beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { parseK8sArgs } from "../../src/k8s/run.ts";

const ROOT = join(import.meta.dir, "../..");
const SRC = join(ROOT, "test/helm/render.go");
type Json = Record<string, unknown>;
type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
} & Json;
let bin = "";

beforeAll(() => {
  const hash = createHash("sha256").update(readFileSync(SRC)).digest("hex").slice(0, 16);
  bin = join(tmpdir(), `vipd-helm-render-${hash}`);
  if (existsSync(bin)) return;
  const r = Bun.spawnSync(["go", "build", "-o", bin, SRC], {
    env: { ...process.env, GO111MODULE: "off", GOPATH: "/usr/share/gocode" },
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`cannot build test/helm/render.go: ${r.stderr.toString()}`);
}, 180_000);

function render(values: Json = {}): Obj[] {
  const r = Bun.spawnSync([bin, join(ROOT, "deploy/helm/vipd"), "lb", "lb-system", JSON.stringify(values)], {
    stdout: "pipe",
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`render failed: ${r.stderr.toString()}`);
  const docs = parseAllDocuments(r.stdout.toString());
  for (const d of docs) if (d.errors.length > 0) throw new Error(`bad YAML: ${d.errors[0]?.message}`);
  return docs.map((d) => d.toJS() as Obj).filter((o) => o !== null);
}

const one = (objs: Obj[], kind: string) => {
  const found = objs.filter((o) => o.kind === kind);
  expect({ kind, count: found.length }).toEqual({ kind, count: 1 });
  return found[0] as Obj;
};

type Container = {
  args: string[];
  ports?: { name: string; containerPort: number }[];
  env: {
    name: string;
    valueFrom?: { configMapKeyRef?: { name: string; key: string; optional?: boolean } };
  }[];
};
const pod = (ds: Obj) =>
  (ds.spec as { template: { metadata: { labels: Record<string, string> }; spec: Json } }).template;
const container = (ds: Obj) => (pod(ds).spec.containers as Container[])[0] as Container;

function vipdArgs(c: Container) {
  const args = c.args.map((a) =>
    a
      .replace("$(NODE_NAME)", "n1")
      .replace("$(POD_NAMESPACE)", "lb-system")
      .replace("$(NODE_IP)", "10.0.0.5"),
  );
  expect(args[0]).toBe("k8s");
  const parsed = parseK8sArgs(args.slice(1), {});
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed;
}

describe("helm template, as Helm's engine renders it", () => {
  test("default values: valid objects, CRDs from the sub-chart, the DaemonSet as `vipd k8s` accepts it", () => {
    const objs = render();
    for (const o of objs) {
      expect(typeof o.apiVersion).toBe("string");
      expect(typeof o.metadata?.name).toBe("string");
    }
    expect(objs.filter((o) => o.kind === "CustomResourceDefinition").length).toBeGreaterThanOrEqual(8);
    for (const k of ["ServiceMonitor", "PrometheusRule"]) expect(objs.some((o) => o.kind === k)).toBe(false);
    const c = container(one(objs, "DaemonSet"));
    expect(vipdArgs(c)).toMatchObject({
      interfaces: ["auto"],
      metricsListen: "[10.0.0.5]:7472",
      namespace: "lb-system",
    });
    expect(c.ports?.find((p) => p.name === "monitoring")?.containerPort).toBe(7472);
    expect(c.env.find((e) => e.name === "VIPD_INTERFACE")?.valueFrom?.configMapKeyRef).toEqual({
      name: "lb-vipd-settings",
      key: "interface",
      optional: true,
    });
    expect(render({ crds: { enabled: false } }).some((o) => o.kind === "CustomResourceDefinition")).toBe(
      false,
    );
  });

  test("monitoring on: the ServiceMonitor scrapes the Service whose port is the pods' metrics port", () => {
    const objs = render({
      prometheus: {
        metricsPort: 9472,
        serviceMonitor: { enabled: true, additionalLabels: { release: "kps" } },
      },
    });
    const ds = one(objs, "DaemonSet");
    const c = container(ds);
    expect(vipdArgs(c).metricsListen).toBe("[10.0.0.5]:9472");
    const svcs = objs.filter((o) => o.kind === "Service" && o.metadata.name === "lb-vipd-monitoring");
    expect(svcs.length).toBe(1);
    const svc = svcs[0] as Obj;
    const sm = one(objs, "ServiceMonitor");
    const svcSpec = svc.spec as { clusterIP: string; selector: Record<string, string>; ports: Json[] };
    expect(svcSpec.clusterIP).toBe("None");
    // The Service selects the DaemonSet's pods...
    for (const [k, v] of Object.entries(svcSpec.selector)) expect(pod(ds).metadata.labels[k]).toBe(v);
    // ...on the port the container names "monitoring", where --metrics-listen serves.
    expect(svcSpec.ports).toEqual([{ name: "monitoring", port: 9472, targetPort: "monitoring" }]);
    expect(c.ports).toContainEqual({ name: "monitoring", containerPort: 9472 });
    // The ServiceMonitor selects that Service and scrapes its named port.
    const smSpec = sm.spec as { selector: { matchLabels: Record<string, string> }; endpoints: Json[] };
    for (const [k, v] of Object.entries(smSpec.selector.matchLabels))
      expect(svc.metadata.labels?.[k]).toBe(v);
    expect(smSpec.endpoints[0]).toMatchObject({ port: "monitoring", path: "/metrics" });
    expect(sm.metadata.labels?.release).toBe("kps");
  });

  test("the PrometheusRule is rules.yaml with the default values; thresholds and switches follow values", () => {
    const rules = parse(readFileSync(join(ROOT, "deploy/monitoring/rules.yaml"), "utf8")) as {
      groups: unknown;
    };
    const pr = one(render({ prometheus: { prometheusRule: { enabled: true } } }), "PrometheusRule");
    expect((pr.spec as { groups: unknown }).groups).toEqual(rules.groups);
    const custom = one(
      render({
        prometheus: {
          prometheusRule: {
            enabled: true,
            staleConfig: { enabled: false },
            addressPoolUsage: { thresholds: [{ percent: 90, labels: { severity: "page" } }] },
            extraAlerts: [{ alert: "Extra", expr: "vector(1)" }],
          },
        },
      }),
      "PrometheusRule",
    );
    const got =
      (custom.spec as { groups: { rules: { alert: string; expr: string; labels?: Json }[] }[] }).groups[0]
        ?.rules ?? [];
    expect(got.map((r) => r.alert)).toEqual([
      "MetalLBConfigNotLoaded",
      "MetalLBAddressPoolExhausted",
      "MetalLBAddressPoolUsage90Percent",
      "MetalLBBGPSessionDown",
      "Extra",
    ]);
    expect(got[2]?.expr.endsWith("* 100 > 90")).toBe(true);
    expect(got[2]?.labels).toEqual({ severity: "page" });
  });

  test("the dashboard ConfigMap carries the dashboard for Grafana's sidecar", () => {
    const cms = render({ grafana: { dashboard: { enabled: true } } }).filter(
      (o) => o.kind === "ConfigMap" && o.metadata.labels?.grafana_dashboard === "1",
    );
    expect(cms.length).toBe(1);
    const json = ((cms[0]?.data ?? {}) as Record<string, string>)["vipd.json"] ?? "";
    expect(JSON.parse(json)).toEqual(
      JSON.parse(readFileSync(join(ROOT, "deploy/monitoring/grafana-dashboard.json"), "utf8")),
    );
  });
});

describe("the admission webhook, rendered", () => {
  type Hook = {
    failurePolicy: string;
    clientConfig: { service: { name: string; namespace: string; path: string; port: number } };
  };
  test("default values: the configuration reaches the release's webhook Service and the pods' port; RBAC names the same objects", () => {
    const objs = render();
    const vwc = one(objs, "ValidatingWebhookConfiguration");
    const hook = (vwc.webhooks as Hook[])[0] as Hook;
    const svc = objs.find(
      (o) => o.kind === "Service" && o.metadata.name === hook.clientConfig.service.name,
    ) as Obj;
    expect(svc).toBeDefined();
    expect(hook.clientConfig.service.namespace).toBe("lb-system");
    expect(hook.failurePolicy).toBe("Fail");
    const port = ((svc.spec as Json).ports as { port: number; targetPort: number }[])[0];
    expect(port?.port).toBe(hook.clientConfig.service.port);
    const args = vipdArgs(container(one(objs, "DaemonSet")));
    expect(args.webhook).toEqual({
      listen: `[10.0.0.5]:${port?.targetPort}`,
      service: svc.metadata.name,
      config: vwc.metadata.name,
      secret: `${svc.metadata.name}-cert`,
    });
    const names = objs
      .filter((o) => o.kind === "ClusterRole" || o.kind === "Role")
      .flatMap((o) => (o.rules as { resourceNames?: string[] }[]).flatMap((r) => r.resourceNames ?? []));
    expect(names.sort()).toEqual([vwc.metadata.name, `${svc.metadata.name}-cert`].sort());
  });

  test("webhook.enabled=false: no configuration, no Service, no flag, no webhook rights", () => {
    const objs = render({ webhook: { enabled: false } });
    expect(objs.filter((o) => o.kind === "ValidatingWebhookConfiguration")).toEqual([]);
    expect(objs.filter((o) => o.metadata.name.endsWith("-webhook"))).toEqual([]);
    expect(vipdArgs(container(one(objs, "DaemonSet"))).webhook).toBeUndefined();
    const rules = objs
      .filter((o) => o.kind === "ClusterRole" || o.kind === "Role")
      .flatMap((o) => o.rules as { resources: string[]; resourceNames?: string[] }[]);
    expect(rules.filter((r) => r.resourceNames !== undefined)).toEqual([]);
    expect(
      render({ webhook: { failurePolicy: "Ignore" } }).some((o) =>
        JSON.stringify(o).includes('"failurePolicy":"Ignore"'),
      ),
    ).toBe(true);
  });
});
