/**
 * Allocator stories: IP sharing (allow-shared-ip) and which Services are vipd's at all.
 */

import { describe, expect, test } from "bun:test";
import { Allocator } from "../../src/ipam/index.ts";
import { ips, pool, refusal, svc } from "./ipam-fixtures.ts";

function lan(opts: ConstructorParameters<typeof Allocator>[0] = {}): Allocator {
  const a = new Allocator(opts);
  a.setPools([pool("lan", ["192.0.2.0/29"])]);
  return a;
}
const share = (key: string) => ({ "metallb.io/allow-shared-ip": key });

describe("sharing", () => {
  test("b cannot take a's IP when a does not share", () => {
    const a = lan();
    ips(a.allocate(svc("a", { ip: "192.0.2.5" })));
    expect(refusal(a.allocate(svc("b", { ip: "192.0.2.5", ports: [443], ann: share("k") })))).toBe(
      "192.0.2.5 is used by ns/a and cannot be shared: ns/a does not allow sharing",
    );
  });

  test("b cannot take a's IP when b does not share", () => {
    const a = lan();
    ips(a.allocate(svc("a", { ip: "192.0.2.5", ann: share("k") })));
    expect(refusal(a.allocate(svc("b", { ip: "192.0.2.5", ports: [443] })))).toBe(
      "192.0.2.5 is used by ns/a and cannot be shared: this Service does not allow sharing (no allow-shared-ip annotation)",
    );
  });

  test("same key and disjoint ports share, by request and automatically at the lowest address", () => {
    const a = lan();
    expect(ips(a.allocate(svc("web", { ports: [80], ann: share("k") })))).toEqual(["192.0.2.0"]);
    expect(ips(a.allocate(svc("tls", { ports: [443], ann: share("k") })))).toEqual(["192.0.2.0"]);
    expect(ips(a.allocate(svc("dns", { ports: [[53, "UDP"]], ip: "192.0.2.0", ann: share("k") })))).toEqual([
      "192.0.2.0",
    ]);
    expect(a.holders("192.0.2.0")).toEqual(["ns/dns", "ns/tls", "ns/web"]);
    expect(a.usage("lan")![4].assigned).toBe(1n);
    expect(ips(a.allocate(svc("lonely")))).toEqual(["192.0.2.1"]);
  });

  test("same key but an overlapping port/protocol pair cannot share: the refusal names the port", () => {
    const a = lan();
    ips(a.allocate(svc("a", { ip: "192.0.2.0", ports: [80, 443], ann: share("k") })));
    expect(refusal(a.allocate(svc("b", { ip: "192.0.2.0", ports: [8080, 80], ann: share("k") })))).toBe(
      "192.0.2.0 is used by ns/a and cannot be shared: 80/TCP overlaps",
    );
    // 80/UDP is a different pair from 80/TCP.
    expect(ips(a.allocate(svc("c", { ip: "192.0.2.0", ports: [[80, "UDP"]], ann: share("k") })))).toEqual([
      "192.0.2.0",
    ]);
    // Automatic allocation passes over the shared address whose ports conflict.
    expect(ips(a.allocate(svc("d", { ports: [443], ann: share("k") })))).toEqual(["192.0.2.1"]);
    expect(ips(a.allocate(svc("e", { ports: [53], ann: share("k") })))).toEqual(["192.0.2.0"]);
  });

  test("different sharing keys do not share", () => {
    const a = lan();
    ips(a.allocate(svc("a", { ip: "192.0.2.2", ann: share("blue") })));
    expect(refusal(a.allocate(svc("b", { ip: "192.0.2.2", ports: [443], ann: share("green") })))).toBe(
      '192.0.2.2 is used by ns/a and cannot be shared: sharing key "green" differs from "blue"',
    );
  });

  test("under externalTrafficPolicy Local, only Services with identical selectors share", () => {
    const a = lan();
    const local = (name: string, port: number, sel: Record<string, string>) =>
      svc(name, { ip: "192.0.2.4", ports: [port], local: true, selector: sel, ann: share("k") });
    ips(a.allocate(local("a", 80, { app: "x" })));
    expect(ips(a.allocate(local("b", 443, { app: "x" })))).toEqual(["192.0.2.4"]);
    const msg =
      "192.0.2.4 is used by ns/a, ns/b and cannot be shared: externalTrafficPolicy Local requires the same policy and identical selectors";
    expect(refusal(a.allocate(local("c", 8443, { app: "y" })))).toBe(msg);
    expect(
      refusal(
        a.allocate(svc("d", { ip: "192.0.2.4", ports: [9000], selector: { app: "x" }, ann: share("k") })),
      ),
    ).toBe(msg);
  });

  test("a sole holder changes its sharing key in place; a sharer that changes its key moves", () => {
    const a = lan();
    ips(a.allocate(svc("a", { ports: [80], ann: share("old") })));
    const r = a.allocate(svc("a", { ports: [80], ann: share("k") }));
    expect(r.ok && [r.ips, r.changed]).toEqual([["192.0.2.0"], false]);
    ips(a.allocate(svc("b", { ports: [443], ann: share("k") })));
    expect(a.holders("192.0.2.0")).toEqual(["ns/a", "ns/b"]);
    const moved = a.allocate(svc("b", { ports: [443], ann: share("other") }));
    expect(ips(moved)).toEqual(["192.0.2.1"]);
    expect(a.holders("192.0.2.0")).toEqual(["ns/a"]);
  });

  test("the deprecated allow-shared-ip annotation shares with the new one", () => {
    const a = lan();
    ips(a.allocate(svc("a", { ports: [80], ann: { "metallb.universe.tf/allow-shared-ip": "k" } })));
    expect(ips(a.allocate(svc("b", { ports: [443], ann: share("k") })))).toEqual(["192.0.2.0"]);
  });

  test("releasing one sharer keeps the address for the others; releasing all frees it", () => {
    const a = lan();
    ips(a.allocate(svc("a", { ports: [80], ann: share("k") })));
    ips(a.allocate(svc("b", { ports: [443], ann: share("k") })));
    a.release("ns/a");
    expect(ips(a.allocate(svc("c")))).toEqual(["192.0.2.1"]);
    a.release("ns/b");
    expect(ips(a.allocate(svc("d")))).toEqual(["192.0.2.0"]);
  });

  test("a Service whose ports change to overlap its sharer is moved, and says so", () => {
    const a = lan();
    ips(a.allocate(svc("a", { ports: [80], ann: share("k") })));
    ips(a.allocate(svc("b", { ports: [443], ann: share("k") })));
    const r = a.allocate(svc("b", { ports: [80], ann: share("k") }));
    expect(ips(r)).toEqual(["192.0.2.1"]);
    expect(r.ok && r.changed).toBe(true);
    expect(r.warnings).toEqual([]);
    expect(r.replaced).toEqual({
      from: ["192.0.2.0"],
      cause: {
        kind: "NoLongerValid",
        reason: {
          kind: "NotShareable",
          ip: "192.0.2.0",
          holders: ["ns/a"],
          conflict: { kind: "PortOverlap", ports: ["80/TCP"] },
        },
      },
    });
  });
});

describe("which Services are vipd's", () => {
  test("with no class configured, classless LoadBalancers are vipd's and classed ones are not", () => {
    const a = lan();
    expect(ips(a.allocate(svc("a")))).toEqual(["192.0.2.0"]);
    const r = a.allocate(svc("b", { cls: "other.io/lb" }));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.notOurs).toBe(true);
    expect(refusal(r)).toBe(
      'loadBalancerClass "other.io/lb" is not handled by vipd (it handles classless Services)',
    );
  });

  test("with a class configured, only that class is vipd's", () => {
    const a = lan({ loadBalancerClass: "vipd.io/lb" });
    expect(ips(a.allocate(svc("a", { cls: "vipd.io/lb" })))).toEqual(["192.0.2.0"]);
    expect(refusal(a.allocate(svc("b")))).toBe(
      'loadBalancerClass (none) is not handled by vipd (it handles "vipd.io/lb")',
    );
  });

  test("a Service that stops being a LoadBalancer gives its address back", () => {
    const a = lan();
    ips(a.allocate(svc("a")));
    const r = a.allocate(svc("a", { type: "ClusterIP" }));
    expect(refusal(r)).toBe("Service type is ClusterIP, not LoadBalancer");
    expect(!r.ok && r.kept).toBe(null);
    expect(a.assignment("ns/a")).toBeUndefined();
    expect(ips(a.allocate(svc("b")))).toEqual(["192.0.2.0"]);
  });
});
