/**
 * One object of each kind, the way MetalLB documents it: what is accepted, what defaults are
 * filled in (MetalLB's own), and what is refused with which message.
 */
import { describe, expect, test } from "bun:test";
import YAML from "yaml";
import { type Config, configFromText } from "../../src/config/index.ts";
import { durationMs, parseCommunity } from "../../src/config/schemas.ts";

const API: Record<string, string> = {
  IPAddressPool: "metallb.io/v1beta1",
  L2Advertisement: "metallb.io/v1beta1",
  BGPAdvertisement: "metallb.io/v1beta1",
  BGPPeer: "metallb.io/v1beta2",
  BFDProfile: "metallb.io/v1beta1",
  Community: "metallb.io/v1beta1",
  Service: "v1",
  Namespace: "v1",
  NodeSettings: "vipd.io/v1alpha1",
};

/** A manifest of `kind` named `name` with `spec` (and extra top-level fields). */
function manifest(kind: string, spec: unknown, extra: Record<string, unknown> = {}): string {
  return YAML.stringify({
    apiVersion: API[kind],
    kind,
    metadata: { name: "x" },
    ...(spec === undefined ? {} : { spec }),
    ...extra,
  });
}

/** Validates manifests; throws with the problems if any. */
function valid(...docs: string[]): Config {
  const r = configFromText(docs.join("---\n"));
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.field}: ${p.message}`).join("\n"));
  return r.config;
}

/** The problems of manifests, as `field: message`. */
function refused(...docs: string[]): string[] {
  return configFromText(docs.join("---\n")).problems.map((p) => `${p.field}: ${p.message}`);
}

const PEER = { myASN: 64500, peerASN: 64501, peerAddress: "10.0.0.1" };

describe("metadata", () => {
  const withMeta = (metadata: Record<string, unknown>) =>
    YAML.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: "shop", ...metadata } });

  test("labels and annotations as the API server accepts them", () => {
    const labels = { app: "web", "app.kubernetes.io/name": "shop", tier: "", "example.com/v": "v1.2_rc-1" };
    const annotations = { "metallb.io/loadBalancerIPs": "10.0.0.1, fd00::1", note: "any text: at all" };
    expect(valid(withMeta({ labels, annotations })).namespaces[0]?.metadata).toEqual({
      name: "shop",
      labels,
      annotations,
    });
  });

  test.each([
    [
      { labels: { app: "my app" } },
      "metadata.labels.app: must be a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
    ],
    [
      { labels: { app: "x".repeat(64) } },
      "metadata.labels.app: must be a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
    ],
    [
      { labels: { "-app": "x" } },
      `metadata.labels["-app"]: key "-app" must be a key such as "app" or "example.com/app": a name of 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
    ],
    [
      { annotations: { "Example.com/x": "y" } },
      `metadata.annotations["Example.com/x"]: key "Example.com/x" must be a key such as "app" or "example.com/app": a name of 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
    ],
    [{ name: "Shop" }, "metadata.name: must be a lowercase RFC 1123 name (a-z, 0-9, '-', '.')"],
    [{ name: "x".repeat(254) }, "metadata.name: must be at most 253 characters"],
    [{ namespace: "" }, "metadata.namespace: must not be empty"],
  ])("refuses %j", (metadata, message) => {
    expect(refused(withMeta(metadata))).toEqual([message]);
  });
});

describe("IPAddressPool", () => {
  test("takes CIDRs, a-b ranges and single addresses, IPv4 and IPv6; autoAssign defaults to true", () => {
    const c = valid(
      manifest("IPAddressPool", {
        addresses: [
          "192.168.10.0/24",
          "192.168.11.10-192.168.11.20",
          "192.168.12.7",
          "fd00:1::/64",
          "fd00:2::1 - fd00:2::ff",
          "fd00:3::7",
        ],
      }),
    );
    expect(c.pools[0]?.spec).toEqual({
      addresses: [
        "192.168.10.0/24",
        "192.168.11.10-192.168.11.20",
        "192.168.12.7",
        "fd00:1::/64",
        "fd00:2::1 - fd00:2::ff",
        "fd00:3::7",
      ],
      autoAssign: true,
      avoidBuggyIPs: false,
    });
  });

  test("serviceAllocation: priority, namespaces and selectors", () => {
    const serviceAllocation = {
      priority: 50,
      namespaces: ["shop", "team-a"],
      namespaceSelectors: [{ matchLabels: { team: "web" } }],
      serviceSelectors: [
        { matchExpressions: [{ key: "tier", operator: "NotIn" as const, values: ["batch"] }] },
      ],
    };
    const c = valid(
      manifest("IPAddressPool", { addresses: ["10.0.0.0/24"], avoidBuggyIPs: true, serviceAllocation }),
    );
    expect(c.pools[0]?.spec.serviceAllocation).toEqual(serviceAllocation);
    expect(c.pools[0]?.spec.avoidBuggyIPs).toBe(true);
  });

  test.each([
    [["10.0.0.0/8", "10.0.0.300"], 'spec.addresses[1]: "10.0.0.300" is not an IP address, CIDR or range'],
    [["fd00::/129"], 'spec.addresses[0]: "/129" is not a valid prefix length for IPv6'],
    [["10.0.0.0/"], 'spec.addresses[0]: "/" is not a valid prefix length for IPv4'],
    [["fd00::ff-fd00::1"], 'spec.addresses[0]: range "fd00::ff-fd00::1" starts after it ends'],
    [["::ffff:10.0.0.1-10.0.0.9"], 'spec.addresses[0]: range "::ffff:10.0.0.1-10.0.0.9" mixes IPv4 and IPv6'],
    [["010.0.0.1"], 'spec.addresses[0]: "010.0.0.1" is not an IP address, CIDR or range'],
    [[7], "spec.addresses[0]: must be a string, not number 7 (put it in quotes)"],
  ])("refuses addresses %j", (addresses, message) => {
    expect(refused(manifest("IPAddressPool", { addresses }))).toEqual([message]);
  });
});

describe("L2Advertisement", () => {
  test("an empty spec (or none) advertises everything", () => {
    const c = valid(
      manifest("L2Advertisement", {}),
      manifest("L2Advertisement", undefined).replace("name: x", "name: y"),
    );
    expect(c.l2Advertisements.map((l) => l.spec)).toEqual([{}, {}]);
  });

  test("every field MetalLB has", () => {
    const spec = {
      ipAddressPools: ["p"],
      ipAddressPoolSelectors: [{ matchLabels: { tier: "ingress" } }],
      nodeSelectors: [
        { matchExpressions: [{ key: "node-role.kubernetes.io/edge", operator: "Exists" as const }] },
      ],
      interfaces: ["eth0", "bond0.100"],
      serviceSelectors: [{ matchLabels: { app: "web" } }],
      preferredNodeSelectors: [{ weight: 100, preference: { matchLabels: { zone: "a" } } }],
    };
    const c = valid(
      manifest("IPAddressPool", { addresses: ["10.0.0.0/24"] }).replace("name: x", "name: p"),
      manifest("L2Advertisement", spec),
    );
    expect(c.l2Advertisements[0]?.spec).toEqual(spec);
  });

  test("a selector requirement must fit its operator", () => {
    expect(
      refused(
        manifest("L2Advertisement", {
          nodeSelectors: [{ matchExpressions: [{ key: "a", operator: "Exists", values: ["x"] }] }],
          serviceSelectors: [{ matchExpressions: [{ key: "a", operator: "Equals", values: ["x"] }] }],
        }),
      ),
    ).toEqual([
      "spec.nodeSelectors[0].matchExpressions[0].values: must be empty for operator Exists",
      'spec.serviceSelectors[0].matchExpressions[0].operator: must be one of "In", "NotIn", "Exists", "DoesNotExist"',
    ]);
  });
});

describe("BGPAdvertisement", () => {
  test("defaults: aggregationLength 32, aggregationLengthV6 128", () => {
    expect(valid(manifest("BGPAdvertisement", {})).bgpAdvertisements[0]?.spec).toEqual({
      aggregationLength: 32,
      aggregationLengthV6: 128,
    });
    expect(valid(manifest("BGPAdvertisement", undefined)).bgpAdvertisements[0]?.spec).toEqual({
      aggregationLength: 32,
      aggregationLengthV6: 128,
    });
  });

  test("communities: standard a:b, large:a:b:c, and names of Community aliases", () => {
    const c = valid(
      manifest("Community", {
        communities: [
          { name: "no-advertise", value: "65535:65282" },
          { name: "big", value: "large:4200000000:1:2" },
        ],
      }),
      manifest("BGPAdvertisement", {
        communities: ["64500:100", "large:64500:0:4294967295", "no-advertise", "big"],
        localPref: 4294967295,
      }),
    );
    expect(c.bgpAdvertisements[0]?.spec.communities).toEqual([
      "64500:100",
      "large:64500:0:4294967295",
      "no-advertise",
      "big",
    ]);
    expect(c.communities[0]?.spec.communities.map((a) => a.name)).toEqual(["no-advertise", "big"]);
  });

  test.each([
    // MetalLB's CRD: aggregationLength minimum 1.
    [{ aggregationLength: 0 }, "spec.aggregationLength: must be at least 1"],
    [{ aggregationLengthV6: 129 }, "spec.aggregationLengthV6: must be at most 128"],
    [{ localPref: 4294967296 }, "spec.localPref: must be at most 4294967295"],
    [
      { communities: ["large:1:2:4294967296"] },
      'spec.communities[0]: "large:1:2:4294967296" is not a community: use "a:b" (16-bit values) or "large:a:b:c" (32-bit values)',
    ],
    [
      { communities: ["no export"] },
      'spec.communities[0]: "no export" is neither a community value nor an alias name',
    ],
  ])("refuses %j", (spec, message) => {
    expect(refused(manifest("BGPAdvertisement", spec))).toEqual([message]);
  });

  test("community literals parse to their parts", () => {
    expect(parseCommunity("65535:65281")).toEqual({ kind: "standard", parts: [65535, 65281] });
    expect(parseCommunity("large:1:2:3")).toEqual({ kind: "large", parts: [1, 2, 3] });
    expect(parseCommunity("1:65536")).toBeNull();
    expect(parseCommunity("NO_EXPORT")).toBeNull();
  });
});

describe("BGPPeer", () => {
  test("defaults peerPort to 179 and keeps what was given", () => {
    const spec = {
      ...PEER,
      sourceAddress: "10.0.0.2",
      holdTime: "1m30s",
      keepaliveTime: "30s",
      connectTime: "5s",
      routerID: "10.0.0.2",
      nodeSelectors: [{ matchLabels: { "metallb-role": "bgp-speaker" } }],
      passwordSecret: { name: "bgp-auth", namespace: "metallb-system" },
      bfdProfile: "fast",
      enableGracefulRestart: true,
      ebgpMultiHop: true,
      vrf: "", // the default VRF; a named one is refused (config/validate.ts)
      dualStackAddressFamily: true,
    };
    const c = valid(manifest("BFDProfile", {}).replace("name: x", "name: fast"), manifest("BGPPeer", spec));
    expect(c.peers[0]?.spec).toEqual({ ...spec, peerPort: 179 });
  });

  test("dynamicASN instead of peerASN, interface (unnumbered) instead of peerAddress", () => {
    const c = valid(
      manifest("BGPPeer", { myASN: 64500, dynamicASN: "external", interface: "eth1", peerPort: 1790 }),
    );
    expect(c.peers[0]?.spec).toEqual({
      myASN: 64500,
      dynamicASN: "external",
      interface: "eth1",
      peerPort: 1790,
    });
  });

  test("a v1beta1 peer is converted to v1beta2, its fields unchanged", () => {
    const c = valid(
      manifest("BGPPeer", { ...PEER, holdTime: "90s" }).replace("metallb.io/v1beta2", "metallb.io/v1beta1"),
    );
    expect(c.peers[0]?.apiVersion).toBe("metallb.io/v1beta2");
    expect(c.peers[0]?.spec).toEqual({ ...PEER, holdTime: "90s", peerPort: 179 });
  });

  test("holdTime 0 turns keepalives off; then keepaliveTime must be 0 too", () => {
    expect(valid(manifest("BGPPeer", { ...PEER, holdTime: "0", keepaliveTime: "0s" })).peers).toHaveLength(1);
    expect(refused(manifest("BGPPeer", { ...PEER, holdTime: "0s", keepaliveTime: "30s" }))).toEqual([
      "spec.keepaliveTime: must be 0 when holdTime is 0",
    ]);
  });

  test.each([
    [{ peerASN: 4294967296 }, "spec.peerASN: must be at most 4294967295"],
    [{ myASN: 64500.5 }, "spec.myASN: must be an integer, not number 64500.5"],
    [{ myASN: "64500" }, 'spec.myASN: must be a number, not string "64500"'],
    [{ peerAddress: "router.lab" }, "spec.peerAddress: must be an IP address"],
    [{ peerPort: 0 }, "spec.peerPort: must be at least 1"],
    [{ holdTime: "90" }, 'spec.holdTime: must be a duration such as "90s", "1m30s" or "500ms"'],
    [{ dynamicASN: "both", peerASN: undefined }, 'spec.dynamicASN: must be one of "internal", "external"'],
    [{ password: "x".repeat(81) }, "spec.password: must be at most 80 characters (TCP-MD5 key)"],
    [{ routerID: "fd00::1" }, "spec.routerID: must be an IPv4 address"],
  ])("refuses %j", (change, message) => {
    expect(refused(manifest("BGPPeer", { ...PEER, ...change }))).toEqual([message]);
  });

  test("ebgpMultiHop makes no sense inside one AS", () => {
    expect(
      refused(
        manifest("BGPPeer", {
          myASN: 64500,
          dynamicASN: "internal",
          peerAddress: "10.0.0.1",
          ebgpMultiHop: true,
        }),
      ),
    ).toEqual(['spec.ebgpMultiHop: cannot be set with dynamicASN "internal"']);
  });

  test("durations are Go durations", () => {
    expect(durationMs("1m30s")).toBe(90_000);
    expect(durationMs("1.5h")).toBe(5_400_000);
    expect(durationMs("250ms")).toBe(250);
    expect(durationMs("0")).toBe(0);
  });
});

describe("BFDProfile", () => {
  test("MetalLB's defaults: 300 ms intervals, multiplier 3, echo 50 ms, TTL 254, echo and passive off", () => {
    const defaults = {
      receiveInterval: 300,
      transmitInterval: 300,
      detectMultiplier: 3,
      echoInterval: 50,
      echoMode: false,
      passiveMode: false,
      minimumTtl: 254,
    };
    expect(valid(manifest("BFDProfile", {})).bfdProfiles[0]?.spec).toEqual(defaults);
    expect(valid(manifest("BFDProfile", undefined)).bfdProfiles[0]?.spec).toEqual(defaults);
  });

  test("the limits themselves are allowed", () => {
    const spec = {
      receiveInterval: 10,
      transmitInterval: 60000,
      detectMultiplier: 255,
      echoInterval: 10,
      minimumTtl: 1,
      echoMode: false,
      passiveMode: true,
    };
    expect(valid(manifest("BFDProfile", spec)).bfdProfiles[0]?.spec).toEqual(spec);
  });

  test("echo mode is refused with a message that says what to do (vipd runs BFD without it)", () => {
    expect(refused(manifest("BFDProfile", { echoMode: true }))).toEqual([
      "spec.echoMode: BFD echo mode (RFC 5880 §6.4) is not supported by vipd; set echoMode: false (control packets alone detect failures)",
    ]);
  });

  test.each([
    [{ receiveInterval: 9 }, "spec.receiveInterval: must be at least 10 ms"],
    [{ transmitInterval: 60001 }, "spec.transmitInterval: must be at most 60000 ms"],
    [{ echoInterval: 2.5 }, "spec.echoInterval: must be a whole number of milliseconds, not number 2.5"],
    [{ detectMultiplier: 1 }, "spec.detectMultiplier: must be at least 2"],
    [{ minimumTtl: 255 }, "spec.minimumTtl: must be at most 254"],
    [{ echoMode: "true" }, 'spec.echoMode: must be a boolean, not string "true"'],
  ])("refuses %j", (spec, message) => {
    expect(refused(manifest("BFDProfile", spec))).toEqual([message]);
  });
});

describe("Community", () => {
  test("aliases need a name starting with a letter and a community value", () => {
    expect(
      refused(
        manifest("Community", {
          communities: [
            { name: "1st", value: "1:1" },
            { name: "ok", value: "1:2:3" },
          ],
        }),
      ),
    ).toEqual([
      "spec.communities[0].name: must start with a letter (letters, digits, - _ .)",
      'spec.communities[1].value: must be "a:b" (16-bit values) or "large:a:b:c" (32-bit values)',
    ]);
  });
});

describe("Service (the part vipd reads)", () => {
  test("defaults: type ClusterIP, externalTrafficPolicy Cluster, port protocol TCP", () => {
    const c = valid(manifest("Service", { ports: [{ port: 53, protocol: "UDP" }, { port: 80 }] }));
    const spec = c.services[0]?.spec;
    expect(spec?.type).toBe("ClusterIP");
    expect(spec?.externalTrafficPolicy).toBe("Cluster");
    expect(spec?.ports?.map((p) => p.protocol)).toEqual(["UDP", "TCP"]);
  });

  test("a Service read back from a cluster, status and all", () => {
    const c = valid(
      manifest(
        "Service",
        {
          type: "LoadBalancer",
          loadBalancerClass: "vipd.io/lb",
          ipFamilies: ["IPv4", "IPv6"],
          ipFamilyPolicy: "RequireDualStack",
          clusterIP: "10.96.0.10",
          clusterIPs: ["10.96.0.10", "fd00:96::10"],
          allocateLoadBalancerNodePorts: false,
          ports: [{ name: "dns", port: 53, protocol: "UDP", targetPort: 5353, nodePort: 31053 }],
        },
        { status: { loadBalancer: { ingress: [{ ip: "192.168.10.5", ipMode: "VIP" }] } } },
      ),
    );
    expect(c.services[0]?.status?.loadBalancer?.ingress?.[0]?.ip).toBe("192.168.10.5");
  });

  test.each([
    [
      { type: "Loadbalancer" },
      'spec.type: must be one of "ClusterIP", "NodePort", "LoadBalancer", "ExternalName"',
    ],
    [
      { ports: [{ port: 53, protocol: "udp" }] },
      'spec.ports[0].protocol: must be one of "TCP", "UDP", "SCTP"',
    ],
    [{ ports: [{ port: 65536 }] }, "spec.ports[0].port: must be at most 65535"],
    [{ ports: [{ protocol: "TCP" }] }, "spec.ports[0].port: is required"],
    [{ externalTrafficPolicy: "local" }, 'spec.externalTrafficPolicy: must be one of "Cluster", "Local"'],
    [{ ipFamilies: ["IPv4", "IPv6", "IPv4"] }, "spec.ipFamilies: must list at most two families"],
    [{ loadBalancerIP: "10.0.0.256" }, "spec.loadBalancerIP: must be an IP address"],
  ])("refuses %j", (spec, message) => {
    expect(refused(manifest("Service", spec))).toEqual([message]);
  });
});

describe("NodeSettings (vipd's own)", () => {
  test("defaults: API on 127.0.0.1:7473 with open metrics, no tokens, no local delivery", () => {
    // Other fields (members, cluster, xdp) belong to the cluster and XDP parts and are tested there.
    expect(valid(manifest("NodeSettings", undefined)).nodeSettings?.spec).toMatchObject({
      labels: {},
      interfaces: [],
      api: { listen: "127.0.0.1:7473", tokens: [], metricsOpen: true },
      localDelivery: false,
    });
  });

  test("a full node: name, labels, interfaces, TLS API with hashed tokens", () => {
    const spec = {
      nodeName: "edge-1",
      labels: { zone: "a" },
      interfaces: ["eth0"],
      api: {
        listen: "[::]:7473",
        tls: { certFile: "/etc/vipd/tls.crt", keyFile: "/etc/vipd/tls.key" },
        tokens: [{ name: "fleet", role: "admin" as const, hash: `sha256:${"ab".repeat(32)}` }],
        metricsOpen: false,
      },
      localDelivery: true,
      loadBalancerClass: "vipd.io/lb",
    };
    expect(valid(manifest("NodeSettings", spec)).nodeSettings?.spec).toMatchObject(spec);
  });

  test("refuses a listen address without a port", () => {
    expect(refused(manifest("NodeSettings", { api: { listen: "0.0.0.0" } }))).toEqual([
      "spec.api.listen: must be HOST:PORT",
    ]);
  });
});

describe("Namespace", () => {
  test("only its name and labels matter (for namespaceSelectors)", () => {
    const c = valid(
      YAML.stringify({
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: "shop", labels: { team: "web" } },
      }),
    );
    expect(c.namespaces[0]?.metadata.labels).toEqual({ team: "web" });
  });
});
