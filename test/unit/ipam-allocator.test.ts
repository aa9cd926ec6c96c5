/**
 * Allocator stories: pools, requests and IP families (MetalLB semantics, see src/ipam).
 */

import { describe, expect, test } from "bun:test";
import { IPAddressPool as PoolSchema, Service as ServiceSchema } from "../../src/config/schemas.ts";
import { Allocator, reasonMessage, warningMessage } from "../../src/ipam/index.ts";
import { ips, pool, refusal, svc } from "./ipam-fixtures.ts";

function alloc(...pools: Parameters<typeof pool>[]): Allocator {
  const a = new Allocator();
  const r = a.setPools(pools.map((p) => pool(...p)));
  if (!r.ok) throw new Error(r.errors.join("; "));
  return a;
}

describe("inputs", () => {
  test("objects validated by the config layer are taken as they are (defaults applied there)", () => {
    const p = PoolSchema.parse({
      apiVersion: "metallb.io/v1beta1",
      kind: "IPAddressPool",
      metadata: { name: "lan", namespace: "metallb-system" },
      spec: { addresses: ["192.0.2.0/30", "2001:db8::/126"] },
    });
    const s = ServiceSchema.parse({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web", annotations: { "metallb.io/allow-shared-ip": "k" } },
      spec: { type: "LoadBalancer", ports: [{ port: 80 }], ipFamilyPolicy: "RequireDualStack" },
    });
    const a = new Allocator();
    expect(a.setPools([p]).ok).toBe(true);
    const r = a.allocate(s);
    expect(r).toMatchObject({ ok: true, key: "default/web", ips: ["192.0.2.0", "2001:db8::"], pool: "lan" });
    expect(a.assignment("default/web")).toMatchObject({ ports: ["80/TCP"], sharingKey: "k", backendKey: "" });
  });
});

describe("pools", () => {
  test("a gets the lowest address of the pool, b the next one, and the pool runs out with a reason", () => {
    const a = alloc(["lan", ["192.0.2.10-192.0.2.11"]]);
    expect(ips(a.allocate(svc("a")))).toEqual(["192.0.2.10"]);
    expect(ips(a.allocate(svc("b")))).toEqual(["192.0.2.11"]);
    expect(refusal(a.allocate(svc("c")))).toBe("no available IPs");
  });

  test("CIDRs, ranges and single addresses of both families mix in one pool, taken in listed order", () => {
    const a = alloc(["mix", ["2001:db8::5", "198.51.100.7", "192.0.2.0/31", "203.0.113.1-203.0.113.2"]]);
    const got = ["a", "b", "c", "d", "e"].map((n) => ips(a.allocate(svc(n)))[0]);
    expect(got).toEqual(["198.51.100.7", "192.0.2.0", "192.0.2.1", "203.0.113.1", "203.0.113.2"]);
    expect(ips(a.allocate(svc("v6", { cips: ["fd00::1"] })))).toEqual(["2001:db8::5"]);
  });

  test("an autoAssign: false pool is used only when asked for, by annotation or by address", () => {
    const a = alloc(["manual", ["192.0.2.0/30"], { autoAssign: false }]);
    expect(refusal(a.allocate(svc("a")))).toBe("no auto-assign pool serves ns/a");
    expect(ips(a.allocate(svc("b", { ann: { "metallb.io/address-pool": "manual" } })))).toEqual([
      "192.0.2.0",
    ]);
    expect(ips(a.allocate(svc("c", { ip: "192.0.2.3" })))).toEqual(["192.0.2.3"]);
  });

  test("avoidBuggyIPs skips .255 and .0, is refused on request, and is left out of the capacity", () => {
    const a = alloc(["p", ["192.0.2.254-192.0.3.1", "10.0.0.0/16"], { avoidBuggyIPs: true }]);
    expect(ips(a.allocate(svc("a")))).toEqual(["192.0.2.254"]);
    expect(ips(a.allocate(svc("b")))).toEqual(["192.0.3.1"]);
    expect(ips(a.allocate(svc("c")))).toEqual(["10.0.0.1"]);
    expect(refusal(a.allocate(svc("d", { ip: "192.0.3.0" })))).toBe(
      '192.0.3.0 is skipped by pool "p" (avoidBuggyIPs)',
    );
    expect(a.usage("p")![4]).toEqual({
      assigned: 3n,
      available: 2n + 65536n - 512n - 3n,
      capacity: 2n + 65536n - 512n,
    });
  });

  test("avoidBuggyIPs: after x.254 comes (x+1).1, also when the pool is nearly full", () => {
    const a = alloc(["p", ["10.0.0.0/22"], { avoidBuggyIPs: true }]);
    for (let i = 0; i < 254 * 4; i++) a.allocate(svc(`s${i}`));
    expect(refusal(a.allocate(svc("full")))).toBe("no available IPs");
    a.release("ns/s254"); // 10.0.1.1
    a.release("ns/s253"); // 10.0.0.254
    expect(ips(a.allocate(svc("x")))).toEqual(["10.0.0.254"]);
    expect(ips(a.allocate(svc("y")))).toEqual(["10.0.1.1"]);
  });

  test("lower priority number wins; unprioritised serviceAllocation pools next; plain pools last", () => {
    const a = alloc(
      ["plain", ["192.0.2.1"]],
      ["unprio", ["192.0.2.2"], { serviceAllocation: { namespaces: ["ns"] } }],
      ["p10", ["192.0.2.3"], { serviceAllocation: { priority: 10, namespaces: ["ns"] } }],
      ["p5", ["192.0.2.4"], { serviceAllocation: { priority: 5, namespaces: ["ns"] } }],
    );
    expect(a.poolNames()).toEqual(["p5", "p10", "unprio", "plain"]);
    expect(["a", "b", "c", "d"].map((n) => ips(a.allocate(svc(n)))[0])).toEqual([
      "192.0.2.4",
      "192.0.2.3",
      "192.0.2.2",
      "192.0.2.1",
    ]);
  });

  // Changed from "a pool whose serviceAllocation sets only a priority serves every Service": MetalLB's
  // Allocate tries pools with a serviceAllocation only through the namespaces and selectors they
  // name (pinnedPoolsForService), and skips them among the rest.
  test("a pool whose serviceAllocation names only a priority serves explicit requests, never automatic ones", () => {
    const a = alloc(
      ["first", ["203.0.113.0/30"], { serviceAllocation: { priority: 1 } }],
      ["lan", ["192.0.2.0/30"]],
    );
    expect(ips(a.allocate(svc("x")))).toEqual(["192.0.2.0"]);
    expect(ips(a.allocate(svc("y", { ann: { "metallb.io/address-pool": "first" } })))).toEqual([
      "203.0.113.0",
    ]);
    expect(ips(a.allocate(svc("z", { ip: "203.0.113.2" })))).toEqual(["203.0.113.2"]);
    const only = alloc(["first", ["203.0.113.0/30"], { serviceAllocation: { priority: 1 } }]);
    expect(refusal(only.allocate(svc("x")))).toBe("no auto-assign pool serves ns/x");
  });

  test("namespaces, namespaceSelectors and serviceSelectors decide who may use a pool", () => {
    const a = new Allocator({ namespaceLabels: (ns) => (ns === "shop" ? { team: "web" } : undefined) });
    a.setPools([
      pool("byname", ["192.0.2.1"], { serviceAllocation: { priority: 1, namespaces: ["prod"] } }),
      pool("bylabel", ["192.0.2.2"], {
        serviceAllocation: { priority: 2, namespaceSelectors: [{ matchLabels: { team: "web" } }] },
      }),
      pool("bysvc", ["192.0.2.3"], {
        serviceAllocation: {
          priority: 3,
          serviceSelectors: [{ matchExpressions: [{ key: "tier", operator: "In", values: ["edge"] }] }],
        },
      }),
      pool("rest", ["192.0.2.9"]),
    ]);
    expect(ips(a.allocate(svc("x", { ns: "shop" })))).toEqual(["192.0.2.2"]);
    expect(ips(a.allocate(svc("y", { ns: "dev", labels: { tier: "edge" } })))).toEqual(["192.0.2.3"]);
    expect(ips(a.allocate(svc("z", { ns: "prod" })))).toEqual(["192.0.2.1"]);
    expect(refusal(a.allocate(svc("w", { ns: "dev", ip: "192.0.2.1" })))).toBe(
      'pool "byname" does not serve dev/w (namespace not in its serviceAllocation)',
    );
    expect(refusal(a.allocate(svc("v", { ns: "dev", ann: { "metallb.io/address-pool": "bysvc" } })))).toBe(
      'pool "bysvc" does not serve dev/v (labels match none of its serviceSelectors)',
    );
    expect(ips(a.allocate(svc("u", { ns: "dev" })))).toEqual(["192.0.2.9"]);
    expect(refusal(a.allocate(svc("t", { ns: "dev" })))).toBe("no available IPs");
  });

  test("invalid or overlapping pools are refused as a whole and change nothing", () => {
    const a = alloc(["lan", ["192.0.2.0/30"]]);
    ips(a.allocate(svc("a")));
    const bad = a.setPools([
      pool("x", ["192.0.2.0/24"]),
      pool("y", ["192.0.2.128/25"]),
      pool("z", ["nonsense"]),
    ]);
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.errors).toContain(
        'pool "y": 192.0.2.128-192.0.2.255 overlaps 192.0.2.0-192.0.2.255 of pool "x"',
      );
      expect(bad.errors).toContain('pool "z": "nonsense" is not an IP address, CIDR or range');
    }
    expect(a.poolNames()).toEqual(["lan"]);
    expect(a.assignment("ns/a")).toMatchObject({ pool: "lan", ips: ["192.0.2.0"] });
  });

  test("with no pools at all, the refusal says so", () => {
    expect(refusal(new Allocator().allocate(svc("a")))).toBe("no address pools are configured");
  });
});

describe("requests", () => {
  test("spec.loadBalancerIP is honoured, or refused with a reason, never substituted", () => {
    const a = alloc(["lan", ["192.0.2.0/24"]]);
    expect(ips(a.allocate(svc("a", { ip: "192.0.2.77" })))).toEqual(["192.0.2.77"]);
    expect(refusal(a.allocate(svc("b", { ip: "198.51.100.9" })))).toBe("198.51.100.9 is not in any pool");
    expect(refusal(a.allocate(svc("c", { ip: "192.0.2.300" })))).toBe(
      'invalid spec.loadBalancerIP "192.0.2.300"',
    );
  });

  test("the loadBalancerIPs annotation asks for dual-stack addresses, in either order", () => {
    const a = alloc(["lan", ["192.0.2.0/24", "2001:db8::/64"]]);
    const r = a.allocate(
      svc("a", {
        cips: ["10.96.0.1", "fd00::1"],
        policy: "RequireDualStack",
        ann: { "metallb.io/loadBalancerIPs": "2001:db8::10, 192.0.2.10" },
      }),
    );
    expect(ips(r)).toEqual(["192.0.2.10", "2001:db8::10"]);
  });

  test("loadBalancerIP and the loadBalancerIPs annotation together are a conflict, not a guess", () => {
    const a = alloc(["lan", ["192.0.2.0/24"]]);
    const r = a.allocate(svc("a", { ip: "192.0.2.1", ann: { "metallb.io/loadBalancerIPs": "192.0.2.2" } }));
    expect(refusal(r)).toBe("spec.loadBalancerIP and metallb.io/loadBalancerIPs are both set; set only one");
    expect(a.assignments()).toEqual([]);
  });

  test("malformed or impossible address lists are refused", () => {
    const a = alloc(["lan", ["192.0.2.0/24", "2001:db8::/64"]]);
    const ann = (v: string) => ({ ann: { "metallb.io/loadBalancerIPs": v } });
    expect(refusal(a.allocate(svc("a", ann("192.0.2.1,bogus"))))).toBe(
      'invalid metallb.io/loadBalancerIPs "192.0.2.1,bogus": "bogus" is not an IP address',
    );
    expect(refusal(a.allocate(svc("b", ann("192.0.2.1,192.0.2.2"))))).toBe(
      "requested IPs 192.0.2.1, 192.0.2.2: both are of the same family",
    );
    expect(refusal(a.allocate(svc("c", ann("2001:db8::1"))))).toBe(
      "requested IPs 2001:db8::1 do not match the Service's IP families (IPv4)",
    );
    expect(refusal(a.allocate(svc("d", { ...ann("192.0.2.1,2001:db8::1"), cips: ["10.96.0.1"] })))).toBe(
      "requested IPs 192.0.2.1, 2001:db8::1 do not match the Service's IP families (IPv4)",
    );
  });

  test("requested addresses must come from one pool, and from the requested pool if one is named", () => {
    const a = alloc(["v4", ["192.0.2.0/24"]], ["v6", ["2001:db8::/64"]]);
    const dual = { cips: ["10.96.0.1", "fd00::1"], policy: "RequireDualStack" as const };
    expect(
      refusal(
        a.allocate(svc("a", { ...dual, ann: { "metallb.io/loadBalancerIPs": "192.0.2.1,2001:db8::1" } })),
      ),
    ).toBe(
      'requested IPs 192.0.2.1, 2001:db8::1 are in different pools ("v4", "v6"); they must come from one pool',
    );
    expect(refusal(a.allocate(svc("b", { ip: "192.0.2.1", ann: { "metallb.io/address-pool": "v6" } })))).toBe(
      'requested IPs 192.0.2.1 are in pool "v4", not in the requested pool "v6"',
    );
    expect(refusal(a.allocate(svc("c", { ann: { "metallb.io/address-pool": "nope" } })))).toBe(
      'unknown pool "nope"',
    );
  });

  test("the address-pool annotation picks the pool; an exhausted pool is not silently replaced", () => {
    const a = alloc(["big", ["192.0.2.0/24"]], ["small", ["198.51.100.1"]]);
    const inSmall = { ann: { "metallb.io/address-pool": "small" } };
    expect(ips(a.allocate(svc("a", inSmall)))).toEqual(["198.51.100.1"]);
    expect(refusal(a.allocate(svc("b", inSmall)))).toBe('no available IPs in pool "small"');
  });

  test("deprecated metallb.universe.tf annotations work, are reported, and lose to metallb.io", () => {
    const a = alloc(["one", ["192.0.2.1"]], ["two", ["192.0.2.2"]]);
    const old = a.allocate(svc("a", { ann: { "metallb.universe.tf/address-pool": "two" } }));
    expect(ips(old)).toEqual(["192.0.2.2"]);
    expect(old.warnings.map(warningMessage)).toEqual([
      "metallb.universe.tf/address-pool is deprecated, use metallb.io/address-pool",
    ]);
    a.release("ns/a");
    const both = a.allocate(
      svc("b", { ann: { "metallb.universe.tf/address-pool": "two", "metallb.io/address-pool": "one" } }),
    );
    expect(ips(both)).toEqual(["192.0.2.1"]);
    expect(both.warnings.map(warningMessage)).toEqual([
      "metallb.universe.tf/address-pool is deprecated, use metallb.io/address-pool (ignored: metallb.io/address-pool is also set)",
    ]);
  });
});

describe("IP families", () => {
  const dualPool = (): Allocator => alloc(["lan", ["192.0.2.0/30", "2001:db8::/126"]]);

  test("an IPv6 single-stack Service (by its ClusterIP) gets an IPv6 address", () => {
    expect(ips(dualPool().allocate(svc("a", { cips: ["fd00::10"] })))).toEqual(["2001:db8::"]);
  });

  test("without ClusterIPs (bare appliance) the family follows the policy: SingleStack is IPv4", () => {
    const a = dualPool();
    expect(ips(a.allocate(svc("a", { cips: [] })))).toEqual(["192.0.2.0"]);
    expect(ips(a.allocate(svc("b", { cips: [], policy: "RequireDualStack" })))).toEqual([
      "192.0.2.1",
      "2001:db8::",
    ]);
  });

  test("RequireDualStack takes both families from one pool, or fails with a reason", () => {
    const a = alloc(
      ["v4only", ["192.0.2.0/30"], { serviceAllocation: { priority: 1, namespaces: ["ns"] } }],
      ["both", ["198.51.100.0/30", "2001:db8::/126"]],
    );
    const dual = { cips: ["10.96.0.1", "fd00::1"], policy: "RequireDualStack" as const };
    expect(ips(a.allocate(svc("a", dual)))).toEqual(["198.51.100.0", "2001:db8::"]);
    const b = alloc(["v4only", ["192.0.2.0/30"]]);
    expect(refusal(b.allocate(svc("a", dual)))).toBe("no available IPs (needs IPv4 and IPv6 from one pool)");
    expect(refusal(b.allocate(svc("c", { cips: ["10.96.0.1"], policy: "RequireDualStack" })))).toBe(
      "ipFamilyPolicy RequireDualStack needs IPv4 and IPv6 ClusterIPs; the Service has only IPv4",
    );
  });

  test("IPv6 primary (ClusterIPs order) puts the IPv6 address first", () => {
    const r = dualPool().allocate(svc("a", { cips: ["fd00::1", "10.96.0.1"], policy: "PreferDualStack" }));
    expect(ips(r)).toEqual(["2001:db8::", "192.0.2.0"]);
  });

  test("PreferDualStack prefers a pool with both families, else settles for the primary family", () => {
    const a = alloc(
      ["v4first", ["192.0.2.0/30"], { serviceAllocation: { priority: 1, namespaces: ["ns"] } }],
      ["both", ["198.51.100.0/30", "2001:db8::/126"]],
    );
    const prefer = { cips: ["10.96.0.1", "fd00::1"], policy: "PreferDualStack" as const };
    expect(ips(a.allocate(svc("a", prefer)))).toEqual(["198.51.100.0", "2001:db8::"]);
    const b = alloc(["v4only", ["192.0.2.0/30"]]);
    expect(ips(b.allocate(svc("a", prefer)))).toEqual(["192.0.2.0"]);
  });

  test("PreferDualStack later adds the missing family from the same pool, keeping the first address", () => {
    const a = alloc(["lan", ["192.0.2.0/30"]]);
    const s = svc("a", { cips: ["10.96.0.1", "fd00::1"], policy: "PreferDualStack" });
    expect(ips(a.allocate(s))).toEqual(["192.0.2.0"]);
    const again = a.allocate(s);
    expect(again.ok && again.changed).toBe(false);
    expect(again.warnings.map(warningMessage)).toEqual([
      'PreferDualStack: no IPv6 address available in pool "lan"',
    ]);
    a.setPools([pool("lan", ["192.0.2.0/30", "2001:db8::/126"])]);
    const r = a.allocate(s);
    expect(ips(r)).toEqual(["192.0.2.0", "2001:db8::"]);
    expect(r.ok && r.changed).toBe(true);
  });

  test("an unparsable ClusterIP is refused rather than guessed", () => {
    expect(reasonMessage({ kind: "InvalidClusterIP", value: "x" })).toBe(
      'ClusterIP "x" is not an IP address',
    );
    const r = dualPool().allocate(svc("a", { cips: ["10.96.0.999"] }));
    expect(refusal(r)).toBe('ClusterIP "10.96.0.999" is not an IP address');
  });
});
