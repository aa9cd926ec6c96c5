/**
 * Cross-object validation: the checks that need more than one object. Each story shows the
 * mistake and, next to it, the nearly identical configuration that is fine.
 */
import { describe, expect, test } from "bun:test";
import { configFromText, formatProblem } from "../../src/config/index.ts";
import type { BGPPeer, IPAddressPool, Service } from "../../src/config/schemas.ts";
import { advertisedPools, annotation, isEbgp, serviceKey } from "../../src/config/validate.ts";

const problems = (...docs: string[]) =>
  configFromText(docs.join("---\n"), "m.yaml").problems.map(formatProblem);
const ok = (...docs: string[]) => expect(problems(...docs)).toEqual([]);

const pool = (name: string, addresses: string[], labels = "") => `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: ${name}${labels ? `\n  labels: ${labels}` : ""}
spec:
  addresses: [${addresses.join(", ")}]
`;
const bgpAdv = (name: string, spec: string) => `apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: ${name}
spec:
${spec}`;
const l2Adv = (name: string, spec: string) => `apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: ${name}
spec:
${spec}`;
const peer = (name: string, extra = "") => `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: ${name}
spec:
  myASN: 64500
  peerASN: 64501
  peerAddress: 10.255.0.1
${extra}`;
const bfd = (name: string, spec = "{}") => `apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata:
  name: ${name}
spec: ${spec}
`;
const service = (annotations: Record<string, string>, spec = "", ns = "shop", name = "web") => `apiVersion: v1
kind: Service
metadata:
  name: ${name}${ns === "" ? "" : `\n  namespace: ${ns}`}
  annotations: ${JSON.stringify(annotations)}
spec:
  type: LoadBalancer
${spec}`;

describe("names", () => {
  test("a name is unique per kind, not across kinds", () => {
    ok(pool("edge", ["10.0.0.0/24"]), l2Adv("edge", "  {}\n"), bgpAdv("edge", "  {}\n"), bfd("edge"));
  });

  test("two pools with one name: the second is reported, pointing at the first", () => {
    expect(problems(pool("edge", ["10.0.0.0/24"]), pool("edge", ["10.0.1.0/24"]))).toEqual([
      'm.yaml:11: IPAddressPool/edge: metadata.name: duplicate IPAddressPool "edge" (first defined at line 4); rename one',
    ]);
  });

  test("Services are namespaced: the same name in two namespaces is two Services", () => {
    ok(service({}, "", "shop"), service({}, "", "blog"));
    // No namespace means "default".
    expect(problems(service({}, "", "default"), service({}, "", ""))).toEqual([
      'm.yaml:13: Service/web: metadata.name: duplicate Service "web" (first defined at line 4); rename one',
    ]);
  });
});

describe("overlapping pools", () => {
  test("adjacent blocks do not overlap", () => {
    ok(pool("low", ["10.0.0.0/25"]), pool("high", ["10.0.0.128/25"]));
  });

  test("IPv4 and IPv6 addresses with the same number do not overlap", () => {
    ok(pool("v4", ["0.0.0.1"]), pool("v6", ["::1"]));
  });

  test("one address shared at the edge of two ranges is an overlap", () => {
    expect(problems(pool("a", ["10.0.0.1-10.0.0.10"]), pool("b", ["10.0.0.10-10.0.0.20"]))).toEqual([
      'm.yaml:13: IPAddressPool/b: spec.addresses[0]: 10.0.0.10-10.0.0.20 overlaps 10.0.0.1-10.0.0.10 of pool "a"; pools must not share addresses',
    ]);
  });

  test("an overlap with a wide block is found even after unrelated smaller blocks inside it", () => {
    // 10.0.0.0/16 is first; 10.0.1.0/24 and 10.0.9.0/24 both lie inside it (and not in each other).
    expect(
      problems(pool("wide", ["10.0.0.0/16"]), pool("one", ["10.0.1.0/24"]), pool("nine", ["10.0.9.0/24"])),
    ).toEqual([
      'm.yaml:13: IPAddressPool/one: spec.addresses[0]: 10.0.1.0/24 overlaps 10.0.0.0/16 of pool "wide"; pools must not share addresses',
      'm.yaml:20: IPAddressPool/nine: spec.addresses[0]: 10.0.9.0/24 overlaps 10.0.0.0/16 of pool "wide"; pools must not share addresses',
    ]);
  });
});

describe("references by name", () => {
  test("advertisements, peers and Services that name existing objects are fine", () => {
    ok(
      pool("edge", ["10.0.0.0/24"]),
      l2Adv("l2", "  ipAddressPools: [edge]\n"),
      bfd("fast"),
      peer("r1", "  bfdProfile: fast\n"),
      bgpAdv("adv", "  ipAddressPools: [edge]\n  peers: [r1]\n"),
      service({ "metallb.io/address-pool": "edge" }),
    );
  });

  test("each missing name is reported where it is used", () => {
    expect(
      problems(
        l2Adv("l2", "  ipAddressPools: [edge]\n"),
        peer("r1", "  bfdProfile: fast\n"),
        bgpAdv("adv", "  ipAddressPools: [edge]\n  peers: [r2]\n"),
        service({ "metallb.io/address-pool": "edge" }),
      ),
    ).toEqual([
      'm.yaml:6: L2Advertisement/l2: spec.ipAddressPools[0]: IPAddressPool "edge" does not exist',
      'm.yaml:16: BGPPeer/r1: spec.bfdProfile: BFDProfile "fast" does not exist',
      'm.yaml:23: BGPAdvertisement/adv: spec.ipAddressPools[0]: IPAddressPool "edge" does not exist',
      'm.yaml:24: BGPAdvertisement/adv: spec.peers[0]: BGPPeer "r2" does not exist',
      'm.yaml:31: Service/web: metadata.annotations["metallb.io/address-pool"]: IPAddressPool "edge" does not exist',
    ]);
  });

  test("pool selectors that match nothing are not an error (the pools may come later)", () => {
    ok(l2Adv("l2", "  ipAddressPoolSelectors: [{matchLabels: {tier: gold}}]\n"));
  });
});

describe("aggregation lengths", () => {
  test("a /24 pool can be aggregated to /24 but not to /23", () => {
    ok(pool("edge", ["10.0.0.0/24"]), bgpAdv("agg", "  aggregationLength: 24\n"));
    expect(problems(pool("edge", ["10.0.0.0/24"]), bgpAdv("agg", "  aggregationLength: 23\n"))).toEqual([
      'm.yaml:13: BGPAdvertisement/agg: spec.aggregationLength: /23 is wider than block 10.0.0.0/24 of pool "edge", so it would announce addresses outside the pool; use 24 or more',
    ]);
  });

  test("only the pools the advertisement covers count, each family against its own length", () => {
    const pools = [pool("gold", ["10.0.0.0/24", "fd00::/64"], "{tier: gold}"), pool("other", ["10.1.0.7"])];
    ok(
      ...pools,
      bgpAdv(
        "agg",
        "  ipAddressPoolSelectors: [{matchLabels: {tier: gold}}]\n  aggregationLength: 24\n  aggregationLengthV6: 64\n",
      ),
    );
    expect(problems(...pools, bgpAdv("agg", "  aggregationLength: 24\n  aggregationLengthV6: 48\n"))).toEqual(
      [
        'm.yaml:21: BGPAdvertisement/agg: spec.aggregationLength: /24 is wider than block 10.1.0.7/32 of pool "other", so it would announce addresses outside the pool; use 32 or more',
        'm.yaml:22: BGPAdvertisement/agg: spec.aggregationLengthV6: /48 is wider than block fd00::/64 of pool "gold", so it would announce addresses outside the pool; use 64 or more',
      ],
    );
  });

  test("a range counts by its widest block, as MetalLB's lowestMask", () => {
    // 10.0.0.0-10.0.0.128 is 10.0.0.0/25 plus 10.0.0.128/32: /25 is accepted, /24 is not.
    ok(pool("edge", ["10.0.0.0-10.0.0.128"]), bgpAdv("agg", "  aggregationLength: 25\n"));
    expect(
      problems(pool("edge", ["10.0.0.0-10.0.0.128"]), bgpAdv("agg", "  aggregationLength: 24\n")),
    ).toEqual([
      'm.yaml:13: BGPAdvertisement/agg: spec.aggregationLength: /24 is wider than 10.0.0.0/25, the widest block of range 10.0.0.0-10.0.0.128 in pool "edge"; use 25 or more',
    ]);
  });
});

describe("community aliases", () => {
  const community = (name: string, aliases: string) => `apiVersion: metallb.io/v1beta1
kind: Community
metadata:
  name: ${name}
spec:
  communities: ${aliases}
`;
  test("an advertisement may use literals and aliases defined in any Community object", () => {
    ok(
      community("site", "[{name: no-export, value: '65535:65281'}]"),
      bgpAdv("adv", "  communities: [no-export, '64500:1']\n"),
    );
  });

  test("an alias defined twice is ambiguous", () => {
    expect(
      problems(
        community("site", "[{name: blackhole, value: '65535:666'}]"),
        community("more", "[{name: blackhole, value: '64500:666'}]"),
      ),
    ).toEqual([
      'm.yaml:13: Community/more: spec.communities[0].name: community alias "blackhole" is already defined in Community "site"',
    ]);
  });
});

describe("BFD echo mode", () => {
  test("is refused: vipd runs BFD without echo, and with IPv6 pools MetalLB's own rule says why", () => {
    ok(pool("v4", ["10.0.0.0/24"]), bfd("no-echo", "{echoMode: false}"));
    expect(problems(pool("v4", ["10.0.0.0/24"]), bfd("echo", "{echoMode: true}"))).toEqual([
      "m.yaml:12: BFDProfile/echo: spec.echoMode: BFD echo mode (RFC 5880 §6.4) is not supported by vipd; set echoMode: false (control packets alone detect failures)",
    ]);
    expect(
      problems(pool("v4", ["10.0.0.0/24"]), pool("v6", ["fd00::/64"]), bfd("echo", "{echoMode: true}")),
    ).toEqual([
      "m.yaml:19: BFDProfile/echo: spec.echoMode: BFD echo mode cannot be used while an IPAddressPool has IPv6 addresses",
    ]);
  });
});

describe("Services asking for addresses", () => {
  test("the annotation and spec.loadBalancerIP may both be given when they agree (in any spelling)", () => {
    ok(service({ "metallb.io/loadBalancerIPs": "fd00::0:1" }, "  loadBalancerIP: fd00:0::1\n"));
    ok(service({ "metallb.io/loadBalancerIPs": "10.0.0.1, fd00::1" }, "  loadBalancerIP: 10.0.0.1\n"));
  });

  test("when they disagree, spec.loadBalancerIP is the one to remove", () => {
    expect(
      problems(
        service({ "metallb.universe.tf/loadBalancerIPs": "10.0.0.1" }, "  loadBalancerIP: 10.0.0.2\n"),
      ),
    ).toEqual([
      'm.yaml:9: Service/web: spec.loadBalancerIP: 10.0.0.2 disagrees with annotation metallb.universe.tf/loadBalancerIPs "10.0.0.1"; remove spec.loadBalancerIP (it is deprecated)',
    ]);
  });

  test("one address per family", () => {
    expect(problems(service({ "metallb.io/loadBalancerIPs": "fd00::1,fd00::2" }))).toEqual([
      'm.yaml:6: Service/web: metadata.annotations["metallb.io/loadBalancerIPs"]: must list at most one IPv4 and one IPv6 address',
    ]);
  });

  test("the metallb.io/ prefix wins over the older metallb.universe.tf/", () => {
    const text = service({ "metallb.universe.tf/address-pool": "old", "metallb.io/address-pool": "new" });
    const r = configFromText(`${pool("new", ["10.0.0.0/24"])}---\n${text}`);
    expect(r.problems).toEqual([]);
    if (!r.ok) return;
    const svc = r.config.services[0] as Service;
    expect(annotation(svc, "address-pool")).toEqual({ value: "new", prefix: "metallb.io/" });
    expect(annotation(svc, "allow-shared-ip")).toBeUndefined();
    expect(serviceKey(svc)).toBe("shop/web");
  });
});

describe("helpers the rest of vipd uses", () => {
  const p = (name: string, labels?: Record<string, string>): IPAddressPool => ({
    apiVersion: "metallb.io/v1beta1",
    kind: "IPAddressPool",
    metadata: { name, labels },
    spec: { addresses: ["10.0.0.0/24"], autoAssign: true, avoidBuggyIPs: false },
  });
  const pools = [p("a", { tier: "gold" }), p("b"), p("c", { tier: "bronze" })];

  test("advertisedPools: all pools when none are named or selected; otherwise named ones plus selected ones", () => {
    const names = (ps: IPAddressPool[]) => ps.map((x) => x.metadata.name);
    expect(names(advertisedPools({}, pools))).toEqual(["a", "b", "c"]);
    expect(names(advertisedPools({ ipAddressPools: ["b"] }, pools))).toEqual(["b"]);
    expect(
      names(advertisedPools({ ipAddressPoolSelectors: [{ matchLabels: { tier: "gold" } }] }, pools)),
    ).toEqual(["a"]);
    expect(
      names(
        advertisedPools(
          { ipAddressPools: ["c"], ipAddressPoolSelectors: [{ matchLabels: { tier: "gold" } }] },
          pools,
        ),
      ),
    ).toEqual(["a", "c"]);
  });

  test("isEbgp: by AS numbers, or by dynamicASN", () => {
    const peerOf = (spec: Partial<BGPPeer["spec"]>): BGPPeer => ({
      apiVersion: "metallb.io/v1beta2",
      kind: "BGPPeer",
      metadata: { name: "r" },
      spec: { myASN: 64500, peerPort: 179, ...spec },
    });
    expect(isEbgp(peerOf({ peerASN: 64501 }))).toBe(true);
    expect(isEbgp(peerOf({ peerASN: 64500 }))).toBe(false);
    expect(isEbgp(peerOf({ dynamicASN: "external" }))).toBe(true);
    expect(isEbgp(peerOf({ dynamicASN: "internal" }))).toBe(false);
  });
});
