/**
 * The deploy artifacts (issue 9): the k3s addon and the chart's CRD sub-chart are what
 * deploy/gen.ts makes from their sources (no drift); values.yaml satisfies values.schema.json and
 * bad values are refused; the chart's RBAC equals deploy/base/rbac.yaml; RBAC grants every
 * resource vipd's code reads or writes; the DaemonSet's arguments are ones `vipd k8s` accepts.
 * (No helm binary exists here: templates are not rendered; see deploy/README.md.)
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { outputs } from "../../deploy/gen.ts";
import { METALLB_PLURALS } from "../../src/k8s/client.ts";
import { parseK8sArgs } from "../../src/k8s/run.ts";

const DEPLOY = join(import.meta.dir, "../../deploy");
const read = (p: string) => readFileSync(join(DEPLOY, p), "utf8");
type Json = Record<string, unknown>;
type Schema = {
  type?: string;
  enum?: unknown[];
  required?: string[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  items?: Schema;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
};

/** The subset of JSON Schema draft-07 values.schema.json uses; returns the problems. */
function validate(v: unknown, s: Schema, at = "$"): string[] {
  const out: string[] = [];
  const t = Array.isArray(v) ? "array" : v === null ? "null" : typeof v === "number" ? "number" : typeof v;
  const isInt = typeof v === "number" && Number.isInteger(v);
  if (s.type !== undefined && s.type !== t && !(s.type === "integer" && isInt))
    return [`${at}: must be ${s.type}, is ${t}`];
  if (typeof v === "number") {
    if (s.minimum !== undefined && v < s.minimum) out.push(`${at}: must be at least ${s.minimum}`);
    if (s.maximum !== undefined && v > s.maximum) out.push(`${at}: must be at most ${s.maximum}`);
  }
  if (s.enum !== undefined && !s.enum.includes(v))
    out.push(`${at}: must be one of ${JSON.stringify(s.enum)}`);
  if (typeof v === "string") {
    if (s.minLength !== undefined && v.length < s.minLength) out.push(`${at}: too short`);
    if (s.maxLength !== undefined && v.length > s.maxLength) out.push(`${at}: too long`);
    if (s.pattern !== undefined && !new RegExp(s.pattern).test(v)) out.push(`${at}: must match ${s.pattern}`);
  }
  if (Array.isArray(v) && s.items)
    v.forEach((x, i) => {
      out.push(...validate(x, s.items as Schema, `${at}[${i}]`));
    });
  if (t === "object") {
    const o = v as Json;
    for (const r of s.required ?? []) if (!(r in o)) out.push(`${at}.${r}: required`);
    for (const [k, x] of Object.entries(o)) {
      const ps = s.properties?.[k];
      if (ps) out.push(...validate(x, ps, `${at}.${k}`));
      else if (s.additionalProperties === false) out.push(`${at}.${k}: unknown`);
      else if (typeof s.additionalProperties === "object")
        out.push(...validate(x, s.additionalProperties, `${at}.${k}`));
    }
  }
  return out;
}

describe("generated deploy files", () => {
  test("the k3s addon and the CRD sub-chart are up to date with their sources (bun deploy/gen.ts)", () => {
    for (const [path, text] of Object.entries(outputs()))
      expect({ path, text: read(path) }).toEqual({ path, text });
  });

  test("the k3s addon is one manifest of valid objects: namespace first, every CRD, RBAC, DaemonSet", () => {
    const docs = parseAllDocuments(read("k3s/vipd.yaml")).map((d) => d.toJS() as Json);
    for (const d of docs) {
      expect(typeof d.apiVersion).toBe("string");
      expect(typeof d.kind).toBe("string");
      expect(typeof (d.metadata as Json).name).toBe("string");
    }
    expect(docs[0]?.kind).toBe("Namespace");
    const crds = docs
      .filter((d) => d.kind === "CustomResourceDefinition")
      .map((d) => (d.metadata as Json).name);
    for (const plural of [...Object.keys(METALLB_PLURALS), "servicel2statuses", "servicebgpstatuses"])
      expect(crds).toContain(`${plural}.metallb.io`);
    expect(docs.map((d) => d.kind)).toEqual(
      expect.arrayContaining([
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "DaemonSet",
      ]),
    );
    expect(read("k3s/vipd.yaml")).not.toContain(String.raw`\u00B5`);
  });
});

describe("Helm chart", () => {
  const schema = JSON.parse(read("helm/vipd/values.schema.json")) as Schema;
  const values = parse(read("helm/vipd/values.yaml")) as Json;

  test("values.yaml satisfies values.schema.json", () => {
    expect(validate(values, schema)).toEqual([]);
  });

  test("values.schema.json: membership and Lease fencing settings are checked", () => {
    const cluster = values.cluster as Json;
    const fencing = values.l2LeaseFencing as Json;
    expect(fencing.enabled).toBe(false);
    expect(validate({ ...values, cluster: { ...cluster, port: 1.5 } }, schema)).toEqual([
      "$.cluster.port: must be integer, is number",
    ]);
    expect(validate({ ...values, cluster: { ...cluster, addressFamily: "ipx" } }, schema)).toEqual([
      '$.cluster.addressFamily: must be one of ["ipv4","ipv6"]',
    ]);
    expect(validate({ ...values, l2LeaseFencing: { ...fencing, durationSeconds: 1 } }, schema)).toEqual([
      "$.l2LeaseFencing.durationSeconds: must be at least 2",
    ]);
  });

  test("values.schema.json refuses bad values with a path", () => {
    expect(validate({ ...values, xdpMode: "fast" }, schema)).toEqual([
      '$.xdpMode: must be one of ["native","generic"]',
    ]);
    expect(validate({ ...values, endpointSliceVersion: "v2" }, schema)[0]).toContain(
      "$.endpointSliceVersion",
    );
    expect(validate({ ...values, interfaces: ["a-very-long-interface-name"] }, schema)).toEqual([
      "$.interfaces[0]: too long",
    ]);
    expect(validate({ ...values, typo: 1 }, schema)).toEqual(["$.typo: unknown"]);
    expect(
      validate({ ...values, prometheus: { serviceMonitor: { interval: "soon" } } }, schema)[0],
    ).toContain("interval");
  });

  test("Chart.yaml declares the crds sub-chart, which exists with every CRD", () => {
    const chart = parse(read("helm/vipd/Chart.yaml")) as Json;
    expect(chart.apiVersion).toBe("v2");
    expect(chart.dependencies).toEqual([{ name: "crds", version: "0.1.0", condition: "crds.enabled" }]);
    expect((parse(read("helm/vipd/charts/crds/Chart.yaml")) as Json).name).toBe("crds");
  });

  test("the chart's RBAC rules are exactly deploy/base/rbac.yaml's", () => {
    const rules = (text: string, kind: string) =>
      parseAllDocuments(text.replace(/\{\{[^}]*\}\}/g, "x"))
        .map((d) => d.toJS() as Json | null)
        .filter((d): d is Json => d !== null && d.kind === kind)
        .map((d) => d.rules);
    const tpl = read("helm/vipd/templates/rbac.yaml").replace(/^\s*\{\{-? (if|end).*\}\}$/gm, "");
    // The chart names the webhook's objects after the release (<fullname>-webhook...).
    const base = read("base/rbac.yaml").replace(/\bvipd-webhook/g, "x-webhook");
    for (const kind of ["ClusterRole", "Role"]) expect(rules(tpl, kind)).toEqual(rules(base, kind));
  });
});

describe("RBAC and DaemonSet", () => {
  const docs = parseAllDocuments(read("base/rbac.yaml")).map((d) => d.toJS() as Json);
  const grants = (kind: string) =>
    (
      (docs.find((d) => d.kind === kind)?.rules ?? []) as {
        apiGroups: string[];
        resources: string[];
        verbs: string[];
      }[]
    ).flatMap((r) =>
      r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`))),
    );

  const named = (kind: string) =>
    ((docs.find((d) => d.kind === kind)?.rules ?? []) as { resources: string[]; resourceNames?: string[] }[])
      .filter((r) => r.resourceNames !== undefined)
      .map((r) => ({ resources: r.resources, resourceNames: r.resourceNames }));

  test("the ClusterRole grants what the informers and the controller use, and no wildcard", () => {
    const cr = grants("ClusterRole");
    for (const r of ["/services", "/nodes", "/namespaces", "discovery.k8s.io/endpointslices"])
      for (const v of ["list", "watch"]) expect(cr).toContain(`${r}:${v}`);
    for (const g of [
      "/services/status:patch",
      "/services:patch",
      "events.k8s.io/events:create",
      "admissionregistration.k8s.io/validatingwebhookconfigurations:patch",
    ])
      expect(cr).toContain(g);
    expect(cr.filter((g) => g.includes("*"))).toEqual([]);
    // Secrets are never readable cluster-wide; metallb.io objects are read only in vipd's namespace.
    expect(cr.filter((g) => g.startsWith("/secrets") || g.startsWith("metallb.io/"))).toEqual([]);
    // The webhook configuration: only vipd's own, by name.
    expect(named("ClusterRole")).toEqual([
      { resources: ["validatingwebhookconfigurations"], resourceNames: ["vipd-webhook"] },
    ]);
  });

  test("the namespaced Role grants the Lease, Secrets and the status objects", () => {
    const r = grants("Role");
    for (const g of [
      "coordination.k8s.io/leases:get",
      "coordination.k8s.io/leases:create",
      "coordination.k8s.io/leases:update",
      "/secrets:watch",
      "metallb.io/servicel2statuses:create",
      "metallb.io/servicel2statuses/status:patch",
      "metallb.io/servicebgpstatuses:delete",
      ...Object.keys(METALLB_PLURALS).map((p) => `metallb.io/${p}:watch`),
      "metallb.io/ipaddresspools/status:patch",
      "metallb.io/configurationstates:create",
      "metallb.io/configurationstates/status:patch",
      "/secrets:create",
    ])
      expect(r).toContain(g);
    // The webhook's certificate Secret is replaced only by name; no other Secret is writable.
    expect(named("Role")).toEqual([{ resources: ["secrets"], resourceNames: ["vipd-webhook-cert"] }]);
    expect(r.filter((g) => g.startsWith("/secrets:") && !/:(get|list|watch|create|update)$/.test(g))).toEqual(
      [],
    );
  });

  test("the DaemonSet runs `vipd k8s` with arguments it accepts, host network, bpffs and no privileged mode", () => {
    const ds = parse(read("base/daemonset.yaml")) as Json;
    const pod = (ds.spec as Json).template as Json;
    const spec = pod.spec as Json;
    const c = (spec.containers as Json[])[0] as Json;
    const args = (c.args as string[]).map((a) =>
      a
        .replace("$(NODE_NAME)", "n1")
        .replace("$(POD_NAMESPACE)", "vipd-system")
        .replace("$(NODE_IP)", "10.0.0.5"),
    );
    expect(args[0]).toBe("k8s");
    expect(parseK8sArgs(args.slice(1), {})).toMatchObject({
      nodeName: "n1",
      namespace: "vipd-system",
      interfaces: ["auto"],
      metricsListen: "[10.0.0.5]:7472",
      webhook: { listen: "[10.0.0.5]:9443", service: "vipd-webhook", config: "vipd-webhook" },
    });
    // The controller's identity is the pod's name (downward API).
    const podName = (c.env as { name: string; valueFrom?: { fieldRef?: { fieldPath?: string } } }[]).find(
      (e) => e.name === "POD_NAME",
    );
    expect(podName?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.name");
    expect(spec.hostNetwork).toBe(true);
    // Live membership: the key comes from an optional Secret, so the addon works without it.
    const env = c.env as { name: string; value?: string }[];
    const keyFile = env.find((e) => e.name === "VIPD_CLUSTER_KEY_FILE")?.value as string;
    const parsed = parseK8sArgs(args.slice(1), { VIPD_CLUSTER_KEY_FILE: keyFile });
    expect("error" in parsed ? parsed.error : parsed.cluster).toMatchObject({
      keyFile,
      keyFileOptional: true,
    });
    const mount = (c.volumeMounts as { name: string; mountPath: string }[]).find((m) =>
      keyFile.startsWith(`${m.mountPath}/`),
    );
    const vol = (spec.volumes as { name: string; secret?: { optional?: boolean } }[]).find(
      (v) => v.name === mount?.name,
    );
    expect(vol?.secret?.optional).toBe(true);
    const sc = c.securityContext as Json;
    expect(sc.privileged).toBeUndefined();
    expect((sc.capabilities as Json).drop).toEqual(["ALL"]);
    expect((spec.volumes as { hostPath?: { path?: string } }[])[0]?.hostPath?.path).toBe("/sys/fs/bpf");
  });
});

describe("admission webhook manifests", () => {
  const docs = parseAllDocuments(read("base/webhook.yaml")).map((d) => d.toJS() as Json);
  const vwc = docs.find((d) => d.kind === "ValidatingWebhookConfiguration") as Json;
  const svc = docs.find((d) => d.kind === "Service") as Json;
  type Hook = {
    failurePolicy: string;
    sideEffects: string;
    admissionReviewVersions: string[];
    clientConfig: { service: { name: string; namespace: string; path: string; port: number } };
    rules: { apiGroups: string[]; operations: string[]; resources: string[] }[];
  };
  const hooks = vwc.webhooks as Hook[];

  test("every metallb.io kind vipd reads goes through the webhook, on create and update, AdmissionReview v1", () => {
    expect(hooks.length).toBe(1);
    const h = hooks[0] as Hook;
    expect(h.rules.flatMap((r) => r.resources).sort()).toEqual(Object.keys(METALLB_PLURALS).sort());
    expect(
      h.rules.every((r) => r.apiGroups.join() === "metallb.io" && r.operations.join() === "CREATE,UPDATE"),
    ).toBe(true);
    expect(h.admissionReviewVersions).toEqual(["v1"]);
    expect([h.failurePolicy, h.sideEffects]).toEqual(["Fail", "None"]);
  });

  test("the service reference reaches the port the DaemonSet serves the webhook on, at the path vipd serves", () => {
    const h = hooks[0] as Hook;
    const meta = svc.metadata as Json;
    expect(h.clientConfig.service as Json).toEqual({
      name: meta.name,
      namespace: meta.namespace,
      path: "/validate",
      port: 443,
    });
    const port = ((svc.spec as Json).ports as { port: number; targetPort: number }[])[0];
    expect(port?.port).toBe(443);
    const ds = parse(read("base/daemonset.yaml")) as Json;
    const c = ((((ds.spec as Json).template as Json).spec as Json).containers as Json[])[0] as Json;
    expect((c.args as string[]).find((a) => a.startsWith("--webhook-listen="))).toBe(
      `--webhook-listen=[$(NODE_IP)]:${port?.targetPort}`,
    );
    expect((vwc.metadata as Json).name).toBe("vipd-webhook");
  });

  test("the chart's webhook template has the same rules, and its values can turn it off", () => {
    const tpl = parseAllDocuments(
      read("helm/vipd/templates/webhook.yaml")
        .replace(/^\{\{-? (if|end).*\}\}$/gm, "")
        .replace(/\{\{[^}]*\}\}/g, "x"),
    ).map((d) => d.toJS() as Json);
    const t = tpl.find((d) => d.kind === "ValidatingWebhookConfiguration") as Json;
    expect((t.webhooks as Hook[])[0]?.rules).toEqual((hooks[0] as Hook).rules);
    const values = parse(read("helm/vipd/values.yaml")) as Json;
    expect(values.webhook).toEqual({ enabled: true, port: 9443, failurePolicy: "Fail", timeoutSeconds: 10 });
    expect(read("helm/vipd/templates/webhook.yaml").startsWith("{{- if .Values.webhook.enabled }}")).toBe(
      true,
    );
  });

  test("the addon holds the webhook, its Service and the ConfigurationState CRD", () => {
    const addon = parseAllDocuments(read("k3s/vipd.yaml")).map((d) => d.toJS() as Json);
    expect(addon.map((d) => `${d.kind}/${(d.metadata as Json).name}`)).toEqual(
      expect.arrayContaining([
        "ValidatingWebhookConfiguration/vipd-webhook",
        "Service/vipd-webhook",
        "CustomResourceDefinition/configurationstates.metallb.io",
      ]),
    );
  });
});
