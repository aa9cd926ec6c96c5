/**
 * Objects that got in without the admission webhook (it was off, or its failurePolicy Ignore let
 * them through while vipd was down): the bad one and what depends on it stay out, everything else
 * applies, and the operator sees why — a Warning Event InvalidConfiguration on the object, the
 * ConfigurationState "controller" Invalid with the problem, and ClusterState.stale (the
 * vipd_config_stale gauge). Run against the faithful test API server and a real kube-apiserver
 * 1.20.2 (which FAILS when its binary is missing; nothing is skipped).
 */
import { expect, test } from "bun:test";
import { PATHS } from "../../src/k8s/client.ts";
import { CONFIG_STATE_PLURAL } from "../../src/k8s/config-state.ts";
import { until } from "../support/until.ts";
import { fakeCluster, NAMESPACE, realCluster, type TestCluster } from "./harness.ts";
import { create, eventsFor, getService, ingress, pool, service, startVipd, type Vipd } from "./vipd.ts";

const configState = async (c: TestCluster) =>
  (await c.admin.get(`${PATHS.metallb(CONFIG_STATE_PLURAL, NAMESPACE)}/controller`)).status as
    | { result?: string; errorSummary?: string; conditions?: { type: string; status: string }[] }
    | undefined;

for (const [tier, make] of [
  ["test API server", () => fakeCluster()],
  ["kube-apiserver 1.20.2", () => realCluster()],
  // vipd as the k3s addon's ServiceAccount: its Role lets it write the ConfigurationState and Events.
  ["kube-apiserver 1.20.2 + RBAC", () => realCluster({ rbac: true })],
] as const) {
  test(`${tier}: a bad pool stays out and says why; a new good pool and its Service still get served; a restart says nothing twice`, async () => {
    const c = await make();
    const started: Vipd[] = [];
    try {
      await create(c, pool("a", ["192.0.2.10/31"]));
      await create(c, service("first"));
      started.push(startVipd(c, { node: "n1", speaker: false }));
      await until("first served", async () => ingress(await getService(c, "first"))[0] === "192.0.2.10");
      await until(
        "ConfigurationState Valid",
        async () => (await configState(c).catch(() => undefined))?.result === "Valid",
      );

      // The API server takes what the CRD's schema allows: 192.168.300.0/24 gets in.
      await create(c, pool("bad", ["192.168.300.0/24"]));
      await create(c, pool("b", ["198.51.100.20/31"]));
      await create(c, service("wants-b", {}, { "metallb.universe.tf/address-pool": "b" }));
      await until("wants-b served from the new pool b", async () =>
        ingress(await getService(c, "wants-b"))[0]?.startsWith("198.51.100.2"),
      );
      const v = started[0] as Vipd;
      expect(v.state.stale).toBe(true);
      const ev = await until("InvalidConfiguration on the bad pool", async () =>
        (await eventsFor(c, "bad", NAMESPACE)).find((e) => e.reason === "InvalidConfiguration"),
      );
      expect(ev.type).toBe("Warning");
      expect(ev.note).toContain('IPAddressPool/bad: spec.addresses[0]: "192.168.300.0" is not an IP address');
      const st = await until("ConfigurationState Invalid", async () => {
        const s = await configState(c);
        return s?.result === "Invalid" && s;
      });
      expect(st.errorSummary).toBe(
        'IPAddressPool/bad is not in force: IPAddressPool/bad: spec.addresses[0]: "192.168.300.0" is not an IP address',
      );
      expect(st.conditions?.[0]).toMatchObject({ type: "Valid", status: "False" });
      // The pool in force before is untouched.
      expect(ingress(await getService(c, "first"))).toEqual(["192.0.2.10"]);

      // A controller restart (same identity) does not repeat the Warning.
      await v.stop();
      started.push(startVipd(c, { node: "n1", speaker: false }));
      await create(c, service("after-restart", {}, { "metallb.universe.tf/address-pool": "b" }));
      await until(
        "after-restart served",
        async () => ingress(await getService(c, "after-restart")).length === 1,
      );
      await Bun.sleep(500);
      expect(
        (await eventsFor(c, "bad", NAMESPACE)).filter((e) => e.reason === "InvalidConfiguration").length,
      ).toBe(1);

      // Fixed by deleting it: Valid again, not stale.
      await c.admin.delete(`${PATHS.metallb("ipaddresspools", NAMESPACE)}/bad`);
      await until("ConfigurationState Valid again", async () => (await configState(c))?.result === "Valid");
      expect((started[1] as Vipd).state.stale).toBe(false);
    } finally {
      for (const v of started) await v.stop().catch(() => {});
      await c.close();
    }
  }, 90_000);

  test(`${tier}: pools outside vipd's namespace are ignored (a same-named pool elsewhere changes nothing)`, async () => {
    const c = await make();
    let v: Vipd | undefined;
    try {
      await c.admin
        .create("/api/v1/namespaces", {
          apiVersion: "v1",
          kind: "Namespace",
          metadata: { name: "elsewhere" },
        })
        .catch(() => {});
      await create(c, pool("lan", ["192.0.2.40/32"]));
      await c.admin.create(PATHS.metallb("ipaddresspools", "elsewhere"), {
        ...pool("lan", ["203.0.113.0/24"]),
        metadata: { name: "lan", namespace: "elsewhere" },
      });
      await create(c, service("one"));
      v = startVipd(c, { node: "n1", speaker: false });
      await until(
        "one served from vipd's pool",
        async () => ingress(await getService(c, "one"))[0] === "192.0.2.40",
      );
      expect(v.state.stale).toBe(false);
      expect(v.state.crObjects().map((o) => `${o.obj.metadata.namespace}/${o.obj.metadata.name}`)).toEqual([
        `${NAMESPACE}/lan`,
      ]);
    } finally {
      await v?.stop().catch(() => {});
      await c.close();
    }
  }, 60_000);
}
