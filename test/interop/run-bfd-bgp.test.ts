/**
 * BFD driving BGP inside `vipd run`, against BIRD 2 in a router namespace (BGP + BFD at 50 ms × 3).
 *
 * Story: vipd's BGP session and its BFD session come up and the router learns the VIP. BFD is
 * then dropped by a tc bpf filter on vipd's link while the link itself stays up: vipd's BFD goes
 * down and takes its BGP session down at once (the router withdraws the VIP), and BGP stays down
 * while BFD is down. When the filter goes, BFD comes Up again and only then BGP re-establishes.
 */

import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildDropFilter, dropBfd, undropBfd } from "../../src/bfd/testdata/peers.ts";
import { Lab } from "../../src/lab/netns.ts";

setDefaultTimeout(120_000);

const ROOT = join(import.meta.dir, "..", "..");
let lab: Lab;
let dir: string;

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

async function api<T>(path: string): Promise<T | undefined> {
  const r = await lab.run("node", ["curl", "-sf", "--max-time", "2", `http://127.0.0.1:7473${path}`], {
    allowFail: true,
  });
  return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
}

type Peers = { items: { name?: string; state: string }[] };
type Bfd = { items: { peer: string; state: string }[] };
const bgpState = async () => (await api<Peers>("/api/v1/bgp/peers"))?.items[0]?.state;
const bfdState = async () => (await api<Bfd>("/api/v1/bfd/sessions"))?.items[0]?.state;
const birdRoutes = async () =>
  (await lab.run("router", ["birdc", "-s", join(dir, "bird.ctl"), "show", "route"], { allowFail: true }))
    .stdout;

async function until(what: string, f: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

beforeAll(async () => {
  lab = await Lab.create("runbfd");
  dir = mkdtempSync(join(tmpdir(), "vipd-run-bfd-"));
  await lab.addNs("node");
  await lab.addNs("router");
  await lab.veth("node", "eth0", "router", "eth0");
  await lab.addr("node", "eth0", "10.88.1.2/24");
  await lab.addr("router", "eth0", "10.88.1.1/24");
  mkdirSync(join(dir, "config"));
  writeFileSync(join(dir, "config", "site.yaml"), CONFIG);
  writeFileSync(join(dir, "bird.conf"), BIRD);
  lab.spawn("router", ["bird", "-f", "-c", join(dir, "bird.conf"), "-s", join(dir, "bird.ctl")]);
  lab.spawn(
    "node",
    [
      "bun",
      join(ROOT, "src", "main.ts"),
      "run",
      "--config",
      join(dir, "config"),
      "--state-dir",
      join(dir, "state"),
    ],
    {
      stderr: "ignore",
    },
  );
  await until(
    "BGP Established and BFD Up",
    async () => (await bgpState()) === "Established" && (await bfdState()) === "Up",
  );
  await until("the router to learn the VIP", async () => (await birdRoutes()).includes("10.88.0.100/32"));
});

afterAll(async () => {
  await lab?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the API and /metrics show the session, its prefixes and BFD", async () => {
  const peers = (
    await api<{ items: { name?: string; state: string; prefixesSent: number; asn: number }[] }>(
      "/api/v1/bgp/peers",
    )
  )?.items;
  expect(peers?.map((p) => [p.name, p.state, p.prefixesSent, p.asn])).toEqual([
    ["router", "Established", 1, 64500],
  ]);
  const m = await lab.run("node", ["curl", "-sf", "--max-time", "2", "http://127.0.0.1:7473/metrics"]);
  expect(m.stdout).toContain('vipd_bgp_session_up{peer="router"} 1');
  expect(m.stdout).toContain('vipd_bgp_prefixes_sent{peer="router"} 1');
  expect(m.stdout).toMatch(/vipd_bgp_updates_sent_total\{peer="router"\} [1-9]/);
  expect(m.stdout).toContain('vipd_bfd_session_up{session="router"} 1');
});

test("BFD down takes the BGP session down at once and holds it down; BFD up lets it come back", async () => {
  const obj = await buildDropFilter(dir);
  await dropBfd(lab, "node", "eth0", obj);
  try {
    await until("vipd's BFD session down", async () => (await bfdState()) === "Down", 5_000);
    await until("vipd's BGP session held down", async () => (await bgpState()) !== "Established", 2_000);
    await until(
      "the router to withdraw the VIP",
      async () => !(await birdRoutes()).includes("10.88.0.100/32"),
      10_000,
    );
    // The link is up (plain IP passes), yet BGP stays down while BFD is down.
    expect(
      (await lab.run("node", ["ping", "-c", "1", "-W", "2", "10.88.1.1"], { allowFail: true })).code,
    ).toBe(0);
    await Bun.sleep(3000);
    expect(await bgpState()).not.toBe("Established");
    expect(await bfdState()).not.toBe("Up");
  } finally {
    await undropBfd(lab, "node", "eth0");
  }
  await until("BFD Up again", async () => (await bfdState()) === "Up", 20_000);
  await until("BGP Established again", async () => (await bgpState()) === "Established", 30_000);
  await until(
    "the router to learn the VIP again",
    async () => (await birdRoutes()).includes("10.88.0.100/32"),
    20_000,
  );
});
