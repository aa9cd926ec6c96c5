/**
 * The first BGPPeer added to a running `vipd run` (a file change, no restart): before it, the node
 * does not listen on port 179 and says BGP is idle; after it, the session with BIRD comes up with
 * BFD, and the router learns the VIP. Removing the peer again closes the session and the router
 * withdraws the VIP.
 */

import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { until } from "../support/until.ts";
import { RunAndRouter } from "./run-router.ts";

setDefaultTimeout(120_000);

let t: RunAndRouter;

const SITE = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: site }
spec: { addresses: [10.88.0.100/30] }
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: site }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { type: LoadBalancer, ports: [{ port: 80 }] }
`;

const PEER = `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: router }
spec: { myASN: 64512, peerASN: 64500, peerAddress: 10.88.1.1, holdTime: 9s, connectTime: 1s, bfdProfile: fast }
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: { name: fast }
spec: { receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3 }
`;

const BIRD = `router id 10.88.1.1;
protocol device { }
protocol bfd { interface "eth0" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }
protocol bgp vipd {
  local 10.88.1.1 as 64500; neighbor 10.88.1.2 as 64512;
  ipv4 { import all; export none; };
  hold time 9; connect retry time 1; error wait time 1,2; bfd on;
}
`;

type Status = { drivers: { name: string; healthy: boolean; detail?: string }[] };
type Peers = { items: { name?: string; state: string }[] };
type Bfd = { items: { peer: string; state: string }[] };
const listening179 = async () =>
  (await t.lab.run("node", ["ss", "-Htln", "sport", "= :179"], { allowFail: true })).stdout.trim() !== "";

beforeAll(async () => {
  t = await RunAndRouter.start("bgplater", { "site.yaml": SITE }, BIRD);
  await until("the API", async () => (await t.api<Status>("/api/v1/status")) !== undefined);
});

afterAll(async () => {
  await t?.destroy();
});

test("without a BGPPeer the node does not listen on 179 and says BGP is idle", async () => {
  const s = await t.api<Status>("/api/v1/status");
  expect(s?.drivers.find((d) => d.name === "bgp")).toEqual({
    name: "bgp",
    healthy: true,
    detail: "idle: no BGPPeer configured",
  });
  expect(await listening179()).toBe(false);
  expect((await t.api<Peers>("/api/v1/bgp/peers"))?.items).toEqual([]);
});

test("adding the first BGPPeer to the running node brings BGP and BFD up and the route to the router", async () => {
  writeFileSync(join(t.configDir, "peer.yaml"), PEER);
  await until("BGP Established", async () => (await t.bgpState()) === "Established", 30_000);
  await until("BFD Up", async () => (await t.bfdState()) === "Up", 20_000);
  await until("the router to learn the VIP", async () => (await t.birdRoutes()).includes("10.88.0.100/32"));
  expect(await listening179()).toBe(true);
  const s = await t.api<Status>("/api/v1/status");
  expect(s?.drivers.find((d) => d.name === "bgp")?.detail).toBe("1/1 session(s) established");
});

test("removing the peer again closes the session and the router withdraws the VIP", async () => {
  rmSync(join(t.configDir, "peer.yaml"));
  await until(
    "no BGP peer in the API",
    async () => (await t.api<Peers>("/api/v1/bgp/peers"))?.items.length === 0,
  );
  await until(
    "the router to withdraw the VIP",
    async () => !(await t.birdRoutes()).includes("10.88.0.100/32"),
    20_000,
  );
  expect((await t.api<Bfd>("/api/v1/bfd/sessions"))?.items).toEqual([]);
});
