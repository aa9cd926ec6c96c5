/**
 * vipd BFD against BIRD 2 in network namespaces, with meticulous keyed SHA1 authentication
 * (RFC 5880 §6.7.4) at 50 ms × 3: the session comes Up on both sides; a SIGSTOPped BIRD is
 * detected and recovery brings the session back; a wrong key keeps it down (vipd counts
 * AuthBadDigest).
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import type { DesiredSession } from "../../src/bfd/manager.ts";
import { DEFAULT_PROFILE } from "../../src/bfd/profile.ts";
import { Agent, Bird, tempDir, waitFor } from "../support/bfd/peers.ts";
import { Lab } from "../support/netns.ts";

const fast = { ...DEFAULT_PROFILE, receiveInterval: 50, transmitInterval: 50, detectMultiplier: 3 };
const auth = { type: "MeticulousKeyedSha1" as const, keyId: 7, secret: "vipd-bfd-sha1" };
const session: DesiredSession = {
  key: "bird",
  peer: "10.78.0.2",
  local: "10.78.0.1",
  multihop: false,
  profile: fast,
  auth,
};

const birdConf = `
router id 10.78.0.2;
protocol device {}
protocol bfd {
  interface "eth0" {
    min rx interval 50 ms;
    min tx interval 50 ms;
    idle tx interval 1000 ms;
    multiplier 3;
    authentication meticulous keyed sha1;
    password "vipd-bfd-sha1" { id 7; };
  };
  neighbor 10.78.0.1 dev "eth0" local 10.78.0.2;
}
`;

let lab: Lab;
let tmp: ReturnType<typeof tempDir>;
let bird: Bird;
let agent: Agent;

beforeAll(async () => {
  lab = await Lab.create("bfdbird");
  tmp = tempDir("bird");
  await lab.addNs("v");
  await lab.addNs("b");
  await lab.veth("v", "eth0", "b", "eth0");
  await lab.addr("v", "eth0", "10.78.0.1/24");
  await lab.addr("b", "eth0", "10.78.0.2/24");
  bird = await Bird.start(lab, "b", tmp.path, birdConf);
  agent = await Agent.start(lab, "v", tmp.path, [session]);
}, 60_000);

afterAll(async () => {
  await lab?.destroy();
  tmp?.rm();
});

const birdState = async () => (await bird.bfdSessions()).get("10.78.0.1");

test("the authenticated session comes Up on both sides at 50 ms x 3", async () => {
  await agent.waitFor((e) => e.ev === "up" && e.key === "bird", 20_000, "vipd up");
  await waitFor(async () => (await birdState()) === "Up", 10_000, "BIRD up");
  await waitFor(
    async () => {
      const x = ((await agent.status()) as unknown as { sessions: { detectionTimeMs: number }[] })
        .sessions[0]!;
      return x.detectionTimeMs === 150;
    },
    10_000,
    "150 ms detection time",
  );
}, 40_000);

test("a SIGSTOPped BIRD is detected and recovery brings the session back", async () => {
  const mark = agent.events.length;
  bird.proc.kill("SIGSTOP");
  try {
    const down = await agent.waitFor(
      (e) => e.ev === "down" && e.key === "bird" && e.diag === "ControlDetectionTimeExpired",
      5_000,
      "vipd detects",
      mark,
    );
    expect(down.diag).toBe("ControlDetectionTimeExpired");
  } finally {
    bird.proc.kill("SIGCONT");
  }
  await agent.waitFor((e) => e.ev === "up" && e.key === "bird", 20_000, "vipd up again", mark);
  await waitFor(async () => (await birdState()) === "Up", 10_000, "BIRD up again");
}, 40_000);

test("with the wrong key the session goes down and stays down; the drops are counted", async () => {
  const mark = agent.events.length;
  agent.reconfigure([{ ...session, auth: { ...auth, secret: "wrong-secret" } }]);
  await agent.waitFor(
    (e) => e.ev === "down" && e.key === "bird" && e.diag === "ControlDetectionTimeExpired",
    5_000,
    "vipd detects",
    mark,
  );
  await Bun.sleep(1500);
  const st = (await agent.status()) as unknown as {
    sessions: { state: string }[];
    drops: Record<string, number>;
  };
  expect(st.sessions[0]!.state).not.toBe("Up");
  expect(st.drops["AuthBadDigest"]).toBeGreaterThan(0);
  expect(await birdState()).not.toBe("Up");
  // The right key again: back Up.
  agent.reconfigure([session]);
  await agent.waitFor((e) => e.ev === "up" && e.key === "bird", 20_000, "vipd up again", mark);
}, 40_000);
