/**
 * Multihop BFD (RFC 5883, UDP 4784) between vipd and FRR bfdd across two router namespaces:
 * packets arrive with TTL 253. The session comes Up with `minimumTtl: 253`; raising it to 254
 * makes vipd drop FRR's packets in the kernel (socket filter) and detect the session down; lowering
 * it again recovers.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import type { DesiredSession } from "../../src/bfd/manager.ts";
import { DEFAULT_PROFILE } from "../../src/bfd/profile.ts";
import { Agent, FrrBfd, tempDir, waitFor } from "../support/bfd/peers.ts";
import { Lab } from "../support/netns.ts";

const profile = {
  ...DEFAULT_PROFILE,
  receiveInterval: 50,
  transmitInterval: 50,
  detectMultiplier: 3,
  minimumTtl: 253,
};
const session: DesiredSession = { key: "mh", peer: "10.81.1.2", local: "10.81.0.1", multihop: true, profile };

let lab: Lab;
let tmp: ReturnType<typeof tempDir>;
let frr: FrrBfd;
let agent: Agent;

beforeAll(async () => {
  lab = await Lab.create("bfdmh");
  tmp = tempDir("mh");
  for (const ns of ["v", "r1", "r2", "f"]) await lab.addNs(ns);
  await lab.veth("v", "eth0", "r1", "eth0");
  await lab.veth("r1", "eth1", "r2", "eth0");
  await lab.veth("r2", "eth1", "f", "eth0");
  await lab.addr("v", "eth0", "10.81.0.1/24");
  await lab.addr("r1", "eth0", "10.81.0.254/24");
  await lab.addr("r1", "eth1", "10.81.2.1/24");
  await lab.addr("r2", "eth0", "10.81.2.2/24");
  await lab.addr("r2", "eth1", "10.81.1.254/24");
  await lab.addr("f", "eth0", "10.81.1.2/24");
  for (const r of ["r1", "r2"]) await lab.run(r, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  await lab.run("v", ["ip", "route", "add", "10.81.1.0/24", "via", "10.81.0.254"]);
  await lab.run("r1", ["ip", "route", "add", "10.81.1.0/24", "via", "10.81.2.2"]);
  await lab.run("r2", ["ip", "route", "add", "10.81.0.0/24", "via", "10.81.2.1"]);
  await lab.run("f", ["ip", "route", "add", "10.81.0.0/24", "via", "10.81.1.254"]);
  frr = await FrrBfd.start(
    lab,
    "f",
    tmp.path,
    [
      "bfd",
      " profile mh",
      "  receive-interval 50",
      "  transmit-interval 50",
      "  detect-multiplier 3",
      "  minimum-ttl 253",
      " !",
      " peer 10.81.0.1 multihop local-address 10.81.1.2",
      "  profile mh",
      " !",
      "!",
      "",
    ].join("\n"),
  );
  agent = await Agent.start(lab, "v", tmp.path, [session]);
}, 60_000);

afterAll(async () => {
  await lab?.destroy();
  tmp?.rm();
});

const frrUp = async () => (await frr.status("10.81.0.1")) === "up";

test("a multihop session through two routers comes Up at 50 ms x 3", async () => {
  await agent.waitFor((e) => e.ev === "up" && e.key === "mh", 20_000, "vipd up");
  await waitFor(frrUp, 10_000, "FRR up");
}, 40_000);

test("minimumTtl 254 drops the peer's TTL-253 packets: detected down; 253 again recovers", async () => {
  const mark = agent.events.length;
  agent.reconfigure([{ ...session, profile: { ...profile, minimumTtl: 254 } }]);
  const down = await agent.waitFor(
    (e) => e.ev === "down" && e.key === "mh" && e.diag === "ControlDetectionTimeExpired",
    5_000,
    "vipd detects",
    mark,
  );
  expect(down.diag).toBe("ControlDetectionTimeExpired");
  agent.reconfigure([session]);
  await agent.waitFor((e) => e.ev === "up" && e.key === "mh", 20_000, "vipd up again", mark);
  await waitFor(frrUp, 10_000, "FRR up again");
}, 40_000);
