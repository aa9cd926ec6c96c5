/**
 * The Lease fencing driver (src/k8s/lease-fence.ts) against the faithful test API server, through
 * the real client: two nodes elected for one VIP (a partition) never both hold its Lease; a
 * release lets the other take it at once; a holder that stops renewing loses it to the other only
 * after the duration; a holder that cannot reach the API server falls silent as its Lease runs
 * out (duration − margin after its last renewal). The decisions themselves are table-tested in test/unit/k8s-l2-cluster.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Kube, loadKubeConfig, PATHS } from "../../src/k8s/client.ts";
import { leaseName } from "../../src/k8s/fence.ts";
import { LeaseFence } from "../../src/k8s/lease-fence.ts";
import { until } from "../support/until.ts";
import { fakeCluster, NAMESPACE, type TestCluster } from "./harness.ts";

let c: TestCluster;
beforeAll(async () => {
  c = await fakeCluster();
});
afterAll(async () => {
  await c?.close();
});

const VIP = "192.0.2.77";

const DURATION_S = 4;

function fence(identity: string, changes: { n: number }): LeaseFence {
  return new LeaseFence(new Kube(loadKubeConfig(c.kubeconfig)), {
    namespace: NAMESPACE,
    identity,
    durationS: DURATION_S,
    pollMs: 50,
    onChange: () => {
      changes.n++;
    },
  });
}

test("two elected nodes: exactly one holds the Lease; a release hands it over at once; stopping renewals hands it over after the duration", async () => {
  const ca = { n: 0 };
  const cb = { n: 0 };
  const a = fence("a", ca);
  const b = fence("b", cb);
  try {
    a.start();
    b.start();
    a.setElected([VIP]);
    b.setElected([VIP]);
    const first = await until(
      "one holder",
      () => {
        const ha = a.mayAnnounce().has(VIP);
        const hb = b.mayAnnounce().has(VIP);
        return ha !== hb ? (ha ? "a" : "b") : undefined;
      },
      10_000,
    );
    const [holder, other] = first === "a" ? [a, b] : [b, a];
    // For more than a duration, never both (the other waits, and says for whom).
    const end = Date.now() + DURATION_S * 1000 + 500;
    while (Date.now() < end) {
      expect(a.mayAnnounce().has(VIP) && b.mayAnnounce().has(VIP)).toBe(false);
      await Bun.sleep(20);
    }
    expect(holder.mayAnnounce().has(VIP)).toBe(true);
    const w = other.verdicts().find((v) => v.ip === VIP);
    expect(w?.state).toBe("Waiting");
    expect(w?.holder).toBe(first);
    const lease = await c.admin.get(`${PATHS.leases(NAMESPACE)}/${leaseName(VIP)}`);
    expect((lease.spec as { holderIdentity?: string }).holderIdentity).toBe(first);
    expect(lease.metadata.annotations?.["vipd.io/vip"]).toBe(VIP);

    // The holder loses the election: it hands the Lease back, and the other takes it at once.
    const t0 = Date.now();
    holder.setElected([]);
    await until("the other node to hold it", () => other.mayAnnounce().has(VIP), 10_000);
    // Handed over, not expired: an expiry would take a whole duration.
    expect(Date.now() - t0).toBeLessThan(DURATION_S * 1000);
    expect(holder.mayAnnounce().has(VIP)).toBe(false);

    // The new holder stops renewing (stopped without release, as a crash): the first node, elected
    // again, must wait out the whole duration from when it last saw a renewal.
    holder.setElected([VIP]);
    await Bun.sleep(300);
    expect(holder.verdicts().find((v) => v.ip === VIP)?.state).toBe("Waiting");
    await other.stop(false);
    const stoppedAt = Date.now();
    await until("the first node to take the expired Lease", () => holder.mayAnnounce().has(VIP), 10_000);
    // Never before the duration has passed since the last renewal it saw (at most renewEvery
    // before the stop).
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(DURATION_S * 1000 - holder.timing.renewEveryMs);
    expect(ca.n + cb.n).toBeGreaterThan(0);
  } finally {
    await a.stop(true);
    await b.stop(true);
  }
}, 60_000);

test("a holder that cannot reach the API server falls silent as its Lease runs out, and holds again once it is back", async () => {
  const h = fence("h", { n: 0 });
  try {
    h.start();
    h.setElected(["192.0.2.78"]);
    await until("held", () => h.mayAnnounce().has("192.0.2.78"), 10_000);
    await c.down();
    await until("silent", () => !h.mayAnnounce().has("192.0.2.78"), 10_000);
    // Silent (duration − margin after its last renewal), still claiming the VIP: it keeps trying.
    expect(h.verdicts()[0]?.state).toBe("Acquiring");
    expect(h.verdicts()[0]?.holder).toBe("h");
    await c.up();
    await until("held again once the API server is back", () => h.mayAnnounce().has("192.0.2.78"), 10_000);
    expect(h.stats.errors).toBeGreaterThan(0);
  } finally {
    await c.up().catch(() => {});
    await h.stop(true);
  }
}, 60_000);
