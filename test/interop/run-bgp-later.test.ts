/**
 * The first BGPPeer added to a running `vipd run` (a file change, no restart): before it, the node
 * does not listen on port 179 and says BGP is idle; after it, the session with BIRD comes up with
 * BFD, and the router learns the VIP. Removing the peer again closes the session and the router
 * withdraws the VIP.
 */

import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Lab } from "../../src/lab/netns.ts";

setDefaultTimeout(120_000);

const ROOT = join(import.meta.dir, "..", "..");
let lab: Lab;
let dir: string;

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

async function api<T>(path: string): Promise<T | undefined> {
  const r = await lab.run("node", ["curl", "-sf", "--max-time", "2", `http://127.0.0.1:7473${path}`], {
    allowFail: true,
  });
  return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
}

type Status = { drivers: { name: string; healthy: boolean; detail?: string }[] };
type Peers = { items: { name?: string; state: string }[] };
type Bfd = { items: { peer: string; state: string }[] };
const bgpState = async () => (await api<Peers>("/api/v1/bgp/peers"))?.items[0]?.state;
const bfdState = async () => (await api<Bfd>("/api/v1/bfd/sessions"))?.items[0]?.state;
const birdRoutes = async () =>
  (await lab.run("router", ["birdc", "-s", join(dir, "bird.ctl"), "show", "route"], { allowFail: true }))
    .stdout;
const listening179 = async () =>
  (await lab.run("node", ["ss", "-Htln", "sport", "= :179"], { allowFail: true })).stdout.trim() !== "";

async function until(what: string, f: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

beforeAll(async () => {
  lab = await Lab.create("bgplater");
  dir = mkdtempSync(join(tmpdir(), "vipd-bgp-later-"));
  await lab.addNs("node");
  await lab.addNs("router");
  await lab.veth("node", "eth0", "router", "eth0");
  await lab.addr("node", "eth0", "10.88.1.2/24");
  await lab.addr("router", "eth0", "10.88.1.1/24");
  mkdirSync(join(dir, "config"));
  writeFileSync(join(dir, "config", "site.yaml"), SITE);
  writeFileSync(join(dir, "bird.conf"), BIRD);
  lab.spawn("router", ["bird", "-f", "-c", join(dir, "bird.conf"), "-s", join(dir, "bird.ctl")]);
  lab.spawn("node", ["bun", join(ROOT, "src", "main.ts"), "run", "--config", join(dir, "config")], {
    stderr: "ignore",
  });
  await until("the API", async () => (await api<Status>("/api/v1/status")) !== undefined);
});

afterAll(async () => {
  await lab?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("without a BGPPeer the node does not listen on 179 and says BGP is idle", async () => {
  const s = await api<Status>("/api/v1/status");
  expect(s?.drivers.find((d) => d.name === "bgp")).toEqual({
    name: "bgp",
    healthy: true,
    detail: "idle: no BGPPeer configured",
  });
  expect(await listening179()).toBe(false);
  expect((await api<Peers>("/api/v1/bgp/peers"))?.items).toEqual([]);
});

test("adding the first BGPPeer to the running node brings BGP and BFD up and the route to the router", async () => {
  writeFileSync(join(dir, "config", "peer.yaml"), PEER);
  await until("BGP Established", async () => (await bgpState()) === "Established", 30_000);
  await until("BFD Up", async () => (await bfdState()) === "Up", 20_000);
  await until("the router to learn the VIP", async () => (await birdRoutes()).includes("10.88.0.100/32"));
  expect(await listening179()).toBe(true);
  const s = await api<Status>("/api/v1/status");
  expect(s?.drivers.find((d) => d.name === "bgp")?.detail).toBe("1/1 session(s) established");
});

test("removing the peer again closes the session and the router withdraws the VIP", async () => {
  rmSync(join(dir, "config", "peer.yaml"));
  await until(
    "no BGP peer in the API",
    async () => (await api<Peers>("/api/v1/bgp/peers"))?.items.length === 0,
  );
  await until(
    "the router to withdraw the VIP",
    async () => !(await birdRoutes()).includes("10.88.0.100/32"),
    20_000,
  );
  expect((await api<Bfd>("/api/v1/bfd/sessions"))?.items).toEqual([]);
});
