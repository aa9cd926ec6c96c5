/**
 * A driver whose apply throws gets the plan again, with backoff, until it takes it — in BOTH
 * modes, through the one plan applier (src/node/applier.ts):
 * - the appliance Daemon, with real manifests in a temp directory;
 * - the Kubernetes speaker, against the faithful in-process API server (test/k8s/apiserver.ts,
 *   over TLS on loopback) with the real controller writing the Service's address.
 * The retry timers are injected: the test fires them itself and reads the delays asked for
 * (0.5 s, then doubling), so nothing here sleeps for a backoff.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Daemon } from "../../src/appliance/daemon.ts";
import type { Driver } from "../../src/drivers/driver.ts";
import { Kube, loadKubeConfig } from "../../src/k8s/client.ts";
import { Controller } from "../../src/k8s/controller.ts";
import { Speaker } from "../../src/k8s/speaker.ts";
import { ClusterState } from "../../src/k8s/state.ts";
import type { NodeEvent, Timers } from "../../src/node/applier.ts";
import type { Plan } from "../../src/plan/plan.ts";
import { createLogger } from "../../src/util/log.ts";
import { fakeCluster, NAMESPACE, waitFor } from "../k8s/harness.ts";
import { create, l2adv, node, pool, service } from "../k8s/vipd.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const quiet = () => createLogger("test", { sink: () => {} });

/** Timers the test fires by hand; `delays` records every wait asked for. */
class ManualTimers implements Timers {
  readonly delays: number[] = [];
  private pending: (() => void) | undefined;
  now = () => Date.now();
  setTimeout = (f: () => void, ms: number) => {
    this.delays.push(ms);
    this.pending = f;
    return f;
  };
  clearTimeout = (h: unknown) => {
    if (h === this.pending) this.pending = undefined;
  };
  /** Fires the scheduled retry; false when none is scheduled. */
  fire(): boolean {
    const f = this.pending;
    this.pending = undefined;
    f?.();
    return f !== undefined;
  }
}

/**
 * A driver that throws on the first `failures` plans that own a VIP (a gain it cannot program yet),
 * then records the plans it takes.
 */
class FlakyDriver implements Driver {
  readonly name = "flaky";
  readonly taken: Plan[] = [];
  attempts = 0;
  constructor(private failures: number) {}
  async apply(plan: Plan): Promise<void> {
    if (plan.l2.length === 0) return;
    this.attempts++;
    if (this.failures > 0) {
      this.failures--;
      throw new Error("netlink busy");
    }
    this.taken.push(plan);
  }
  health() {
    return { name: this.name, healthy: true };
  }
  async close(): Promise<void> {}
}

const VIP = "10.0.0.5";

describe("the appliance Daemon retries a failed driver apply", () => {
  test("two failures: retried after 0.5 s, then 1 s; the third apply takes the plan; no retry after", async () => {
    const d = mkdtempSync(join(tmpdir(), `vipd-retry-${process.pid}-`));
    dirs.push(d);
    writeFileSync(
      join(d, "vipd.yaml"),
      `apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: a }
spec: { nodeName: a }
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan }
spec: { addresses: ["${VIP}/32"] }
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: lan-l2 }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { type: LoadBalancer, ports: [{ port: 80 }] }
`,
    );
    const timers = new ManualTimers();
    const events: NodeEvent[] = [];
    const daemon = new Daemon({
      configPaths: [d],
      version: "test",
      log: quiet(),
      timers,
      onEvent: (e) => events.push(e),
    });
    const flaky = new FlakyDriver(2);
    daemon.addDriver(flaky);
    expect((await daemon.reload("start")).ok).toBe(true);
    expect([flaky.attempts, flaky.taken.length, timers.delays]).toEqual([1, 0, [500]]);
    // Nothing changes; the retry alone hands the plan again. It fails too: the next wait doubles.
    expect(timers.fire()).toBe(true);
    await waitFor("the second attempt", () => flaky.attempts === 2 && timers.delays.length === 2);
    expect(timers.delays).toEqual([500, 1000]);
    expect(timers.fire()).toBe(true);
    await waitFor("the third attempt", () => flaky.attempts === 3);
    expect(flaky.taken.at(-1)?.l2.map((e) => e.ip)).toEqual([VIP]);
    // Converged: nothing more is scheduled.
    expect(timers.fire()).toBe(false);
    const applied = events.filter((e) => e.type === "applied");
    expect(applied.some((e) => e.type === "applied" && !e.ok && e.failed.includes("flaky"))).toBe(true);
    expect(applied.at(-1)).toMatchObject({ ok: true, l2: [VIP] });
    await daemon.close();
  });
});

describe("the Kubernetes speaker retries a failed driver apply", () => {
  test("a plan the driver refused is applied again with backoff until the driver takes it", async () => {
    const c = await fakeCluster();
    const kube = new Kube(loadKubeConfig(c.kubeconfig));
    let controller: Controller | undefined;
    let speaker: Speaker | undefined;
    const state = new ClusterState(kube, {
      namespace: NAMESPACE,
      endpointSliceVersion: c.endpointSliceVersion,
      onChange: () => {
        controller?.kick();
        speaker?.kick();
      },
    });
    try {
      await create(c, node("n1"));
      await create(c, pool("lan", ["192.0.2.90/32"]));
      await create(c, l2adv("l2"));
      await create(c, service("web"));
      const timers = new ManualTimers();
      const flaky = new FlakyDriver(2);
      controller = new Controller(kube, state, { identity: "n1", namespace: NAMESPACE, log: quiet() });
      speaker = new Speaker(kube, state, { node: "n1", namespace: NAMESPACE, drivers: [flaky], timers });
      state.start();
      controller.start();
      speaker.kick();
      // The first plan that owns the VIP reaches the driver, which refuses it twice.
      await waitFor(
        "a refused plan that owns the VIP",
        () =>
          speaker?.currentPlan.l2.some((e) => e.ip === "192.0.2.90") &&
          timers.delays.length > 0 &&
          flaky.attempts > 0,
      );
      expect(flaky.taken).toEqual([]);
      await waitFor("the refusal retried", () => {
        if (flaky.taken.some((p) => p.l2.some((e) => e.ip === "192.0.2.90"))) return true;
        timers.fire();
        return false;
      });
      // 0.5 s first, each further wait doubling (a watch event in between may also re-apply:
      // a refused plan is never taken as applied).
      expect(timers.delays[0]).toBe(500);
      expect(timers.delays.every((d, i) => i === 0 || d === 2 * (timers.delays[i - 1] ?? 0))).toBe(true);
      expect(flaky.attempts).toBe(3);
      expect(flaky.taken.at(-1)?.l2.map((e) => e.ip)).toEqual(["192.0.2.90"]);
      await speaker.idle();
      expect(timers.fire()).toBe(false);
    } finally {
      await controller?.stop();
      await speaker?.stop();
      state.stop();
      await c.close();
    }
  }, 30_000);
});
