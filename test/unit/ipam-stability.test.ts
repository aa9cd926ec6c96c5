/**
 * Allocator stories: assignments survive restarts and configuration changes; release frees;
 * reconcile converges on the whole Service set; usage counts are exact for any pool size.
 */

import { describe, expect, test } from "bun:test";
import { Allocator, reasonMessage, replacedMessage } from "../../src/ipam/index.ts";
import { ips, pool, refusal, svc, withStatus } from "./ipam-fixtures.ts";

const LAN = pool("lan", ["192.0.2.0/29"]);

function lan(): Allocator {
  const a = new Allocator();
  a.setPools([LAN]);
  return a;
}

describe("restarts", () => {
  test("a restarted allocator rebuilds from statuses, and a newcomer does not take a restored address", () => {
    const before = lan();
    const a = withStatus(svc("a"), ips(before.allocate(svc("a"))));
    const b = withStatus(svc("b"), ips(before.allocate(svc("b"))));
    before.release("ns/a");
    const c = withStatus(svc("c"), ips(before.allocate(svc("c")))); // reuses a's old address
    expect(c.status?.loadBalancer?.ingress?.[0]?.ip).toBe("192.0.2.0");

    const after = lan();
    // The newcomer "aa" sorts before the others, yet restored addresses are taken first.
    const r = after.reconcile([svc("aa"), b, c]);
    expect(r.results.map((x) => [x.key, ips(x)])).toEqual([
      ["ns/b", ["192.0.2.1"]],
      ["ns/c", ["192.0.2.0"]],
      ["ns/aa", ["192.0.2.2"]],
    ]);
    expect(r.results.map((x) => x.ok && x.changed)).toEqual([false, false, true]);
    void a;
  });

  test("two statuses claiming one unshared address: the first by key keeps it, the other is moved and told", () => {
    const a = lan();
    const r = a.reconcile([withStatus(svc("b"), ["192.0.2.3"]), withStatus(svc("a"), ["192.0.2.3"])]);
    expect(r.results.map((x) => [x.key, ips(x)])).toEqual([
      ["ns/a", ["192.0.2.3"]],
      ["ns/b", ["192.0.2.0"]],
    ]);
    expect(r.results[1]!.replaced && replacedMessage(r.results[1]!.replaced)).toBe(
      "released 192.0.2.3: 192.0.2.3 is used by ns/a and cannot be shared: ns/a does not allow sharing",
    );
  });

  // Changed from "adopted as stranded on restart, not re-addressed": MetalLB's convergeBalancer
  // clears a status address no pool allows ("invalid IP assigned") and allocates anew.
  test("an address the pools no longer allow is not adopted on restart: re-addressed, and told why", () => {
    const a = lan();
    const s = withStatus(svc("old", { ann: { "metallb.io/ip-allocated-from-pool": "gone" } }), [
      "198.51.100.1",
    ]);
    const r = a.reconcile([s]);
    expect(ips(r.results[0]!)).toEqual(["192.0.2.0"]);
    expect(r.results[0]!.replaced && replacedMessage(r.results[0]!.replaced)).toBe(
      "released 198.51.100.1: 198.51.100.1 is not in any pool",
    );
    expect(a.assignment("ns/old")).toMatchObject({ pool: "lan", ips: ["192.0.2.0"] });
  });
});

describe("configuration changes", () => {
  // Changed from "strands": MetalLB re-converges every Service after SetPools and clears an
  // address no pool allows (allocator_test.go TestConfigReload "can't shrink further").
  test("removing a pool in use re-addresses its Services; putting it back moves nothing again", () => {
    const a = new Allocator();
    a.setPools([pool("a-pool", ["192.0.2.0/30"]), pool("b-pool", ["198.51.100.0/30"])]);
    const s = svc("x", { ann: { "metallb.io/address-pool": "b-pool" } });
    expect(ips(a.allocate(s))).toEqual(["198.51.100.0"]);
    const res = a.setPools([pool("a-pool", ["192.0.2.0/30"])]);
    expect(res.ok && res.invalidated.map((x) => [x.key, x.ips, reasonMessage(x.reason)])).toEqual([
      ["ns/x", ["198.51.100.0"], "198.51.100.0 is not in any pool"],
    ]);
    // Still pinned to the deleted pool: no address, and the reason.
    const pinned = a.reconcile([s]).results[0]!;
    expect(refusal(pinned)).toBe('unknown pool "b-pool"');
    expect(pinned.replaced?.from).toEqual(["198.51.100.0"]);
    // The pin removed: an address from what is left.
    const free = svc("x");
    expect(ips(a.reconcile([free]).results[0]!)).toEqual(["192.0.2.0"]);
    a.setPools([pool("a-pool", ["192.0.2.0/30"]), pool("b-pool", ["198.51.100.0/30"])]);
    const back = a.reconcile([free]).results[0]!;
    expect(back).toMatchObject({ ok: true, ips: ["192.0.2.0"], changed: false, replaced: null });
  });

  test("an address released by a pool change is free at once for a Service the pool does serve", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["192.0.2.0/30"], { serviceAllocation: { namespaces: ["ns"] } })]);
    ips(a.allocate(svc("x")));
    // The pool now serves only "other"; ns/x's 192.0.2.0 is released.
    const r = a.setPools([pool("lan", ["192.0.2.0/30"], { serviceAllocation: { namespaces: ["other"] } })]);
    expect(r.ok && r.invalidated.map((x) => reasonMessage(x.reason))).toEqual([
      'pool "lan" does not serve ns/x (namespace not in its serviceAllocation)',
    ]);
    expect(ips(a.allocate(svc("y", { ns: "other" })))).toEqual(["192.0.2.0"]);
    expect(refusal(a.allocate(svc("x")))).toBe("no auto-assign pool serves ns/x");
    expect(a.usage("lan")![4].assigned).toBe(1n);
  });

  test("turning avoidBuggyIPs on and off keeps every taken address taken and the dense numbering exact", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["10.0.0.0/24"])]);
    for (const n of ["a", "b", "c"]) ips(a.allocate(svc(n)));
    const on = a.setPools([pool("lan", ["10.0.0.0/24"], { avoidBuggyIPs: true })]);
    expect(on.ok && on.invalidated.map((x) => reasonMessage(x.reason))).toEqual([
      '10.0.0.0 is skipped by pool "lan" (avoidBuggyIPs)',
    ]);
    expect(ips(a.allocate(svc("a")))).toEqual(["10.0.0.3"]);
    expect(ips(a.allocate(svc("d")))).toEqual(["10.0.0.4"]);
    a.setPools([pool("lan", ["10.0.0.0/24"])]);
    expect(ips(a.allocate(svc("e")))).toEqual(["10.0.0.0"]);
    a.release("ns/b");
    a.setPools([pool("lan", ["10.0.0.0/24"], { avoidBuggyIPs: true })]);
    expect(ips(a.allocate(svc("f")))).toEqual(["10.0.0.1"]);
    expect(ips(a.allocate(svc("g")))).toEqual(["10.0.0.5"]);
    expect(ips(a.allocate(svc("e")))).toEqual(["10.0.0.6"]);
    expect(a.usage("lan")![4]).toEqual({ assigned: 6n, available: 254n - 6n, capacity: 254n });
  });

  test("a range moved to a pool under another name is followed without re-addressing", () => {
    const a = lan();
    ips(a.allocate(svc("x")));
    const r = a.setPools([pool("renamed", ["192.0.2.0/29"])]);
    expect(r.ok && r.invalidated).toEqual([]);
    expect(a.assignment("ns/x")).toMatchObject({ pool: "renamed", ips: ["192.0.2.0"] });
  });

  test("a new higher-priority pool does not move existing Services", () => {
    const a = lan();
    ips(a.allocate(svc("x")));
    a.setPools([
      LAN,
      pool("first", ["203.0.113.0/30"], { serviceAllocation: { priority: 1, namespaces: ["ns"] } }),
    ]);
    const r = a.reconcile([svc("x"), svc("y")]);
    expect(r.results.map((x) => ips(x)[0])).toEqual(["192.0.2.0", "203.0.113.0"]);
  });

  // Changed from "an impossible one keeps the old": MetalLB clears the state when the requested
  // IPs differ from the current ones, then fails (controller_test.go "request infeasible IP").
  test("changing the requested address moves the Service and says why; an impossible one leaves it without", () => {
    const a = lan();
    ips(a.allocate(svc("x", { ip: "192.0.2.1" })));
    ips(a.allocate(svc("y", { ip: "192.0.2.2" })));
    const moved = a.allocate(svc("x", { ip: "192.0.2.5" }));
    expect(ips(moved)).toEqual(["192.0.2.5"]);
    expect(moved.replaced && replacedMessage(moved.replaced)).toBe(
      "released 192.0.2.1: the Service requests other IPs",
    );
    const blocked = a.allocate(svc("x", { ip: "192.0.2.2" }));
    expect(refusal(blocked)).toBe(
      "192.0.2.2 is used by ns/y and cannot be shared: ns/y does not allow sharing",
    );
    expect(!blocked.ok && blocked.kept).toBe(null);
    expect(blocked.replaced?.from).toEqual(["192.0.2.5"]);
    expect(a.assignment("ns/x")).toBeUndefined();
  });
});

describe("release and reconcile", () => {
  test("releasing a Service frees its address for the next one", () => {
    const a = lan();
    ips(a.allocate(svc("a")));
    ips(a.allocate(svc("b")));
    expect(a.release("ns/a")).toBe(true);
    expect(a.release("ns/a")).toBe(false);
    expect(ips(a.allocate(svc("c")))).toEqual(["192.0.2.0"]);
  });

  test("reconcile releases deleted and foreign Services, keeps existing ones, allocates new ones by key", () => {
    const a = lan();
    ips(a.allocate(svc("gone")));
    ips(a.allocate(svc("kept")));
    ips(a.allocate(svc("foreign")));
    const r = a.reconcile([
      svc("kept"),
      svc("zz"),
      svc("mm"),
      svc("foreign", { cls: "x.io/lb" }),
      svc("np", { type: "NodePort" }),
    ]);
    expect(r.released).toEqual(["ns/foreign", "ns/gone"]);
    expect(r.ignored.map((i) => i.key)).toEqual(["ns/foreign", "ns/np"]);
    expect(r.results.map((x) => [x.key, ips(x)[0]])).toEqual([
      ["ns/kept", "192.0.2.1"],
      ["ns/mm", "192.0.2.0"],
      ["ns/zz", "192.0.2.2"],
    ]);
    // Reconciling the same set again changes nothing.
    const again = a.reconcile([svc("kept"), svc("zz"), svc("mm")]);
    expect(again.results.every((x) => x.ok && !x.changed)).toBe(true);
    expect(again.released).toEqual([]);
  });
});

describe("usage", () => {
  test("counts are exact for a /48 and a /64, per family", () => {
    const a = new Allocator();
    a.setPools([pool("big", ["2001:db8::/48", "2001:db8:1:1::/64", "192.0.2.0/24"])]);
    for (const n of ["a", "b", "c"]) ips(a.allocate(svc(n, { cips: ["fd00::1"] })));
    ips(a.allocate(svc("d")));
    const cap6 = (1n << 80n) + (1n << 64n);
    expect(a.usage("big")).toEqual({
      4: { assigned: 1n, available: 255n, capacity: 256n },
      6: { assigned: 3n, available: cap6 - 3n, capacity: cap6 },
    });
    expect(a.usage("nope")).toBeUndefined();
  });

  test("memory follows assignments, not pool size: a /16 and a /48 hold the same number of runs", () => {
    const small = new Allocator();
    small.setPools([pool("p", ["10.0.0.0/16"])]);
    const big = new Allocator();
    big.setPools([pool("p", ["2001:db8::/48"])]);
    for (let i = 0; i < 1000; i++) {
      small.allocate(svc(`s${i}`));
      big.allocate(svc(`s${i}`, { cips: ["fd00::1"] }));
    }
    for (let i = 0; i < 1000; i += 3) {
      small.release(`ns/s${i}`);
      big.release(`ns/s${i}`);
    }
    // 666 held, every third of the first 1000 released: 333 runs of taken addresses (1-2, 4-5, ..., 997-998). IPv4 is
    // tracked in two spaces (all addresses, and .1-.254 only, where runs may join across .255/.0).
    expect(big.runs).toBe(333);
    expect(small.runs).toBeGreaterThanOrEqual(333);
    expect(small.runs).toBeLessThanOrEqual(2 * 333);
  });
});
