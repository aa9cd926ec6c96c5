/**
 * vipd BFD over IPv6 against FRR bfdd (RFC 5881 §5: hop limit 255 sent, anything else dropped):
 * the session comes Up at 50 ms × 3, a SIGSTOPped bfdd is detected, and forged packets with hop
 * limit 64 are ignored while the same bytes at 255 are obeyed.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import { controlPacket, encodeControl } from "../../src/bfd/codec.ts";
import type { DesiredSession } from "../../src/bfd/manager.ts";
import { DEFAULT_PROFILE } from "../../src/bfd/profile.ts";
import { Agent, FrrBfd, tempDir, waitFor } from "../support/bfd/peers.ts";
import { Lab } from "../support/netns.ts";

const fast = { ...DEFAULT_PROFILE, receiveInterval: 50, transmitInterval: 50, detectMultiplier: 3 };
const session: DesiredSession = {
  key: "frr6",
  peer: "fd00:77::2",
  local: "fd00:77::1",
  multihop: false,
  profile: fast,
};

let lab: Lab;
let tmp: ReturnType<typeof tempDir>;
let frr: FrrBfd;
let agent: Agent;

beforeAll(async () => {
  lab = await Lab.create("bfdv6");
  tmp = tempDir("v6");
  await lab.addNs("v");
  await lab.addNs("f");
  await lab.veth("v", "eth0", "f", "eth0");
  await lab.addr("v", "eth0", "fd00:77::1/64");
  await lab.addr("f", "eth0", "fd00:77::2/64");
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
      " peer fd00:77::1 local-address fd00:77::2",
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

const frrUp = async () => (await frr.status("fd00:77::1")) === "up";
type St = { sessions: { localDiscr: number; remoteDiscr: number; state: string }[] };
const vipdState = async () => ((await agent.status()) as unknown as St).sessions[0]!;

test("an IPv6 session comes Up on both sides at 50 ms x 3", async () => {
  await agent.waitFor((e) => e.ev === "up" && e.key === "frr6", 20_000, "vipd up");
  await waitFor(frrUp, 10_000, "FRR up");
}, 40_000);

test("a SIGSTOPped bfdd is detected over IPv6 and recovery brings it back", async () => {
  const mark = agent.events.length;
  frr.bfdd.kill("SIGSTOP");
  try {
    const down = await agent.waitFor(
      (e) => e.ev === "down" && e.diag === "ControlDetectionTimeExpired",
      5_000,
      "vipd detects",
      mark,
    );
    expect(down.diag).toBe("ControlDetectionTimeExpired");
  } finally {
    frr.bfdd.kill("SIGCONT");
  }
  await agent.waitFor((e) => e.ev === "up", 20_000, "vipd up again", mark);
  await waitFor(frrUp, 10_000, "FRR up again");
}, 40_000);

test("hop limit 64 is ignored; the same packet at hop limit 255 is obeyed", async () => {
  await waitFor(async () => (await vipdState()).state === "Up", 20_000, "Up");
  const s = await vipdState();
  const hex = Buffer.from(
    encodeControl(
      controlPacket({
        state: "AdminDown",
        diag: 7,
        myDiscr: s.remoteDiscr,
        yourDiscr: s.localDiscr,
        desiredMinTx: 50_000,
        requiredMinRx: 50_000,
      }),
    ),
  ).toString("hex");
  const inject = [
    process.execPath,
    `${import.meta.dir}/../../test/support/bfd/inject.ts`,
    "fd00:77::1",
    "3784",
  ];
  const obeyed = (from: number) =>
    agent.events.slice(from).some((e) => e.ev === "down" && e.diag === "NeighborSignaledSessionDown");
  const mark = agent.events.length;
  await lab.run("f", [...inject, "64", hex]);
  await lab.run("f", [...inject, "254", hex]);
  await Bun.sleep(400);
  expect(obeyed(mark)).toBe(false);
  await waitFor(async () => (await vipdState()).state === "Up", 20_000, "Up");
  const mark2 = agent.events.length;
  await lab.run("f", [...inject, "255", hex]);
  await agent.waitFor(
    (e) => e.ev === "down" && e.diag === "NeighborSignaledSessionDown",
    3_000,
    "vipd obeys",
    mark2,
  );
}, 60_000);
