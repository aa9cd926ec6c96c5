/**
 * The Kubernetes-mode scenario suite, run against the faithful test API server
 * (fake.test.ts) and against a real kube-apiserver 1.20.2 with etcd (real.test.ts). Every
 * scenario gets a fresh cluster and removes it (and vipd's roles) even when it fails.
 */

import { test as bunTest, expect } from "bun:test";
import { ANNOTATION_ALLOCATED_FROM } from "../../src/ipam/request.ts";
import { PATHS } from "../../src/k8s/client.ts";
import { until } from "../support/until.ts";
import { NAMESPACE, type TestCluster } from "./harness.ts";
import {
  create,
  endpointSlice,
  eventsFor,
  getService,
  ingress,
  l2adv,
  node,
  pool,
  service,
  startVipd,
  type Vipd,
} from "./vipd.ts";

type Make = () => Promise<TestCluster>;

async function withCluster(
  make: Make,
  body: (c: TestCluster, run: (v: Vipd) => Vipd) => Promise<void>,
): Promise<void> {
  const c = await make();
  const started: Vipd[] = [];
  try {
    await body(c, (v) => {
      started.push(v);
      return v;
    });
  } finally {
    for (const v of started) await v.stop().catch(() => {});
    await c.close();
  }
}

/** Defines the scenarios (with `only`: just those whose names start with one of these). */
export function defineScenarios(tier: string, make: Make, opts: { only?: string[] } = {}): void {
  const T = 60_000;
  const test = (name: string, body: () => Promise<void>, timeout: number) => {
    const title = name.slice(tier.length + 2);
    if (opts.only === undefined || opts.only.some((p) => title.startsWith(p))) bunTest(name, body, timeout);
  };

  test(
    `${tier}: pools and Services → status, pool annotation, IPAllocated event, pool status counts`,
    () =>
      withCluster(make, async (c, run) => {
        await create(c, pool("lan", ["192.0.2.10-192.0.2.12"]));
        await create(c, service("web"));
        run(startVipd(c, { node: "n1" }));
        const svc = await until("web's status", async () => {
          const s = await getService(c, "web");
          return ingress(s).length > 0 && s;
        });
        expect(ingress(svc)).toEqual(["192.0.2.10"]);
        await until(
          "pool annotation",
          async () =>
            (await getService(c, "web")).metadata.annotations?.[ANNOTATION_ALLOCATED_FROM] === "lan",
        );
        const evs = await until("IPAllocated event", async () => {
          const e = await eventsFor(c, "web");
          return e.some((x) => x.reason === "IPAllocated") && e;
        });
        expect(evs.find((x) => x.reason === "IPAllocated")?.note).toContain("192.0.2.10");
        // A Service that cannot be served gets AllocationFailed and no status.
        await create(c, service("asks", { loadBalancerIP: "198.51.100.1" }));
        const failed = await until("AllocationFailed event", async () =>
          (await eventsFor(c, "asks")).find((x) => x.reason === "AllocationFailed"),
        );
        expect(failed.type).toBe("Warning");
        expect(ingress(await getService(c, "asks"))).toEqual([]);
        const st = await until("pool status", async () => {
          const p = await c.admin.get(`${PATHS.metallb("ipaddresspools", NAMESPACE)}/lan`);
          return (p.status as { assignedIPv4?: number } | undefined)?.assignedIPv4 === 1 && p.status;
        });
        expect(st).toEqual({ assignedIPv4: 1, assignedIPv6: 0, availableIPv4: 2, availableIPv6: 0 });
      }),
    T,
  );

  test(
    `${tier}: Service deleted → its IP is released and goes to the Service that waited for it`,
    () =>
      withCluster(make, async (c, run) => {
        await create(c, pool("one", ["192.0.2.50/32"]));
        await create(c, service("first"));
        run(startVipd(c, { node: "n1" }));
        await until(
          "first gets the only IP",
          async () => ingress(await getService(c, "first"))[0] === "192.0.2.50",
        );
        await create(c, service("second"));
        await until("second fails", async () =>
          (await eventsFor(c, "second")).some((e) => e.reason === "AllocationFailed"),
        );
        await c.admin.delete(`${PATHS.services("default")}/first`);
        await until(
          "second gets the released IP",
          async () => ingress(await getService(c, "second"))[0] === "192.0.2.50",
        );
      }),
    T,
  );

  test(
    `${tier}: controller restarted, then failed over to another identity → the same IPs, nothing rewritten`,
    () =>
      withCluster(make, async (c, run) => {
        await create(c, pool("b-pool", ["192.0.2.100-192.0.2.110"]));
        for (const n of ["s1", "s2", "s3"]) await create(c, service(n));
        const v1 = run(startVipd(c, { node: "n1", speaker: false }));
        const before = await until("three statuses", async () => {
          const ips = await Promise.all(
            ["s1", "s2", "s3"].map(async (n) => ingress(await getService(c, n))[0]),
          );
          return ips.every((x) => x !== undefined) && ips;
        });
        await v1.controller?.idle(); // the annotations may still be in flight
        await v1.stop();
        const rvsBefore = await Promise.all(
          ["s1", "s2", "s3"].map(async (n) => (await getService(c, n)).metadata.resourceVersion),
        );
        // A pool that sorts first: a fresh allocation would take its addresses.
        await create(c, pool("a-pool", ["192.0.2.1-192.0.2.5"]));
        const v2 = run(startVipd(c, { node: "n2", speaker: false }));
        await until("second controller leads", () => v2.controller?.isLeader);
        await until("a-pool status written", async () => {
          const p = await c.admin.get(`${PATHS.metallb("ipaddresspools", NAMESPACE)}/a-pool`);
          return (p.status as { availableIPv4?: number } | undefined)?.availableIPv4 === 5;
        });
        await v2.controller?.idle();
        const after = await Promise.all(
          ["s1", "s2", "s3"].map(async (n) => ingress(await getService(c, n))[0]),
        );
        expect(after).toEqual(before);
        // The new leader did not write to any Service: their resourceVersions are unchanged.
        const rvsAfter = await Promise.all(
          ["s1", "s2", "s3"].map(async (n) => (await getService(c, n)).metadata.resourceVersion),
        );
        expect(rvsAfter).toEqual(rvsBefore);
        // A new Service now gets a-pool's first address; the old ones stay where they were.
        await create(c, service("s4"));
        await until("s4 from a-pool", async () => ingress(await getService(c, "s4"))[0] === "192.0.2.1");
        // Two candidates: exactly one leads; when it goes, the other takes over without moving IPs.
        const v3 = run(startVipd(c, { node: "n3", speaker: false }));
        await Bun.sleep(1500);
        expect([v2.controller?.isLeader, v3.controller?.isLeader]).toEqual([true, false]);
        await v2.stop();
        await until("n3 takes over", () => v3.controller?.isLeader, 15_000);
        await create(c, service("s5"));
        await until("s5 served by n3", async () => ingress(await getService(c, "s5"))[0] === "192.0.2.2");
        const final = await Promise.all(
          ["s1", "s2", "s3"].map(async (n) => ingress(await getService(c, n))[0]),
        );
        expect(final).toEqual(before);
      }),
    T,
  );

  test(
    `${tier}: sharing — two Services with the same allow-shared-ip key and different ports share one IP`,
    () =>
      withCluster(make, async (c, run) => {
        await create(c, pool("lan", ["192.0.2.200-192.0.2.201"]));
        const share = { "metallb.io/allow-shared-ip": "dns" };
        await create(
          c,
          service("dns-tcp", { ports: [{ port: 53, protocol: "TCP" }], selector: { app: "dns" } }, share),
        );
        await create(
          c,
          service("dns-udp", { ports: [{ port: 53, protocol: "UDP" }], selector: { app: "dns" } }, share),
        );
        await create(c, service("other"));
        run(startVipd(c, { node: "n1" }));
        const [a, b, o] = await until("three statuses", async () => {
          const ips = await Promise.all(
            ["dns-tcp", "dns-udp", "other"].map(async (n) => ingress(await getService(c, n))[0]),
          );
          return ips.every((x) => x !== undefined) && ips;
        });
        expect(a).toBe(b);
        expect(o).not.toBe(a);
      }),
    T,
  );

  test(
    `${tier}: dual-stack — RequireDualStack gets one IPv4 and one IPv6 address from one pool`,
    () =>
      withCluster(make, async (c, run) => {
        await create(c, pool("ds", ["192.0.2.30/31", "2001:db8::30/127"]));
        await create(c, service("ds", { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"] }));
        run(startVipd(c, { node: "n1" }));
        const ips = await until("dual-stack status", async () => {
          const i = ingress(await getService(c, "ds"));
          return i.length === 2 && i;
        });
        expect(ips).toEqual(["192.0.2.30", "2001:db8::30"]);
        const p = await until("pool status", async () => {
          const x = await c.admin.get(`${PATHS.metallb("ipaddresspools", NAMESPACE)}/ds`);
          return (x.status as { assignedIPv6?: number } | undefined)?.assignedIPv6 === 1 && x.status;
        });
        expect(p).toEqual({ assignedIPv4: 1, assignedIPv6: 1, availableIPv4: 1, availableIPv6: 1 });
      }),
    T,
  );

  test(
    `${tier}: externalTrafficPolicy Local — the VIP follows the endpoints between nodes; ServiceL2Status and NodeAssigned say who`,
    () =>
      withCluster(make, async (c, run) => {
        await create(c, node("n1"));
        await create(c, node("n2"));
        await create(c, pool("lan", ["192.0.2.60/32"]));
        await create(c, l2adv("l2"));
        await create(c, service("local", { externalTrafficPolicy: "Local" }));
        await create(c, endpointSlice(c, "local-abc", "local", ["n1"]));
        // What an earlier run of n2 left behind: n2 must clean it up, not orphan it.
        await c.admin.create(PATHS.metallb("servicel2statuses", NAMESPACE), {
          apiVersion: "metallb.io/v1beta1",
          kind: "ServiceL2Status",
          metadata: { name: "l2-leftover", namespace: NAMESPACE, labels: { "metallb.io/node": "n2" } },
          spec: {},
        });
        const v1 = run(startVipd(c, { node: "n1" }));
        const v2 = run(startVipd(c, { node: "n2", controller: false }));
        const owns = (v: Vipd) => (v.speaker?.currentPlan.l2 ?? []).some((e) => e.ip === "192.0.2.60");
        await until("n1 announces", () => owns(v1) && !owns(v2));
        // Only n1's: n2's leftover deleted (until then, it alone may be the one object listed).
        const l2s = await until("ServiceL2Status for n1, and n2's leftover gone", async () => {
          const l = await c.admin.list(PATHS.metallb("servicel2statuses", NAMESPACE));
          const only = l.items.length === 1 ? l.items[0] : undefined;
          return (only?.status as { node?: string } | undefined)?.node === "n1" && l.items;
        });
        expect(l2s[0]?.status).toMatchObject({
          node: "n1",
          serviceName: "local",
          serviceNamespace: "default",
        });
        await until("NodeAssigned n1", async () =>
          (await eventsFor(c, "local")).some((e) => e.reason === "NodeAssigned" && e.note.includes('"n1"')),
        );
        // The endpoint moves to n2.
        const slicePath = `${PATHS.endpointSlices(c.endpointSliceVersion, "default")}/local-abc`;
        const moved = endpointSlice(c, "local-abc", "local", ["n2"]);
        await c.admin.mergePatch(slicePath, { endpoints: moved.endpoints });
        await until("n2 announces instead", () => owns(v2) && !owns(v1));
        await until("ServiceL2Status moved to n2", async () => {
          const l = await c.admin.list(PATHS.metallb("servicel2statuses", NAMESPACE));
          return l.items.length === 1 && (l.items[0]?.status as { node?: string } | undefined)?.node === "n2";
        });
        await until("NodeAssigned n2", async () =>
          (await eventsFor(c, "local")).some((e) => e.reason === "NodeAssigned" && e.note.includes('"n2"')),
        );
        // No endpoint anywhere: nobody announces.
        await c.admin.mergePatch(slicePath, { endpoints: [] });
        await until("nobody announces", () => !owns(v1) && !owns(v2));
      }),
    T,
  );

  test(
    `${tier}: API server gone for 60 s → nothing withdrawn, resync when it returns`,
    () =>
      withCluster(make, async (c, run) => {
        await create(c, node("n1"));
        await create(c, pool("lan", ["192.0.2.70-192.0.2.79"]));
        await create(c, l2adv("l2"));
        await create(c, service("keep"));
        const v = run(startVipd(c, { node: "n1", leaseDurationS: 15 }));
        await until("announced", () => (v.speaker?.currentPlan.l2 ?? []).some((e) => e.ip === "192.0.2.70"));
        const plansBefore = v.driver.plans.length;
        const planBefore = JSON.stringify(v.speaker?.currentPlan.l2);
        await c.down();
        const t0 = Date.now();
        while (Date.now() - t0 < 60_000) {
          await Bun.sleep(5000);
          // Still announcing exactly what it announced: no plan was applied while the server was gone.
          expect(v.driver.plans.length).toBe(plansBefore);
          expect(JSON.stringify(v.speaker?.currentPlan.l2)).toBe(planBefore);
        }
        const errors = Object.values(v.state.informers).reduce((n, i) => n + i.stats.errors, 0);
        expect(errors).toBeGreaterThan(0);
        await c.up();
        // Resync: a Service created after the server returns is allocated and announced.
        await create(c, service("later"));
        await until(
          "later allocated",
          async () => ingress(await getService(c, "later"))[0] === "192.0.2.71",
          45_000,
        );
        await until(
          "later announced",
          () => (v.speaker?.currentPlan.l2 ?? []).some((e) => e.ip === "192.0.2.71"),
          30_000,
        );
        expect((v.speaker?.currentPlan.l2 ?? []).some((e) => e.ip === "192.0.2.70")).toBe(true);
      }),
    150_000,
  );
}
