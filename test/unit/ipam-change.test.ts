/**
 * Allocation when the world changes, story by story, each from the MetalLB case it follows
 * (internal/allocator/allocator_test.go, controller/controller_test.go, controller/service.go
 * convergeBalancer). MetalLB keeps what is still valid and nothing else: an address the new
 * configuration or the Service's new spec no longer allows is released (`replaced`, with why)
 * and the Service is re-addressed, or left without an address with the reason.
 */

import { describe, expect, test } from "bun:test";
import { Allocator, replacedMessage } from "../../src/ipam/index.ts";
import { ips, pool, refusal, svc, withStatus } from "./ipam-fixtures.ts";

const share = (k: string) => ({ "metallb.io/allow-shared-ip": k });

describe("pool changes (MetalLB allocator_test.go TestConfigReload)", () => {
  test("'set same config is no-op', 'expand pool', 'rename the pool', 'split pool': nothing valid moves", () => {
    const a = new Allocator();
    a.setPools([pool("test", ["192.0.2.0/30", "2001:db8::/126"])]);
    ips(a.allocate(svc("s1")));
    ips(a.allocate(svc("s2", { cips: ["fd00::1"] })));
    const stays = (pools: Parameters<Allocator["setPools"]>[0], p1: string, p2: string) => {
      const r = a.setPools(pools);
      expect(r.ok && r.invalidated).toEqual([]);
      const again = a.reconcile([svc("s1"), svc("s2", { cips: ["fd00::1"] })]);
      expect(again.results.map((x) => [x.key, x.ok && x.pool, x.ok && x.changed, x.replaced])).toEqual([
        ["ns/s1", p1, false, null],
        ["ns/s2", p2, false, null],
      ]);
      expect(a.assignment("ns/s1")?.ips).toEqual(["192.0.2.0"]);
      expect(a.assignment("ns/s2")?.ips).toEqual(["2001:db8::"]);
    };
    stays([pool("test", ["192.0.2.0/30", "2001:db8::/126"])], "test", "test");
    stays([pool("test", ["192.0.2.0/24", "2001:db8::/120"])], "test", "test");
    stays([pool("test2", ["192.0.2.0/30", "2001:db8::/126"])], "test2", "test2");
    stays(
      [pool("test", ["192.0.2.0/31", "2001:db8::2/127"]), pool("test2", ["192.0.2.2/31", "2001:db8::/127"])],
      "test",
      "test2",
    );
  });

  test("'can't shrink further, removing the service allocation': s1 is re-addressed inside the shrunk pool", () => {
    const a = new Allocator();
    a.setPools([pool("test", ["192.0.2.0/30"])]);
    expect(ips(a.allocate(svc("s1")))).toEqual(["192.0.2.0"]);
    expect(ips(a.allocate(svc("s2")))).toEqual(["192.0.2.1"]);
    // The pool shrinks to .1-.3: s1's .0 is gone, s2's .1 is still valid.
    const r = a.setPools([pool("test", ["192.0.2.1-192.0.2.3"])]);
    expect(r.ok && r.invalidated).toEqual([
      { key: "ns/s1", ips: ["192.0.2.0"], reason: { kind: "NotInAnyPool", ip: "192.0.2.0" } },
    ]);
    // The address is free at once; the next pass re-addresses s1 and keeps s2 where it was.
    expect(a.holders("192.0.2.0")).toEqual([]);
    const next = a.reconcile([svc("s1"), svc("s2")]);
    const [s2, s1] = next.results;
    expect(s2).toMatchObject({ key: "ns/s2", ok: true, ips: ["192.0.2.1"], changed: false, replaced: null });
    expect(s1).toMatchObject({ key: "ns/s1", ok: true, ips: ["192.0.2.2"], changed: true });
    expect(replacedMessage(s1!.replaced!)).toBe("released 192.0.2.0: 192.0.2.0 is not in any pool");
    // Reported once: the pass after that is quiet.
    const quiet = a.reconcile([svc("s1"), svc("s2")]);
    expect(quiet.results.every((x) => x.ok && !x.changed && x.replaced === null)).toBe(true);
  });

  test("a pool deleted: its Services move to another pool, or are left without an address and told why", () => {
    const a = new Allocator();
    a.setPools([pool("a-pool", ["192.0.2.0/32"]), pool("b-pool", ["198.51.100.0/31"])]);
    ips(a.allocate(svc("x", { ann: { "metallb.io/address-pool": "b-pool" } })));
    ips(a.allocate(svc("y", { ann: { "metallb.io/address-pool": "b-pool" } })));
    ips(a.allocate(svc("z")));
    a.setPools([pool("a-pool", ["192.0.2.0/32"]), pool("c-pool", ["203.0.113.0/32"])]);
    const r = a.reconcile([
      svc("x"), // no longer pinned: re-addressed from what is left
      svc("y", { ann: { "metallb.io/address-pool": "b-pool" } }), // still pinned to the deleted pool
      svc("z"),
    ]);
    expect(r.results.map((x) => [x.key, x.ok ? x.ips : refusal(x)])).toEqual([
      ["ns/z", ["192.0.2.0"]],
      ["ns/x", ["203.0.113.0"]],
      ["ns/y", 'unknown pool "b-pool"'],
    ]);
    expect(r.results.map((x) => x.replaced && replacedMessage(x.replaced))).toEqual([
      null,
      "released 198.51.100.0: 198.51.100.0 is not in any pool",
      "released 198.51.100.1: 198.51.100.1 is not in any pool",
    ]);
    expect(a.assignment("ns/y")).toBeUndefined();
  });

  test("'enable buggy IPs not allowed': the .0 holder is re-addressed, the others stay", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["10.0.0.0/24"])]);
    for (const n of ["a", "b", "c"]) ips(a.allocate(svc(n)));
    const on = a.setPools([pool("lan", ["10.0.0.0/24"], { avoidBuggyIPs: true })]);
    expect(on.ok && on.invalidated.map((x) => x.key)).toEqual(["ns/a"]);
    const r = a.reconcile([svc("a"), svc("b"), svc("c")]);
    expect(r.results.map((x) => [x.key, x.ok && x.ips[0]])).toEqual([
      ["ns/b", "10.0.0.1"],
      ["ns/c", "10.0.0.2"],
      ["ns/a", "10.0.0.3"],
    ]);
    expect(replacedMessage(r.results[2]!.replaced!)).toBe(
      'released 10.0.0.0: 10.0.0.0 is skipped by pool "lan" (avoidBuggyIPs)',
    );
    expect(a.usage("lan")![4]).toEqual({ assigned: 3n, available: 251n, capacity: 254n });
  });

  test("a pool that stops serving a namespace (serviceAllocation): its Services there move; elsewhere nothing moves", () => {
    const a = new Allocator();
    a.setPools([
      pool("team", ["192.0.2.0/30"], { serviceAllocation: { namespaces: ["ns", "other"] } }),
      pool("rest", ["198.51.100.0/30"]),
    ]);
    ips(a.allocate(svc("x")));
    ips(a.allocate(svc("w", { ns: "other" })));
    a.setPools([
      pool("team", ["192.0.2.0/30"], { serviceAllocation: { namespaces: ["other"] } }),
      pool("rest", ["198.51.100.0/30"]),
    ]);
    const r = a.reconcile([svc("x"), svc("w", { ns: "other" })]);
    expect(
      r.results.map((x) => [x.key, x.ok && x.ips[0], x.replaced && replacedMessage(x.replaced)]),
    ).toEqual([
      ["other/w", "192.0.2.1", null],
      [
        "ns/x",
        "198.51.100.0",
        'released 192.0.2.0: pool "team" does not serve ns/x (namespace not in its serviceAllocation)',
      ],
    ]);
  });

  test("relabelling a namespace out of a pool's namespaceSelectors re-addresses; a relabel back does not move it again", () => {
    let team = "web";
    const a = new Allocator({ namespaceLabels: () => ({ team }) });
    a.setPools([
      pool("web", ["192.0.2.0/30"], {
        serviceAllocation: { namespaceSelectors: [{ matchLabels: { team: "web" } }] },
      }),
      pool("any", ["198.51.100.0/30"]),
    ]);
    expect(ips(a.allocate(svc("x")))).toEqual(["192.0.2.0"]);
    team = "db";
    const r = a.setNamespaceLabels(() => ({ team }));
    expect(r.ok && r.invalidated.map((x) => x.key)).toEqual(["ns/x"]);
    expect(ips(a.allocate(svc("x")))).toEqual(["198.51.100.0"]);
    team = "web";
    expect(a.setNamespaceLabels(() => ({ team })).ok).toBe(true);
    // Still valid where it is now: MetalLB's stability, nothing valid moves.
    const back = a.allocate(svc("x"));
    expect(back).toMatchObject({ ok: true, ips: ["198.51.100.0"], changed: false, replaced: null });
  });

  test("a Service's labels change so the pool's serviceSelectors no longer match: re-addressed", () => {
    const a = new Allocator();
    a.setPools([
      pool("gold", ["192.0.2.0/30"], {
        serviceAllocation: { serviceSelectors: [{ matchLabels: { tier: "gold" } }] },
      }),
      pool("rest", ["198.51.100.0/30"]),
    ]);
    expect(ips(a.allocate(svc("x", { labels: { tier: "gold" } })))).toEqual(["192.0.2.0"]);
    const r = a.allocate(svc("x", { labels: { tier: "iron" } }));
    expect(ips(r)).toEqual(["198.51.100.0"]);
    expect(replacedMessage(r.replaced!)).toBe(
      'released 192.0.2.0: pool "gold" does not serve ns/x (labels match none of its serviceSelectors)',
    );
  });

  test("all pools deleted: every Service is left without an address, with the reason", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["192.0.2.0/30"])]);
    ips(a.allocate(svc("x")));
    a.setPools([]);
    const r = a.allocate(svc("x"));
    expect(refusal(r)).toBe("no address pools are configured");
    expect(r.replaced && replacedMessage(r.replaced)).toBe(
      "released 192.0.2.0: 192.0.2.0 is not in any pool",
    );
    expect(a.assignments()).toEqual([]);
  });
});

describe("a Service's own change (MetalLB allocator_test.go TestAssignment)", () => {
  test("'s4 changes its sharing key in place': a sole holder keeps its address", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["192.0.2.0/30"])]);
    ips(a.allocate(svc("s4", { ann: share("sharing") })));
    const r = a.allocate(svc("s4", { ann: share("share") }));
    expect(r).toMatchObject({ ok: true, ips: ["192.0.2.0"], changed: false, replaced: null });
    expect(a.assignment("ns/s4")?.sharingKey).toBe("share");
  });

  test("'s3 can't change its sharing key while keeping the same IP': the changed sharer moves, the other stays", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["192.0.2.0/30"])]);
    ips(a.allocate(svc("s4", { ports: [80], ann: share("share") })));
    expect(ips(a.allocate(svc("s3", { ports: [443], ann: share("share") })))).toEqual(["192.0.2.0"]);
    const r = a.allocate(svc("s3", { ports: [443], ann: share("othershare") }));
    expect(ips(r)).toEqual(["192.0.2.1"]);
    expect(replacedMessage(r.replaced!)).toBe(
      'released 192.0.2.0: 192.0.2.0 is used by ns/s4 and cannot be shared: sharing key "othershare" differs from "share"',
    );
    expect(a.holders("192.0.2.0")).toEqual(["ns/s4"]);
  });

  test("'s3 can't change its backend key while keeping the same IP': traffic policy Local with another selector moves it", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["192.0.2.0/30"])]);
    ips(a.allocate(svc("s4", { ports: [80], ann: share("k"), local: true, selector: { app: "x" } })));
    ips(a.allocate(svc("s3", { ports: [443], ann: share("k"), local: true, selector: { app: "x" } })));
    expect(a.holders("192.0.2.0")).toEqual(["ns/s3", "ns/s4"]);
    // The selector changes: under Local, sharers need identical selectors.
    const sel = a.allocate(svc("s3", { ports: [443], ann: share("k"), local: true, selector: { app: "y" } }));
    expect(ips(sel)).toEqual(["192.0.2.1"]);
    expect(replacedMessage(sel.replaced!)).toContain("externalTrafficPolicy Local requires the same policy");
    // The other sharer switches its traffic policy to Cluster while s5 shares with it: s5 moves.
    ips(a.allocate(svc("s5", { ports: [53], ann: share("k"), local: true, selector: { app: "x" } })));
    expect(a.holders("192.0.2.0")).toEqual(["ns/s4", "ns/s5"]);
    const pol = a.allocate(svc("s5", { ports: [53], ann: share("k"), selector: { app: "x" } }));
    expect(pol.ok && pol.ips).toEqual(["192.0.2.2"]);
    expect(a.holders("192.0.2.0")).toEqual(["ns/s4"]);
  });

  test("a sharer stops sharing (annotation removed) while another holds the address: it moves", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["192.0.2.0/30"])]);
    ips(a.allocate(svc("a", { ports: [80], ann: share("k") })));
    ips(a.allocate(svc("b", { ports: [443], ann: share("k") })));
    const r = a.allocate(svc("b", { ports: [443] }));
    expect(ips(r)).toEqual(["192.0.2.1"]);
    expect(replacedMessage(r.replaced!)).toBe(
      "released 192.0.2.0: 192.0.2.0 is used by ns/a and cannot be shared: this Service does not allow sharing (no allow-shared-ip annotation)",
    );
  });

  test("a sharer changes sharing key with no free address: left without one (never two rules on one address)", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["192.0.2.0/32"])]);
    ips(a.allocate(svc("a", { ports: [80], ann: share("k") })));
    ips(a.allocate(svc("b", { ports: [443], ann: share("k") })));
    const r = a.allocate(svc("b", { ports: [443], ann: share("other") }));
    expect(refusal(r)).toBe("no available IPs");
    expect(!r.ok && r.kept).toBe(null);
    expect(r.replaced?.from).toEqual(["192.0.2.0"]);
    expect(a.holders("192.0.2.0")).toEqual(["ns/a"]);
  });

  test("ipFamilyPolicy changes to RequireDualStack without two ClusterIPs: released, as MetalLB clears it", () => {
    const a = new Allocator();
    a.setPools([pool("ds", ["192.0.2.0/30", "2001:db8::/126"])]);
    ips(a.allocate(svc("x")));
    const r = a.allocate(svc("x", { policy: "RequireDualStack" }));
    expect(refusal(r)).toBe(
      "ipFamilyPolicy RequireDualStack needs IPv4 and IPv6 ClusterIPs; the Service has only IPv4",
    );
    expect(r.replaced && replacedMessage(r.replaced)).toContain(
      "released 192.0.2.0: ipFamilyPolicy RequireDualStack",
    );
    expect(a.assignment("ns/x")).toBeUndefined();
    // With two ClusterIPs it gets both families from one pool.
    const dual = a.allocate(svc("x", { policy: "RequireDualStack", cips: ["10.96.0.1", "fd00::1"] }));
    expect(ips(dual)).toEqual(["192.0.2.0", "2001:db8::"]);
  });

  test("controller_test.go 'IP from wrong ip-family assigned' via a policy change: a sharer turning RequireDualStack is released and allocated anew (both families, sharing rules applied again)", () => {
    const a = new Allocator();
    a.setPools([pool("ds", ["192.0.2.0/30", "2001:db8::/126"])]);
    ips(a.allocate(svc("a", { ports: [80], ann: share("k") })));
    ips(a.allocate(svc("b", { ports: [443], ann: share("k") })));
    const dual = { policy: "RequireDualStack" as const, cips: ["10.96.0.1", "fd00::1"] };
    const r = a.allocate(svc("b", { ...dual, ports: [443], ann: share("k") }));
    // Allocated anew: the lowest IPv4 it may use is still the shared one (same key, other port).
    expect(ips(r)).toEqual(["192.0.2.0", "2001:db8::"]);
    expect(r.replaced && replacedMessage(r.replaced)).toBe(
      "released 192.0.2.0: the Service's IP families changed",
    );
    // A newcomer on port 80 may not share a's IPv4 (port overlap) but may share b's IPv6.
    const c = a.allocate(svc("c", { ...dual, ports: [80], ann: share("k") }));
    expect(ips(c)).toEqual(["192.0.2.1", "2001:db8::"]);
    expect(a.holders("192.0.2.0")).toEqual(["ns/a", "ns/b"]);
  });

  test("SingleStack to PreferDualStack keeps the address and adds the other family from the same pool", () => {
    const a = new Allocator();
    a.setPools([pool("ds", ["192.0.2.0/30", "2001:db8::/126"])]);
    ips(a.allocate(svc("x")));
    const r = a.allocate(svc("x", { policy: "PreferDualStack", cips: ["10.96.0.1", "fd00::1"] }));
    expect(r).toMatchObject({ ok: true, ips: ["192.0.2.0", "2001:db8::"], changed: true, replaced: null });
  });
});

describe("requests (MetalLB controller_test.go TestControllerMutation)", () => {
  test("'request infeasible IP': the Service loses the address it held and gets none", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["192.0.2.0/30"])]);
    ips(a.allocate(svc("x", { ip: "192.0.2.1" })));
    const r = a.allocate(svc("x", { ip: "203.0.113.9" }));
    expect(refusal(r)).toBe("203.0.113.9 is not in any pool");
    expect(!r.ok && r.kept).toBe(null);
    expect(r.replaced && replacedMessage(r.replaced)).toBe(
      "released 192.0.2.1: the Service requests other IPs",
    );
    expect(a.holders("192.0.2.1")).toEqual([]);
  });

  test("'switch to a different specific pool' moves; 'unknown pool requested' leaves it without an address", () => {
    const a = new Allocator();
    a.setPools([pool("pool1", ["192.0.2.0/31"]), pool("pool2", ["198.51.100.6/32"], { autoAssign: false })]);
    ips(a.allocate(svc("x", { ann: { "metallb.io/address-pool": "pool1" } })));
    const sw = a.allocate(svc("x", { ann: { "metallb.io/address-pool": "pool2" } }));
    expect(ips(sw)).toEqual(["198.51.100.6"]);
    expect(replacedMessage(sw.replaced!)).toBe('released 192.0.2.0: the Service requests pool "pool2"');
    const unknown = a.allocate(svc("x", { ann: { "metallb.io/address-pool": "does-not-exist" } }));
    expect(refusal(unknown)).toBe('unknown pool "does-not-exist"');
    expect(replacedMessage(unknown.replaced!)).toBe(
      'released 198.51.100.6: the Service requests pool "does-not-exist"',
    );
    expect(a.assignments()).toEqual([]);
    // A Service naming an unknown pool from the start: refused with the same reason.
    expect(refusal(a.allocate(svc("y", { ann: { "metallb.io/address-pool": "nope" } })))).toBe(
      'unknown pool "nope"',
    );
  });

  test("'request IP from both svc.spec.LoadBalancerIP and custom annotation': MetalLB returns before clearing, the address is kept", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["192.0.2.0/30"])]);
    ips(a.allocate(svc("x")));
    const r = a.allocate(svc("x", { ip: "192.0.2.2", ann: { "metallb.io/loadBalancerIPs": "192.0.2.1" } }));
    expect(refusal(r)).toBe("spec.loadBalancerIP and metallb.io/loadBalancerIPs are both set; set only one");
    expect(!r.ok && r.kept?.ips).toEqual(["192.0.2.0"]);
    expect(r.replaced).toBe(null);
  });

  test("service.go allocateIPs 'does not match the ipFamily of the service': PreferDualStack on a dual-stack Service with one requested IP is refused", () => {
    const a = new Allocator();
    a.setPools([pool("ds", ["192.0.2.0/30", "2001:db8::/126"])]);
    const dual = { policy: "PreferDualStack" as const, cips: ["10.96.0.1", "fd00::1"] };
    expect(refusal(a.allocate(svc("x", { ...dual, ip: "192.0.2.1" })))).toBe(
      "requested IPs 192.0.2.1 do not match the Service's IP families (IPv4 and IPv6)",
    );
    const both = { "metallb.io/loadBalancerIPs": "2001:db8::1,192.0.2.1" };
    expect(ips(a.allocate(svc("x", { ...dual, ann: both })))).toEqual(["192.0.2.1", "2001:db8::1"]);
    // On a single-stack cluster (one ClusterIP) the same request fits.
    expect(ips(a.allocate(svc("y", { policy: "PreferDualStack", ip: "192.0.2.2" })))).toEqual(["192.0.2.2"]);
  });

  test("'request IP from wrong ip-family': a held address is released (the requested family does not fit)", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["192.0.2.0/30", "2001:db8::/126"])]);
    ips(a.allocate(svc("x")));
    const r = a.allocate(svc("x", { ip: "2001:db8::1" }));
    expect(refusal(r)).toBe("requested IPs 2001:db8::1 do not match the Service's IP families (IPv4)");
    expect(r.replaced?.from).toEqual(["192.0.2.0"]);
    expect(a.assignment("ns/x")).toBeUndefined();
  });
});

describe("statuses at a restart or leader change (MetalLB controller_test.go TestControllerMutation)", () => {
  test("'invalid IP assigned': a status address in no pool is not adopted; the Service is re-addressed and told", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["192.0.2.0/30"])]);
    const r = a.reconcile([withStatus(svc("x"), ["198.51.100.5"]), withStatus(svc("y"), ["192.0.2.2"])]);
    expect(r.results.map((x) => [x.key, x.ok && x.ips[0], x.ok && x.changed])).toEqual([
      ["ns/y", "192.0.2.2", false],
      ["ns/x", "192.0.2.0", true],
    ]);
    expect(replacedMessage(r.results[1]!.replaced!)).toBe(
      "released 198.51.100.5: 198.51.100.5 is not in any pool",
    );
  });

  test("'IP from wrong ip-family (ipv6) assigned': adopted, then replaced by the Service's own family", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["192.0.2.0/30", "2001:db8::/126"])]);
    const r = a.reconcile([withStatus(svc("x"), ["2001:db8::1"])]);
    expect(r.results[0]).toMatchObject({ ok: true, ips: ["192.0.2.0"], changed: true });
    expect(replacedMessage(r.results[0]!.replaced!)).toBe(
      "released 2001:db8::1: the Service's IP families changed",
    );
  });

  test("a status .0 in an avoidBuggyIPs pool, or in a pool that does not serve the Service: re-addressed", () => {
    const a = new Allocator();
    a.setPools([
      pool("lan", ["10.0.0.0/24"], { avoidBuggyIPs: true }),
      pool("other", ["10.0.9.0/30"], { serviceAllocation: { namespaces: ["other"] } }),
    ]);
    const r = a.reconcile([withStatus(svc("b"), ["10.0.0.0"]), withStatus(svc("o"), ["10.0.9.1"])]);
    expect(
      r.results.map((x) => [x.key, x.ok && x.ips[0], x.replaced && replacedMessage(x.replaced)]),
    ).toEqual([
      ["ns/b", "10.0.0.1", 'released 10.0.0.0: 10.0.0.0 is skipped by pool "lan" (avoidBuggyIPs)'],
      [
        "ns/o",
        "10.0.0.2",
        'released 10.0.9.1: pool "other" does not serve ns/o (namespace not in its serviceAllocation)',
      ],
    ]);
  });

  test("a status naming a requested address in no pool: refused, and the request cannot be met either", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["192.0.2.0/30"])]);
    const r = a.reconcile([withStatus(svc("x", { ip: "198.51.100.5" }), ["198.51.100.5"])]);
    expect(refusal(r.results[0]!)).toBe("198.51.100.5 is not in any pool");
    expect(r.results[0]!.replaced?.from).toEqual(["198.51.100.5"]);
    expect(a.assignments()).toEqual([]);
  });

  test("stability across a restart: every still-valid status is kept even when a fresh allocation would differ", () => {
    const a = new Allocator();
    a.setPools([pool("a-first", ["192.0.2.0/30"]), pool("b-second", ["198.51.100.0/30"])]);
    const r = a.reconcile([withStatus(svc("x"), ["198.51.100.3"]), svc("y")]);
    expect(r.results.map((x) => [x.key, x.ok && x.ips[0], x.ok && x.changed, x.replaced])).toEqual([
      ["ns/x", "198.51.100.3", false, null],
      ["ns/y", "192.0.2.0", true, null],
    ]);
  });
});
