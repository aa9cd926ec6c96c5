/**
 * Pure parts of Kubernetes mode: API objects → the manifests the schemas validate, Service
 * statuses → the planner's assignments, MicroTime, and `vipd k8s` argument parsing.
 */
import { describe, expect, test } from "bun:test";
import { configFromText } from "../../src/config/index.ts";
import { kubeTime, microTime, parseKubeTime } from "../../src/k8s/client.ts";
import { parseK8sArgs } from "../../src/k8s/run.ts";
import { assignmentsFromServices } from "../../src/k8s/speaker.ts";
import { toManifest } from "../../src/k8s/state.ts";

// A Service as a 1.20 API server returns it: fields vipd's schema does not know (topologyKeys,
// selfLink-era metadata, status.conditions...) must not make it invalid.
const apiService = {
  apiVersion: "v1",
  kind: "Service",
  metadata: {
    name: "web",
    namespace: "shop",
    uid: "0b7e",
    resourceVersion: "42",
    creationTimestamp: "2026-01-01T00:00:00Z",
    selfLink: "/api/v1/namespaces/shop/services/web",
    managedFields: [{ manager: "kubectl" }],
    annotations: { "metallb.io/ip-allocated-from-pool": "lan" },
  },
  spec: {
    type: "LoadBalancer",
    ports: [{ port: 80, protocol: "TCP", targetPort: 8080, nodePort: 31000 }],
    selector: { app: "web" },
    clusterIP: "10.96.0.10",
    clusterIPs: ["10.96.0.10"],
    ipFamilies: ["IPv4"],
    ipFamilyPolicy: "SingleStack",
    topologyKeys: ["kubernetes.io/hostname"],
    someFutureField: true,
  },
  status: { loadBalancer: { ingress: [{ ip: "192.0.2.10", ipMode: "VIP" }] }, conditions: [] },
};

describe("toManifest", () => {
  test("keeps what the schemas know of a Service, drops what the API server adds", () => {
    const m = toManifest("Service", apiService);
    expect(m.metadata).not.toHaveProperty("selfLink");
    expect(m.spec).not.toHaveProperty("topologyKeys");
    expect(m.spec).not.toHaveProperty("someFutureField");
    expect(m.status).toEqual({ loadBalancer: { ingress: [{ ip: "192.0.2.10" }] } });
    const r = configFromText(JSON.stringify(m));
    expect(r.problems).toEqual([]);
  });

  test("a metallb.io object keeps its spec as it is (unknown fields are the user's problem, reported)", () => {
    const pool = {
      apiVersion: "metallb.io/v1beta1",
      kind: "IPAddressPool",
      metadata: { name: "lan", namespace: "vipd-system", uid: "x", generation: 3 },
      spec: { addresses: ["192.0.2.0/24"], typo: 1 },
      status: { assignedIPv4: 1 },
    };
    const m = toManifest("IPAddressPool", pool);
    expect(m).toEqual({
      apiVersion: "metallb.io/v1beta1",
      kind: "IPAddressPool",
      metadata: { name: "lan", namespace: "vipd-system", uid: "x", generation: 3 },
      spec: { addresses: ["192.0.2.0/24"], typo: 1 },
    });
    const r = configFromText(JSON.stringify(m));
    expect(r.ok).toBe(false);
  });
});

describe("assignmentsFromServices", () => {
  const cfg = (docs: unknown[]) => {
    const r = configFromText(docs.map((d) => JSON.stringify(d)).join("\n---\n"));
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    return r.config;
  };
  const svc = (name: string, ips: string[], spec: Record<string, unknown> = {}) => ({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: "default", annotations: { "metallb.io/ip-allocated-from-pool": "lan" } },
    spec: { type: "LoadBalancer", ports: [{ port: 80 }], ...spec },
    status: { loadBalancer: { ingress: ips.map((ip) => ({ ip })) } },
  });

  test("Services that hold addresses become assignments, by key; no status, other class or other type are left out", () => {
    const c = cfg([
      {
        apiVersion: "metallb.io/v1beta1",
        kind: "IPAddressPool",
        metadata: { name: "lan" },
        spec: { addresses: ["192.0.2.0/24", "2001:db8::/64"] },
      },
      svc("b", ["192.0.2.2", "2001:db8::2"]),
      svc("a", ["192.0.2.1"]),
      svc("none", []),
      svc("classy", ["192.0.2.3"], { loadBalancerClass: "other.io/lb" }),
    ]);
    expect(assignmentsFromServices(c, undefined)).toEqual([
      { key: "default/a", pool: "lan", ips: ["192.0.2.1"] },
      { key: "default/b", pool: "lan", ips: ["192.0.2.2", "2001:db8::2"] },
    ]);
    expect(assignmentsFromServices(c, "other.io/lb")).toEqual([
      { key: "default/classy", pool: "lan", ips: ["192.0.2.3"] },
    ]);
  });
});

describe("times", () => {
  test("MicroTime has exactly six decimals; Time has none; both parse back", () => {
    const t = Date.UTC(2026, 10, 26, 13, 0, 0, 5);
    expect(microTime(t)).toBe("2026-11-26T13:00:00.005000Z");
    expect(kubeTime(t)).toBe("2026-11-26T13:00:00Z");
    expect(parseKubeTime(microTime(t))).toBe(t);
    expect(Number.isNaN(parseKubeTime(undefined))).toBe(true);
  });
});

describe("parseK8sArgs", () => {
  test("defaults from the environment, then built-ins", () => {
    expect(parseK8sArgs([], { NODE_NAME: "n7", POD_NAMESPACE: "lb", KUBECONFIG: "/k" })).toEqual({
      kubeconfig: "/k",
      nodeName: "n7",
      namespace: "lb",
      interfaces: [],
      xdpMode: "native",
      endpointSliceVersion: "v1",
      loadBalancerClass: undefined,
      controller: true,
      speaker: true,
      apiListen: "127.0.0.1:7473",
      apiTokensFile: undefined,
      metricsListen: "",
      cluster: {
        keyFile: undefined,
        keyFileOptional: true,
        port: 7946,
        intervalMs: 50,
        deadAfterMs: 200,
        riseMs: 1000,
        addressFamily: "ipv4",
      },
      leaseFencingS: undefined,
      identity: "n7",
      webhook: undefined,
    });
    // The controller's identity is the pod name (downward API), stable across restarts.
    expect(parseK8sArgs([], { POD_NAME: "vipd-x7k2p" })).toMatchObject({ identity: "vipd-x7k2p" });
    expect(parseK8sArgs(["--webhook-listen", "0.0.0.0:9443"], {})).toMatchObject({
      webhook: {
        listen: "0.0.0.0:9443",
        service: "vipd-webhook",
        config: "vipd-webhook",
        secret: "vipd-webhook-cert",
      },
    });
    expect(parseK8sArgs(["--webhook-listen", "9443"], {})).toEqual({
      error: '--webhook-listen must be HOST:PORT or [IPv6]:PORT, not "9443"',
    });
  });

  test("flags win; bad values are clear errors", () => {
    expect(
      parseK8sArgs(
        [
          "--node-name",
          "a",
          "--interface",
          "eth0",
          "--interface",
          "eth1",
          "--no-controller",
          "--endpointslice-version",
          "v1beta1",
        ],
        {},
      ),
    ).toMatchObject({
      nodeName: "a",
      interfaces: ["eth0", "eth1"],
      controller: false,
      endpointSliceVersion: "v1beta1",
    });
    expect(parseK8sArgs(["--endpointslice-version", "v2"], {})).toEqual({
      error: '--endpointslice-version must be v1 or v1beta1, not "v2"',
    });
    expect("error" in parseK8sArgs(["--bogus"], {})).toBe(true);
  });
});
