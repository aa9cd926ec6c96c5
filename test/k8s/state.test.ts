/**
 * ClusterState against the faithful test API server: the cluster's objects become a validated
 * Config — BGP passwords come from Secrets in vipd's namespace, a Service that fails validation
 * is left out alone, and invalid metallb.io objects keep the last good pools in force (nothing
 * is withdrawn because someone applied a typo).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Kube, loadKubeConfig, PATHS } from "../../src/k8s/client.ts";
import { ClusterState } from "../../src/k8s/state.ts";
import { until } from "../support/until.ts";
import { fakeCluster, NAMESPACE } from "./harness.ts";
import { create, pool, service } from "./vipd.ts";

let c: Awaited<ReturnType<typeof fakeCluster>>;
let state: ClusterState;
beforeAll(async () => {
  c = await fakeCluster();
  state = new ClusterState(new Kube(loadKubeConfig(c.kubeconfig)), {
    namespace: NAMESPACE,
    informer: { backoffMs: [50, 200] },
  });
  state.start();
  await state.waitSynced();
});
afterAll(async () => {
  state.stop();
  await c.close();
});

test("a BGPPeer's passwordSecret is resolved from a Secret in vipd's namespace (and reported while missing)", async () => {
  await c.admin.create(PATHS.metallb("bgppeers", NAMESPACE), {
    apiVersion: "metallb.io/v1beta2",
    kind: "BGPPeer",
    metadata: { name: "tor", namespace: NAMESPACE },
    spec: {
      myASN: 64500,
      peerASN: 64501,
      peerAddress: "192.0.2.254",
      passwordSecret: { name: "tor-pw", namespace: NAMESPACE },
    },
  });
  const missing = await until("peer seen", () => {
    const v = state.config();
    return v.problems.some((p) => p.field === "spec.passwordSecret") && v;
  });
  expect(missing.problems.find((p) => p.field === "spec.passwordSecret")?.message).toContain(
    'secret "tor-pw"',
  );
  await c.admin.create(PATHS.secrets(NAMESPACE), {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "tor-pw", namespace: NAMESPACE },
    type: "kubernetes.io/basic-auth",
    data: { password: Buffer.from("s3cret").toString("base64") },
  });
  const v = await until("password resolved", () => {
    const x = state.config();
    return x.config?.peers.length === 1 && x;
  });
  expect(v.config?.peers[0]?.spec.password).toBe("s3cret");
  expect(v.config?.peers[0]?.spec.passwordSecret).toBeUndefined();
});

test("an invalid Service is left out on its own; invalid pools keep the last good ones in force", async () => {
  await create(c, pool("good", ["192.0.2.0/28"]));
  await create(c, service("fine"));
  // Valid for the API server, not for vipd: a port name is fine, a loadBalancerIP that is not an IP is not.
  await create(c, service("broken", { loadBalancerIP: "not-an-ip" }));
  const v = await until("both seen", () => {
    const x = state.config();
    return (
      x.config?.services.some((s) => s.metadata.name === "fine") &&
      x.problems.some((p) => p.name === "broken") &&
      x
    );
  });
  expect(v.config?.services.map((s) => s.metadata.name)).toEqual(["fine"]);
  expect(v.config?.pools.map((p) => p.metadata.name)).toEqual(["good"]);
  // A second pool overlapping the first: the set is invalid, the last good pools stay.
  await create(c, pool("overlap", ["192.0.2.8/29"]));
  const after = await until("overlap seen", () => {
    const x = state.config();
    return x.problems.some((p) => p.name === "overlap" || p.name === "good") && x;
  });
  expect(after.config?.pools.map((p) => p.metadata.name)).toEqual(["good"]);
  expect(after.config?.services.map((s) => s.metadata.name)).toEqual(["fine"]);
});
