/**
 * BFD driving BGP inside `vipd run`, against BIRD 2 in a router namespace (BGP + BFD at 50 ms × 3).
 *
 * Story: vipd's BGP session and its BFD session come up and the router learns the VIP. BFD is
 * then dropped by a tc bpf filter on vipd's link while the link itself stays up: vipd's BFD goes
 * down and takes its BGP session down at once (the router withdraws the VIP), and BGP stays down
 * while BFD is down. When the filter goes, BFD comes Up again and only then BGP re-establishes.
 */

import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { buildDropFilter, dropBfd, undropBfd } from "../support/bfd/peers.ts";
import { until } from "../support/until.ts";
import { RunAndRouter } from "./run-router.ts";

setDefaultTimeout(120_000);

let t: RunAndRouter;

const CONFIG = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: site }
spec: { addresses: [10.88.0.100/30] }
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: site }
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: router }
spec: { myASN: 64512, peerASN: 64500, peerAddress: 10.88.1.1, holdTime: 9s, connectTime: 1s, bfdProfile: fast }
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: { name: fast }
spec: { receiveInterval: 50, transmitInterval: 50, detectMultiplier: 3 }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { type: LoadBalancer, ports: [{ port: 80 }] }
`;

const BIRD = `router id 10.88.1.1;
protocol device { }
protocol bfd { interface "eth0" { min rx interval 50 ms; min tx interval 50 ms; multiplier 3; }; }
protocol bgp vipd {
  local 10.88.1.1 as 64500; neighbor 10.88.1.2 as 64512;
  ipv4 { import all; export none; };
  hold time 9; connect retry time 1; error wait time 1,2; bfd on;
}
`;

beforeAll(async () => {
  t = await RunAndRouter.start("runbfd", { "site.yaml": CONFIG }, BIRD);
  await until(
    "BGP Established and BFD Up",
    async () => (await t.bgpState()) === "Established" && (await t.bfdState()) === "Up",
  );
  await until("the router to learn the VIP", async () => (await t.birdRoutes()).includes("10.88.0.100/32"));
});

afterAll(async () => {
  await t?.destroy();
});

test("the API and /metrics show the session, its prefixes and BFD", async () => {
  const peers = (
    await t.api<{ items: { name?: string; state: string; prefixesSent: number; asn: number }[] }>(
      "/api/v1/bgp/peers",
    )
  )?.items;
  expect(peers?.map((p) => [p.name, p.state, p.prefixesSent, p.asn])).toEqual([
    ["router", "Established", 1, 64500],
  ]);
  const m = await t.lab.run("node", ["curl", "-sf", "--max-time", "2", "http://127.0.0.1:7473/metrics"]);
  expect(m.stdout).toContain('vipd_bgp_session_up{peer="router"} 1');
  expect(m.stdout).toContain('vipd_bgp_prefixes_sent{peer="router"} 1');
  expect(m.stdout).toMatch(/vipd_bgp_updates_sent_total\{peer="router"\} [1-9]/);
  expect(m.stdout).toContain('vipd_bfd_session_up{session="router"} 1');
});

test("BFD down takes the BGP session down at once and holds it down; BFD up lets it come back", async () => {
  const obj = await buildDropFilter(t.dir);
  await dropBfd(t.lab, "node", "eth0", obj);
  try {
    await until("vipd's BFD session down", async () => (await t.bfdState()) === "Down", 5_000);
    await until("vipd's BGP session held down", async () => (await t.bgpState()) !== "Established", 2_000);
    await until(
      "the router to withdraw the VIP",
      async () => !(await t.birdRoutes()).includes("10.88.0.100/32"),
      10_000,
    );
    // The link is up (plain IP passes), yet BGP stays down while BFD is down.
    expect(
      (await t.lab.run("node", ["ping", "-c", "1", "-W", "2", "10.88.1.1"], { allowFail: true })).code,
    ).toBe(0);
    await Bun.sleep(3000);
    expect(await t.bgpState()).not.toBe("Established");
    expect(await t.bfdState()).not.toBe("Up");
  } finally {
    await undropBfd(t.lab, "node", "eth0");
  }
  await until("BFD Up again", async () => (await t.bfdState()) === "Up", 20_000);
  await until("BGP Established again", async () => (await t.bgpState()) === "Established", 30_000);
  await until(
    "the router to learn the VIP again",
    async () => (await t.birdRoutes()).includes("10.88.0.100/32"),
    20_000,
  );
});
