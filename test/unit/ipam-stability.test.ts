/**
 * Allocator stories: assignments survive restarts and configuration changes; release frees;
 * reconcile converges on the whole Service set; usage counts are exact for any pool size.
 */

import { describe, expect, test } from "bun:test";
import { Allocator, reasonMessage, warningMessage } from "../../src/ipam/index.ts";
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
    expect(r.results[1]!.warnings.map(warningMessage)).toEqual([
      "the addresses in status (192.0.2.3) were not kept: 192.0.2.3 is used by ns/a and cannot be shared: ns/a does not allow sharing",
    ]);
  });

  test("an address the pools no longer allow is adopted as stranded on restart, not re-addressed", () => {
    const a = lan();
    const s = withStatus(svc("old", { ann: { "metallb.io/ip-allocated-from-pool": "gone" } }), [
      "198.51.100.1",
    ]);
    const r = a.reconcile([s]);
    expect(ips(r.results[0]!)).toEqual(["198.51.100.1"]);
    expect(r.results[0]!.warnings.map(warningMessage)).toEqual([
      'ns/old keeps 198.51.100.1 from pool "gone", which the new configuration no longer allows: 198.51.100.1 is not in any pool',
    ]);
    expect(a.assignment("ns/old")).toMatchObject({ pool: "gone", stranded: true });
  });
});

describe("configuration changes", () => {
  test("removing a pool in use strands its Services: reported, kept, never silently re-addressed", () => {
    const a = new Allocator();
    a.setPools([pool("a-pool", ["192.0.2.0/30"]), pool("b-pool", ["198.51.100.0/30"])]);
    const s = svc("x", { ann: { "metallb.io/address-pool": "b-pool" } });
    expect(ips(a.allocate(s))).toEqual(["198.51.100.0"]);
    const res = a.setPools([pool("a-pool", ["192.0.2.0/30"])]);
    expect(res.ok && res.stranded.map(reasonMessage)).toEqual([
      'ns/x keeps 198.51.100.0 from pool "b-pool", which the new configuration no longer allows: 198.51.100.0 is not in any pool',
    ]);
    const again = a.reconcile([s]);
    expect(ips(again.results[0]!)).toEqual(["198.51.100.0"]);
    expect(again.results[0]!.ok && again.results[0]!.changed).toBe(false);
    expect(a.assignment("ns/x")?.stranded).toBe(true);
    // Putting the pool back ends the stranding.
    const back = a.setPools([pool("a-pool", ["192.0.2.0/30"]), pool("b-pool", ["198.51.100.0/30"])]);
    expect(back.ok && back.stranded).toEqual([]);
    expect(a.assignment("ns/x")).toMatchObject({ pool: "b-pool", stranded: false });
  });

  test("a stranded address stays taken: no other Service gets it", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["192.0.2.0/30"], { serviceAllocation: { namespaces: ["ns"] } })]);
    ips(a.allocate(svc("x")));
    // The pool now serves only "other"; ns/x is stranded on 192.0.2.0.
    const r = a.setPools([pool("lan", ["192.0.2.0/30"], { serviceAllocation: { namespaces: ["other"] } })]);
    expect(r.ok && r.stranded.map(reasonMessage)).toEqual([
      'ns/x keeps 192.0.2.0 from pool "lan", which the new configuration no longer allows: pool "lan" does not serve ns/x (namespace not in its serviceAllocation)',
    ]);
    expect(ips(a.allocate(svc("y", { ns: "other" })))).toEqual(["192.0.2.1"]);
    expect(a.usage("lan")![4].assigned).toBe(2n);
  });

  test("relabelling a namespace out of a pool's namespaceSelectors strands, relabelling back heals", () => {
    let team = "web";
    const a = new Allocator({ namespaceLabels: () => ({ team }) });
    a.setPools([
      pool("web", ["192.0.2.0/30"], {
        serviceAllocation: { namespaceSelectors: [{ matchLabels: { team: "web" } }] },
      }),
    ]);
    ips(a.allocate(svc("x")));
    team = "db";
    const r = a.setNamespaceLabels(() => ({ team }));
    expect(r.ok && r.stranded.length).toBe(1);
    expect(a.stranded().map(reasonMessage)).toEqual([
      'ns/x keeps 192.0.2.0 from pool "web", which the new configuration no longer allows: pool "web" does not serve ns/x (namespace not in its serviceAllocation)',
    ]);
    expect(refusal(a.allocate(svc("y")))).toBe("no auto-assign pool serves ns/y");
    team = "web";
    const back = a.setNamespaceLabels(() => ({ team }));
    expect(back.ok && back.stranded).toEqual([]);
    expect(a.stranded()).toEqual([]);
    expect(a.assignment("ns/x")).toMatchObject({ ips: ["192.0.2.0"], stranded: false });
  });

  test("turning avoidBuggyIPs on strands the .0 holder and keeps every taken address taken", () => {
    const a = new Allocator();
    a.setPools([pool("lan", ["10.0.0.0/24"])]);
    for (const n of ["a", "b", "c"]) ips(a.allocate(svc(n)));
    const on = a.setPools([pool("lan", ["10.0.0.0/24"], { avoidBuggyIPs: true })]);
    expect(on.ok && on.stranded.map(reasonMessage)).toEqual([
      'ns/a keeps 10.0.0.0 from pool "lan", which the new configuration no longer allows: 10.0.0.0 is skipped by pool "lan" (avoidBuggyIPs)',
    ]);
    expect(ips(a.allocate(svc("d")))).toEqual(["10.0.0.3"]);
    a.setPools([pool("lan", ["10.0.0.0/24"])]);
    expect(ips(a.allocate(svc("e")))).toEqual(["10.0.0.4"]);
    a.release("ns/b");
    a.setPools([pool("lan", ["10.0.0.0/24"], { avoidBuggyIPs: true })]);
    expect(ips(a.allocate(svc("f")))).toEqual(["10.0.0.1"]);
    expect(ips(a.allocate(svc("g")))).toEqual(["10.0.0.5"]);
    expect(a.usage("lan")![4]).toEqual({ assigned: 5n, available: 254n - 5n, capacity: 254n });
  });

  test("a range moved to a pool under another name is followed without re-addressing", () => {
    const a = lan();
    ips(a.allocate(svc("x")));
    const r = a.setPools([pool("renamed", ["192.0.2.0/29"])]);
    expect(r.ok && r.stranded).toEqual([]);
    expect(a.assignment("ns/x")).toMatchObject({ pool: "renamed", ips: ["192.0.2.0"], stranded: false });
  });

  test("a new higher-priority pool does not move existing Services", () => {
    const a = lan();
    ips(a.allocate(svc("x")));
    a.setPools([LAN, pool("first", ["203.0.113.0/30"], { serviceAllocation: { priority: 1 } })]);
    const r = a.reconcile([svc("x"), svc("y")]);
    expect(r.results.map((x) => ips(x)[0])).toEqual(["192.0.2.0", "203.0.113.0"]);
  });

  test("changing the requested address moves the Service and says why; an impossible one keeps the old", () => {
    const a = lan();
    ips(a.allocate(svc("x", { ip: "192.0.2.1" })));
    ips(a.allocate(svc("y", { ip: "192.0.2.2" })));
    const moved = a.allocate(svc("x", { ip: "192.0.2.5" }));
    expect(ips(moved)).toEqual(["192.0.2.5"]);
    expect(moved.warnings.map(warningMessage)).toEqual([
      "previous IPs 192.0.2.1 were replaced: the Service requests other IPs",
    ]);
    const blocked = a.allocate(svc("x", { ip: "192.0.2.2" }));
    expect(refusal(blocked)).toBe(
      "192.0.2.2 is used by ns/y and cannot be shared: ns/y does not allow sharing",
    );
    expect(!blocked.ok && blocked.kept?.ips).toEqual(["192.0.2.5"]);
    expect(a.assignment("ns/x")?.ips).toEqual(["192.0.2.5"]);
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
