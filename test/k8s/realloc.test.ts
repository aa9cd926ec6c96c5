/**
 * Allocation on change, in Kubernetes mode: the controller against the faithful test API server
 * and against a real kube-apiserver 1.20.2 with etcd (which FAILS, never skips, when missing).
 * When the world changes so that an address is no longer allowed, vipd does what MetalLB's
 * convergeBalancer does — releases it and re-addresses the Service, or leaves it without one —
 * and says so with Events, each exactly once: IPReleased with the reason, then IPAllocated or
 * AllocationFailed. Nothing still valid moves. Each scenario names the MetalLB case it follows.
 */

import { test as bunTest, expect } from "bun:test";
import { ANNOTATION_ALLOCATED_FROM } from "../../src/ipam/request.ts";
import { PATHS } from "../../src/k8s/client.ts";
import { until } from "../support/until.ts";
import { fakeCluster, NAMESPACE, realCluster, type TestCluster } from "./harness.ts";
import { create, eventsFor, getService, ingress, pool, service, startVipd, type Vipd } from "./vipd.ts";

type Make = () => Promise<TestCluster>;

async function withCluster(
  make: Make,
  body: (c: TestCluster, v: () => Vipd) => Promise<void>,
): Promise<void> {
  const c = await make();
  let vipd: Vipd | undefined;
  try {
    await body(c, () => {
      vipd = startVipd(c, { node: "n1", speaker: false });
      return vipd;
    });
  } finally {
    await vipd?.stop().catch(() => {});
    await c.close();
  }
}

const poolPath = (name: string) => `${PATHS.metallb("ipaddresspools", NAMESPACE)}/${name}`;
const svcPath = (name: string) => `${PATHS.services("default")}/${name}`;

/** How many Events of each reason were said about `name`. */
async function reasons(c: TestCluster, name: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const e of await eventsFor(c, name)) out[e.reason] = (out[e.reason] ?? 0) + 1;
  return out;
}

/** Waits until the controller is idle twice in a row, a moment apart (informer echoes handled). */
async function settle(v: Vipd): Promise<void> {
  for (let i = 0; i < 2; i++) {
    await v.controller?.idle();
    await Bun.sleep(400);
  }
  await v.controller?.idle();
}

function defineRealloc(tier: string, make: Make): void {
  const T = 60_000;
  const test = (name: string, body: () => Promise<void>) => bunTest(`${tier}: ${name}`, body, T);

  test("MetalLB TestConfigReload 'can't shrink further' and 'enable buggy IPs not allowed': the pool changes, only the Service it no longer allows is re-addressed, one IPReleased + one IPAllocated", () =>
    withCluster(make, async (c, start) => {
      await create(c, pool("lan", ["192.0.2.0-192.0.2.3"]));
      for (const n of ["s0", "s1"]) await create(c, service(n));
      const v = start();
      await until("s0 and s1 addressed", async () => {
        const [a, b] = [ingress(await getService(c, "s0")), ingress(await getService(c, "s1"))];
        return a[0] === "192.0.2.0" && b[0] === "192.0.2.1";
      });
      await settle(v);
      const s1Version = (await getService(c, "s1")).metadata.resourceVersion;

      // avoidBuggyIPs: s0's 192.0.2.0 is no longer handed out; s1 keeps 192.0.2.1.
      await c.admin.mergePatch(poolPath("lan"), { spec: { avoidBuggyIPs: true } });
      await until("s0 re-addressed", async () => ingress(await getService(c, "s0"))[0] === "192.0.2.2");
      await settle(v);
      const s0 = await eventsFor(c, "s0");
      const released = s0.filter((e) => e.reason === "IPReleased");
      expect(released.map((e) => e.note)).toEqual([
        'Released IP ["192.0.2.0"] of "default/s0": released 192.0.2.0: 192.0.2.0 is skipped by pool "lan" (avoidBuggyIPs)',
      ]);
      expect(s0.filter((e) => e.reason === "IPAllocated").map((e) => e.note)).toEqual([
        'Assigned IP ["192.0.2.0"] from pool "lan"',
        'Assigned IP ["192.0.2.2"] from pool "lan"',
      ]);
      expect(await reasons(c, "s1")).toEqual({ IPAllocated: 1 });
      // s1 was not written at all: nothing valid moves.
      expect((await getService(c, "s1")).metadata.resourceVersion).toBe(s1Version);

      // The pool shrinks to .2-.3: s1's .1 is outside now; s0's .2 stays.
      await c.admin.mergePatch(poolPath("lan"), { spec: { addresses: ["192.0.2.2-192.0.2.3"] } });
      await until("s1 re-addressed", async () => ingress(await getService(c, "s1"))[0] === "192.0.2.3");
      await settle(v);
      expect(ingress(await getService(c, "s0"))).toEqual(["192.0.2.2"]);
      expect(await reasons(c, "s1")).toEqual({ IPAllocated: 2, IPReleased: 1 });
      expect(await reasons(c, "s0")).toEqual({ IPAllocated: 2, IPReleased: 1 });
      expect((await eventsFor(c, "s1")).find((e) => e.reason === "IPReleased")?.note).toContain(
        "192.0.2.1 is not in any pool",
      );

      // Shrunk once more, no room left: s1 is left without an address, status and annotation cleared.
      await c.admin.mergePatch(poolPath("lan"), { spec: { addresses: ["192.0.2.2/32"] } });
      await until("s1's status cleared", async () => ingress(await getService(c, "s1")).length === 0);
      await until(
        "s1's pool annotation removed",
        async () =>
          (await getService(c, "s1")).metadata.annotations?.[ANNOTATION_ALLOCATED_FROM] === undefined,
      );
      await settle(v);
      expect(await reasons(c, "s1")).toEqual({ IPAllocated: 2, IPReleased: 2, AllocationFailed: 1 });
      const failed = (await eventsFor(c, "s1")).find((e) => e.reason === "AllocationFailed");
      expect(failed?.type).toBe("Warning");
      expect(failed?.note).toBe('Failed to allocate IP for "default/s1": no available IPs');
      expect(ingress(await getService(c, "s0"))).toEqual(["192.0.2.2"]);
    }));

  test("MetalLB TestAssignment 's3 can't change its sharing key while keeping the same IP': the sharer whose key changed moves, the other stays", () =>
    withCluster(make, async (c, start) => {
      await create(c, pool("lan", ["192.0.2.20-192.0.2.21"]));
      const k = { "metallb.io/allow-shared-ip": "k" };
      await create(c, service("dns", { ports: [{ port: 53, protocol: "UDP" }] }, k));
      await create(c, service("web", { ports: [{ port: 80, protocol: "TCP" }] }, k));
      const v = start();
      await until("both share .20", async () => {
        const [a, b] = [ingress(await getService(c, "dns")), ingress(await getService(c, "web"))];
        return a[0] === "192.0.2.20" && b[0] === "192.0.2.20";
      });
      await settle(v);
      await c.admin.mergePatch(svcPath("web"), {
        metadata: { annotations: { "metallb.io/allow-shared-ip": "other" } },
      });
      await until("web moved", async () => ingress(await getService(c, "web"))[0] === "192.0.2.21");
      await settle(v);
      expect(ingress(await getService(c, "dns"))).toEqual(["192.0.2.20"]);
      expect(await reasons(c, "web")).toEqual({ IPAllocated: 2, IPReleased: 1 });
      expect((await eventsFor(c, "web")).find((e) => e.reason === "IPReleased")?.note).toBe(
        'Released IP ["192.0.2.20"] of "default/web": released 192.0.2.20: 192.0.2.20 is used by default/dns and cannot be shared: sharing key "other" differs from "k"',
      );
      expect(await reasons(c, "dns")).toEqual({ IPAllocated: 1 });

      // externalTrafficPolicy Local on dns (no sharer left on .20): MetalLB keeps it in place.
      await c.admin.mergePatch(svcPath("dns"), { spec: { externalTrafficPolicy: "Local" } });
      await settle(v);
      expect(ingress(await getService(c, "dns"))).toEqual(["192.0.2.20"]);
      expect(await reasons(c, "dns")).toEqual({ IPAllocated: 1 });
    }));

  test("MetalLB TestControllerMutation 'invalid IP assigned' and 'unknown pool requested': a status address in no pool is re-addressed at the leader's start; a Service naming an unknown pool gets AllocationFailed and loses its address", () =>
    withCluster(make, async (c, start) => {
      await create(c, pool("lan", ["192.0.2.40-192.0.2.41"]));
      await create(c, service("carried"));
      await create(c, service("kept"));
      // What another load balancer (or an older configuration) left in the statuses.
      await c.admin.mergePatch(`${svcPath("carried")}/status`, {
        status: { loadBalancer: { ingress: [{ ip: "198.51.100.7" }] } },
      });
      await c.admin.mergePatch(`${svcPath("kept")}/status`, {
        status: { loadBalancer: { ingress: [{ ip: "192.0.2.41" }] } },
      });
      await create(c, service("pinned", {}, { "metallb.io/address-pool": "nope" }));
      const v = start();
      await until(
        "carried re-addressed",
        async () => ingress(await getService(c, "carried"))[0] === "192.0.2.40",
      );
      const failed = await until("pinned: AllocationFailed", async () =>
        (await eventsFor(c, "pinned")).find((e) => e.reason === "AllocationFailed"),
      );
      expect(failed.note).toBe('Failed to allocate IP for "default/pinned": unknown pool "nope"');
      await settle(v);
      expect(ingress(await getService(c, "kept"))).toEqual(["192.0.2.41"]);
      expect(await reasons(c, "kept")).toEqual({});
      expect(await reasons(c, "carried")).toEqual({ IPReleased: 1, IPAllocated: 1 });
      expect((await eventsFor(c, "carried")).find((e) => e.reason === "IPReleased")?.note).toBe(
        'Released IP ["198.51.100.7"] of "default/carried": released 198.51.100.7: 198.51.100.7 is not in any pool',
      );
      expect(await reasons(c, "pinned")).toEqual({ AllocationFailed: 1 });
      expect(ingress(await getService(c, "pinned"))).toEqual([]);

      // A Service holding an address is pinned to a pool that does not exist: MetalLB clears it.
      await c.admin.mergePatch(svcPath("kept"), {
        metadata: { annotations: { "metallb.io/address-pool": "gone" } },
      });
      await until("kept's status cleared", async () => ingress(await getService(c, "kept")).length === 0);
      await settle(v);
      expect(await reasons(c, "kept")).toEqual({ IPReleased: 1, AllocationFailed: 1 });
      expect((await eventsFor(c, "kept")).find((e) => e.reason === "AllocationFailed")?.note).toBe(
        'Failed to allocate IP for "default/kept": unknown pool "gone"',
      );
      expect((await getService(c, "kept")).metadata.annotations?.[ANNOTATION_ALLOCATED_FROM]).toBeUndefined();
      // The freed .41 goes to the Service that was waiting for an address once it names a real pool.
      await c.admin.mergePatch(svcPath("pinned"), {
        metadata: { annotations: { "metallb.io/address-pool": "lan" } },
      });
      await until("pinned gets .41", async () => ingress(await getService(c, "pinned"))[0] === "192.0.2.41");
    }));

  test("MetalLB TestAssignment 'attempt to assign ip from pool pinned on different namespace', after the fact: a namespace relabelled out of a pool's namespaceSelectors: its Service moves to a pool that serves it; relabelled back, nothing moves again", () =>
    withCluster(make, async (c, start) => {
      await c.admin.create("/api/v1/namespaces", {
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: "shop", labels: { team: "web" } },
      });
      await create(
        c,
        pool("web", ["192.0.2.60/32"], {
          serviceAllocation: { priority: 1, namespaceSelectors: [{ matchLabels: { team: "web" } }] },
        }),
      );
      await create(c, pool("rest", ["192.0.2.70/32"]));
      await create(c, service("cart", {}, {}, "shop"));
      const v = start();
      await until(
        "cart from web",
        async () => ingress(await getService(c, "cart", "shop"))[0] === "192.0.2.60",
      );
      await settle(v);
      await c.admin.mergePatch("/api/v1/namespaces/shop", { metadata: { labels: { team: "db" } } });
      await until(
        "cart moved to rest",
        async () => ingress(await getService(c, "cart", "shop"))[0] === "192.0.2.70",
      );
      await settle(v);
      const evs = await eventsFor(c, "cart", "shop");
      expect(evs.filter((e) => e.reason === "IPReleased").map((e) => e.note)).toEqual([
        'Released IP ["192.0.2.60"] of "shop/cart": released 192.0.2.60: pool "web" does not serve shop/cart (namespace not in its serviceAllocation)',
      ]);
      expect((await getService(c, "cart", "shop")).metadata.annotations?.[ANNOTATION_ALLOCATED_FROM]).toBe(
        "rest",
      );
      await c.admin.mergePatch("/api/v1/namespaces/shop", { metadata: { labels: { team: "web" } } });
      await settle(v);
      expect(ingress(await getService(c, "cart", "shop"))).toEqual(["192.0.2.70"]);
      const counts: Record<string, number> = {};
      for (const e of await eventsFor(c, "cart", "shop")) counts[e.reason] = (counts[e.reason] ?? 0) + 1;
      expect(counts).toEqual({ IPAllocated: 2, IPReleased: 1 });
    }));
}

defineRealloc("test API server", () => fakeCluster());
defineRealloc("kube-apiserver 1.20.2", () => realCluster());
