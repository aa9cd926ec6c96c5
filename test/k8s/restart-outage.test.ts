/**
 * Restarts and outages as an operator sees them, against the faithful test API server and a real
 * kube-apiserver 1.20.2 (which FAILS when its binary is missing; nothing is skipped):
 *
 * - a speaker restarted on the same node does not say NodeAssigned again for the Services it
 *   already announced (it learns them from the ServiceL2Status objects it left);
 * - while the API server is gone, the controller's Lease failures are logged once at first and
 *   then at most once a minute, in plain words naming the server, and once when it answers again.
 */
import { expect, test } from "bun:test";
import { Kube, loadKubeConfig } from "../../src/k8s/client.ts";
import { Controller } from "../../src/k8s/controller.ts";
import { ClusterState } from "../../src/k8s/state.ts";
import { createLogger } from "../../src/util/log.ts";
import { until } from "../support/until.ts";
import { fakeCluster, NAMESPACE, realCluster, type TestCluster } from "./harness.ts";
import {
  create,
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

for (const [tier, make] of [
  ["test API server", () => fakeCluster()],
  ["kube-apiserver 1.20.2", () => realCluster()],
] as const) {
  test(`${tier}: a restarted speaker does not say NodeAssigned again`, async () => {
    const c: TestCluster = await make();
    const started: Vipd[] = [];
    try {
      await create(c, node("n1"));
      await create(c, pool("lan", ["192.0.2.72/29"]));
      await create(c, l2adv("l2"));
      for (const s of ["r1", "r2"]) await create(c, service(s));
      started.push(startVipd(c, { node: "n1" }));
      for (const s of ["r1", "r2"])
        await until(`NodeAssigned ${s}`, async () =>
          (await eventsFor(c, s)).some((e) => e.reason === "NodeAssigned"),
        );
      await (started[0] as Vipd).stop();
      // The speaker comes back (the controller too) and announces the same Services.
      const v = startVipd(c, { node: "n1" });
      started.push(v);
      await until(
        "the restarted speaker announces both",
        () =>
          (v.speaker?.currentPlan.l2 ?? []).some((e) => e.services.length > 0) &&
          (v.speaker?.currentPlan.l2 ?? []).flatMap((e) => e.services).length === 2,
      );
      // A new Service shows the restarted speaker does emit NodeAssigned for what is new.
      await create(c, service("r3"));
      await until("NodeAssigned r3", async () =>
        (await eventsFor(c, "r3")).some((e) => e.reason === "NodeAssigned"),
      );
      for (const s of ["r1", "r2"])
        expect((await eventsFor(c, s)).filter((e) => e.reason === "NodeAssigned").length).toBe(1);
    } finally {
      for (const v of started) await v.stop().catch(() => {});
      await c.close();
    }
  }, 90_000);

  test(`${tier}: an API-server outage is logged in plain words, once a minute at most, and its end once`, async () => {
    const c: TestCluster = await make();
    const lines: { level: string; message: string; error?: string; failures?: number }[] = [];
    const log = createLogger("controller", { level: "info", sink: (l) => lines.push(JSON.parse(l)) });
    const kube = new Kube(loadKubeConfig(c.kubeconfig), { timeoutMs: 2000 });
    const state = new ClusterState(kube, {
      namespace: NAMESPACE,
      endpointSliceVersion: c.endpointSliceVersion,
      informer: { backoffMs: [100, 1000], inactivityMs: 20_000 },
      onChange: () => ctl.kick(),
    });
    const ctl: Controller = new Controller(kube, state, {
      identity: "outage-test",
      namespace: NAMESPACE,
      leaseDurationS: 30,
      renewDeadlineMs: 60_000,
      retryMs: 200,
      log,
    });
    try {
      await create(c, pool("lan", ["192.0.2.80/32"]));
      state.start();
      ctl.start();
      await until("leader", () => ctl.isLeader);
      await c.down();
      // 8 s of outage: some 40 failed Lease rounds.
      await Bun.sleep(8000);
      await c.up();
      await until(
        "recovery logged",
        () => lines.some((l) => l.message === "controller: the API server answers again"),
        30_000,
      );
      const lease = lines.filter(
        (l) => l.message === "controller: cannot renew or take the controller Lease",
      );
      expect(lease.length).toBe(1);
      // No line repeats during the outage, and none carries Bun's wording.
      const warned = lines.filter((l) => l.level === "warn").map((l) => l.message);
      expect(warned.length).toBe(new Set(warned).size);
      expect(JSON.stringify(lines)).not.toContain("Is the computer able to access the url");
      expect(lease[0]?.error).toBe(
        `cannot reach the Kubernetes API server at ${kube.server}: connection refused`,
      );
      const back = lines.find((l) => l.message === "controller: the API server answers again");
      expect(back?.failures).toBeGreaterThan(5);
      // Still the controller, and working.
      await create(c, service("after"));
      const t0 = Date.now();
      await until(
        "served after the outage",
        async () => ingress(await getService(c, "after"))[0] === "192.0.2.80",
        60_000,
      );
      console.log(`served ${Date.now() - t0} ms after the Service was created, after the outage`);
    } finally {
      await ctl.stop().catch(() => {});
      state.stop();
      await c.close();
    }
  }, 120_000);
}
