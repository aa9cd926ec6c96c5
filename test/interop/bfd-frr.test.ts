/**
 * vipd BFD against FRR 8 bfdd in network namespaces (RFC 5880/5881 single-hop, 50 ms × 3):
 * the session comes Up on both sides; a SIGSTOPped bfdd is detected as Control Detection Time
 * Expired; BFD dropped by a tc bpf filter while the link stays up is detected; recovery brings the
 * session back; vipd's own AdminDown (session removed) takes FRR down at once.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import { controlPacket, encodeControl } from "../../src/bfd/codec.ts";
import type { DesiredSession } from "../../src/bfd/manager.ts";
import { DEFAULT_PROFILE } from "../../src/bfd/profile.ts";
import {
  Agent,
  buildDropFilter,
  dropBfd,
  FrrBfd,
  tempDir,
  undropBfd,
  waitFor,
} from "../support/bfd/peers.ts";
import { Lab } from "../support/netns.ts";

const fast = { ...DEFAULT_PROFILE, receiveInterval: 50, transmitInterval: 50, detectMultiplier: 3 };
const session: DesiredSession = {
  key: "frr",
  peer: "10.77.0.2",
  local: "10.77.0.1",
  multihop: false,
  profile: fast,
};

let lab: Lab;
let tmp: ReturnType<typeof tempDir>;
let frr: FrrBfd;
let agent: Agent;

beforeAll(async () => {
  lab = await Lab.create("bfdfrr");
  tmp = tempDir("frr");
  await lab.addNs("v");
  await lab.addNs("f");
  await lab.veth("v", "eth0", "f", "eth0");
  await lab.addr("v", "eth0", "10.77.0.1/24");
  await lab.addr("f", "eth0", "10.77.0.2/24");
  // A host with no BFD listener at all: it answers with ICMP port unreachable.
  await lab.addNs("x");
  await lab.veth("v", "eth1", "x", "eth0");
  await lab.addr("v", "eth1", "10.79.0.1/24");
  await lab.addr("x", "eth0", "10.79.0.2/24");
  frr = await FrrBfd.start(
    lab,
    "f",
    tmp.path,
    [
      "bfd",
      " profile fast",
      "  receive-interval 50",
      "  transmit-interval 50",
      "  detect-multiplier 3",
      " !",
      " peer 10.77.0.1 local-address 10.77.0.2",
      "  profile fast",
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

const frrUp = async () => (await frr.status("10.77.0.1")) === "up";

test("the session comes Up on both sides at 50 ms x 3", async () => {
  await agent.waitFor((e) => e.ev === "up" && e.key === "frr", 20_000, "vipd up");
  await waitFor(frrUp, 10_000, "FRR up");
  const st = (await agent.status()) as unknown as {
    sessions: { state: string; txIntervalMs: number; detectionTimeMs: number }[];
  };
  const s = st.sessions[0]!;
  expect(s.state).toBe("Up");
  // Poll/Final completed: both sides now run at 50 ms; detection = 3 × 50 ms.
  await waitFor(
    async () => {
      const x = (
        (await agent.status()) as unknown as { sessions: { txIntervalMs: number; detectionTimeMs: number }[] }
      ).sessions[0]!;
      return x.txIntervalMs === 50 && x.detectionTimeMs === 150;
    },
    10_000,
    "50 ms timers",
  );
}, 40_000);

test("a SIGSTOPped bfdd is detected (Control Detection Time Expired) and recovery brings it back", async () => {
  const mark = agent.events.length;
  const t0 = performance.timeOrigin + performance.now();
  frr.bfdd.kill("SIGSTOP");
  try {
    const down = await agent.waitFor(
      (e) => e.ev === "down" && e.key === "frr" && e.diag === "ControlDetectionTimeExpired",
      5_000,
      "vipd detects",
      mark,
    );
    expect(down.diag).toBe("ControlDetectionTimeExpired");
    // Detection time is 150 ms; allow for a loaded machine, but far below a BGP hold time.
    expect(down.t! - t0).toBeLessThan(1_000);
  } finally {
    frr.bfdd.kill("SIGCONT");
  }
  await agent.waitFor((e) => e.ev === "up" && e.key === "frr", 20_000, "vipd up again", mark);
  await waitFor(frrUp, 10_000, "FRR up again");
}, 40_000);

test("BFD dropped by a tc bpf filter while the link stays up is detected on both sides", async () => {
  const obj = await buildDropFilter(tmp.path);
  const mark = agent.events.length;
  await dropBfd(lab, "v", "eth0", obj);
  try {
    const down = await agent.waitFor(
      (e) => e.ev === "down" && e.key === "frr" && e.diag === "ControlDetectionTimeExpired",
      5_000,
      "vipd detects",
      mark,
    );
    expect(down.diag).toBe("ControlDetectionTimeExpired");
    await waitFor(async () => !(await frrUp()), 5_000, "FRR down");
    // The link itself is still up: plain IP traffic passes.
    const ping = await lab.run("v", ["ping", "-c", "1", "-W", "2", "10.77.0.2"], { allowFail: true });
    expect(ping.code).toBe(0);
  } finally {
    await undropBfd(lab, "v", "eth0");
  }
  await agent.waitFor((e) => e.ev === "up" && e.key === "frr", 20_000, "vipd up again", mark);
  await waitFor(frrUp, 10_000, "FRR up again");
}, 40_000);

test("wrong-TTL packets are ignored; the same packet at TTL 255 is obeyed", async () => {
  type St = { sessions: { localDiscr: number; remoteDiscr: number; state: string }[] };
  await waitFor(
    async () => ((await agent.status()) as unknown as St).sessions[0]!.state === "Up",
    20_000,
    "Up",
  );
  const s = ((await agent.status()) as unknown as St).sessions[0]!;
  // An AdminDown from "FRR" with the right discriminators: takes the session down if accepted.
  const forged = encodeControl(
    controlPacket({
      state: "AdminDown",
      diag: 7,
      myDiscr: s.remoteDiscr,
      yourDiscr: s.localDiscr,
      desiredMinTx: 50_000,
      requiredMinRx: 50_000,
    }),
  );
  const hex = Buffer.from(forged).toString("hex");
  const inject = [
    process.execPath,
    `${import.meta.dir}/../../test/support/bfd/inject.ts`,
    "10.77.0.1",
    "3784",
  ];
  const obeyed = (from: number) =>
    agent.events.slice(from).some((e) => e.ev === "down" && e.diag === "NeighborSignaledSessionDown");
  const mark = agent.events.length;
  for (const ttl of ["64", "254", "1"]) await lab.run("f", [...inject, ttl, hex]);
  await Bun.sleep(400);
  expect(obeyed(mark)).toBe(false);
  // Control: at TTL 255 the very same bytes are accepted (so the check above can fail). A flap
  // caused by a loaded machine must not spoil it: wait for Up first.
  await waitFor(
    async () => ((await agent.status()) as unknown as St).sessions[0]!.state === "Up",
    20_000,
    "Up",
  );
  const mark2 = agent.events.length;
  await lab.run("f", [...inject, "255", hex]);
  await agent.waitFor(
    (e) => e.ev === "down" && e.diag === "NeighborSignaledSessionDown",
    3_000,
    "vipd obeys",
    mark2,
  );
  await agent.waitFor((e) => e.ev === "up" && e.key === "frr", 20_000, "vipd up again", mark2);
  await waitFor(frrUp, 10_000, "FRR up again");
}, 60_000);

test("a valid discriminator from another address (TTL 255, on link) is dropped and counted", async () => {
  type St = {
    sessions: { localDiscr: number; remoteDiscr: number; state: string }[];
    drops: Record<string, number>;
  };
  await waitFor(
    async () => ((await agent.status()) as unknown as St).sessions[0]!.state === "Up",
    20_000,
    "Up",
  );
  const s = ((await agent.status()) as unknown as St).sessions[0]!;
  const hex = Buffer.from(
    encodeControl(
      controlPacket({ state: "AdminDown", diag: 7, myDiscr: s.remoteDiscr, yourDiscr: s.localDiscr }),
    ),
  ).toString("hex");
  const inject = [
    process.execPath,
    `${import.meta.dir}/../../test/support/bfd/inject.ts`,
    "10.79.0.1",
    "3784",
  ];
  const mark = agent.events.length;
  await lab.run("x", [...inject, "255", hex]);
  await waitFor(
    async () => (((await agent.status()) as unknown as St).drops["SourceAddressMismatch"] ?? 0) >= 1,
    3_000,
    "SourceAddressMismatch counted",
  );
  expect(agent.events.slice(mark).some((e) => e.diag === "NeighborSignaledSessionDown")).toBe(false);
}, 30_000);

test("a peer without a BFD listener (ICMP port unreachable) is counted, never fatal", async () => {
  const nobody: DesiredSession = { ...session, key: "nobody", peer: "10.79.0.2", local: "10.79.0.1" };
  agent.reconfigure([session, nobody]);
  type St = { sessions: { key: string; state: string }[]; socketErrors: Record<string, number> };
  await waitFor(
    async () => (((await agent.status()) as unknown as St).socketErrors["ECONNREFUSED"] ?? 0) >= 2,
    10_000,
    "ECONNREFUSED counted",
  );
  const st = (await agent.status()) as unknown as St;
  expect(agent.proc.exitCode).toBeNull();
  expect(st.sessions.find((s) => s.key === "nobody")?.state).toBe("Down");
  expect(st.sessions.find((s) => s.key === "frr")?.state).toBe("Up");
  agent.reconfigure([session]);
}, 30_000);

test("removing the session sends AdminDown: FRR goes down at once", async () => {
  await waitFor(frrUp, 20_000, "FRR up before the removal");
  agent.reconfigure([]);
  // The remote diagnostic proves it was our AdminDown (diag 7), not a detection timeout.
  type Peer = { peer: string; status: string; "remote-diagnostic"?: string };
  await waitFor(
    async () => {
      const p = ((await frr.peers()) as Peer[]).find((x) => x.peer === "10.77.0.1");
      return p?.status === "down" && p["remote-diagnostic"] === "administratively down";
    },
    1_000,
    "FRR down with remote diagnostic 'administratively down'",
  );
}, 30_000);
