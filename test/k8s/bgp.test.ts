/**
 * BGP and BFD in Kubernetes mode, for real: two `vipd k8s` speakers, each in its own network
 * namespace on one bridge, against a real kube-apiserver v1.20.2 under the k3s addon's RBAC, and
 * BIRD 2 as the site's router in a third namespace (test/k8s/l2lab.ts builds the segment).
 *
 * The speakers start with a pool, a BGPAdvertisement and a Service but no BGPPeer: nothing
 * listens on port 179. Then a BGPPeer with a BFDProfile is created through the API server, as a
 * user would with kubectl: both speakers open sessions with BIRD (no restart), BFD comes Up, the
 * router learns the Service's IP from both nodes (ECMP), and each speaker publishes a
 * ServiceBGPStatus naming the peer. Deleting the BGPPeer closes the sessions and the router
 * withdraws the route. Needs root; fails (never skips) when BIRD, the server or netns are missing.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { PATHS } from "../../src/k8s/client.ts";
import { until } from "../support/until.ts";
import { NAMESPACE, realCluster, type TestCluster } from "./harness.ts";
import { K8sL2Lab, SUBNET, VIP } from "./l2lab.ts";
import { create, getService, ingress, pool, service } from "./vipd.ts";

setDefaultTimeout(120_000);

let c: TestCluster;
let lab: K8sL2Lab;
const ROUTER = `${SUBNET}.2`;
const birdConf = () => `router id ${ROUTER};
protocol device { }
protocol bfd { interface "eth0" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }
template bgp vipd {
  local ${ROUTER} as 64500;
  ipv4 { import all; export none; };
  hold time 9; connect retry time 1; error wait time 1,2; bfd on;
}
${lab.nodes.map((n) => `protocol bgp ${n.name} from vipd { neighbor ${n.ip} as 64512; }`).join("\n")}
`;

const peerPath = PATHS.metallb("bgppeers", NAMESPACE);
const birdc = async (...cmd: string[]) =>
  (await lab.lab.run("client", ["birdc", "-s", join(lab.work, "bird.ctl"), ...cmd], { allowFail: true }))
    .stdout;
/** The next hops BIRD has for the VIP's /32 (one per node that announces it). */
const nextHops = async (): Promise<string[]> => {
  const out = await birdc("show", "route", `${VIP}/32`, "all");
  return [...out.matchAll(/BGP\.next_hop: (\S+)/g)].map((m) => m[1] as string).sort();
};

beforeAll(async () => {
  c = await realCluster({ rbac: true });
  lab = await K8sL2Lab.create(c, { tag: "k8bgp", nodes: 2 });
  await lab.createNodes();
  await create(c, pool("bgp-lan", [`${VIP}/32`]));
  await c.admin.create(PATHS.metallb("bgpadvertisements", NAMESPACE), {
    apiVersion: "metallb.io/v1beta1",
    kind: "BGPAdvertisement",
    metadata: { name: "bgp-lan", namespace: NAMESPACE },
    spec: { ipAddressPools: ["bgp-lan"] },
  });
  await create(c, service("bgp-web"));
  writeFileSync(join(lab.work, "bird.conf"), birdConf());
  lab.lab.spawn("client", [
    "bird",
    "-f",
    "-c",
    join(lab.work, "bird.conf"),
    "-s",
    join(lab.work, "bird.ctl"),
  ]);
  for (const n of lab.nodes) lab.start(n);
}, 180_000);

afterAll(async () => {
  await lab?.destroy();
  await c?.close();
});

test("without a BGPPeer the speakers do not listen on port 179; the Service has its IP", async () => {
  await until("the Service's IP", async () => ingress(await getService(c, "bgp-web"))[0] === VIP, 30_000);
  // The API answers before the drivers have started (startNode binds it first): wait for both
  // speakers to list their BGP driver, then check what it says.
  await until(
    "both speakers' BGP drivers in /api/v1/status",
    async () =>
      (
        await Promise.all(lab.nodes.map((n) => lab.api<{ drivers: { name: string }[] }>(n, "/api/v1/status")))
      ).every((s) => s?.drivers.some((d) => d.name === "bgp")),
    30_000,
  );
  for (const n of lab.nodes) {
    const ss = await lab.lab.run(n.ns, ["ss", "-Htln", "sport", "= :179"], { allowFail: true });
    expect(ss.stdout.trim()).toBe("");
    const s = await lab.api<{ drivers: { name: string; detail?: string }[] }>(n, "/api/v1/status");
    expect(s?.drivers.find((d) => d.name === "bgp")?.detail).toBe("idle: no BGPPeer configured");
  }
  expect(await nextHops()).toEqual([]);
});

test("a BGPPeer with BFD created at runtime: sessions, BFD Up, the route from both nodes (ECMP), ServiceBGPStatus", async () => {
  await c.admin.create(PATHS.metallb("bfdprofiles", NAMESPACE), {
    apiVersion: "metallb.io/v1beta1",
    kind: "BFDProfile",
    metadata: { name: "fast", namespace: NAMESPACE },
    spec: { receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3 },
  });
  await c.admin.create(peerPath, {
    apiVersion: "metallb.io/v1beta2",
    kind: "BGPPeer",
    metadata: { name: "router", namespace: NAMESPACE },
    spec: {
      myASN: 64512,
      peerASN: 64500,
      peerAddress: ROUTER,
      holdTime: "9s",
      connectTime: "1s",
      bfdProfile: "fast",
    },
  });
  await until(
    "the router to learn the VIP from both nodes",
    async () => JSON.stringify(await nextHops()) === JSON.stringify(lab.nodes.map((n) => n.ip).sort()),
    40_000,
  );
  for (const n of lab.nodes) {
    const peers = await lab.api<{ items: { name?: string; state: string; prefixesSent: number }[] }>(
      n,
      "/api/v1/bgp/peers",
    );
    expect(peers?.items.map((p) => [p.name, p.state, p.prefixesSent])).toEqual([
      ["router", "Established", 1],
    ]);
  }
  await until(
    "BFD Up on both speakers",
    async () => {
      const s = await Promise.all(
        lab.nodes.map((n) => lab.api<{ items: { state: string }[] }>(n, "/api/v1/bfd/sessions")),
      );
      return s.every((x) => x?.items.length === 1 && x.items[0]?.state === "Up");
    },
    20_000,
  );
  // BIRD's side: one BFD session per node, Up.
  const bfd = (await birdc("show", "bfd", "sessions")).split("\n");
  for (const n of lab.nodes) expect(bfd.find((l) => l.startsWith(`${n.ip} `))?.split(/\s+/)).toContain("Up");
  const statuses = await until(
    "a ServiceBGPStatus from each speaker",
    async () => {
      const l = await c.admin.list(PATHS.metallb("servicebgpstatuses", NAMESPACE));
      const mine = l.items.filter(
        (o) => (o.status as { serviceName?: string } | undefined)?.serviceName === "bgp-web",
      );
      return mine.length === lab.nodes.length ? mine : undefined;
    },
    20_000,
  );
  for (const o of statuses) expect((o.status as { peers?: string[] }).peers).toEqual(["router"]);
});

test("deleting the BGPPeer closes the sessions and the router withdraws the route", async () => {
  await c.admin.delete(`${peerPath}/router`);
  await until("the router to withdraw the VIP", async () => (await nextHops()).length === 0, 30_000);
  for (const n of lab.nodes)
    await until(
      `${n.name} to drop the session`,
      async () => (await lab.api<{ items: unknown[] }>(n, "/api/v1/bgp/peers"))?.items.length === 0,
      10_000,
    );
});
