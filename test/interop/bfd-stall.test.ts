/**
 * A descheduled vipd must not declare a peer down whose packets reached the kernel in time: after
 * SIGSTOP/SIGCONT, Bun runs due timers before pending socket I/O, so the manager reads the sockets
 * before any detection verdict. FRR is configured to detect us slowly (receive-interval 300 ms →
 * 900 ms) while we detect it at 300 ms (it transmits every 100 ms); vipd is stopped for 400 ms
 * while FRR keeps sending.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import type { DesiredSession } from "../../src/bfd/manager.ts";
import { DEFAULT_PROFILE } from "../../src/bfd/profile.ts";
import { Agent, FrrBfd, tempDir, waitFor } from "../support/bfd/peers.ts";
import { Lab } from "../support/netns.ts";

const session: DesiredSession = {
  key: "frr",
  peer: "10.82.0.2",
  local: "10.82.0.1",
  multihop: false,
  profile: { ...DEFAULT_PROFILE, receiveInterval: 50, transmitInterval: 50, detectMultiplier: 3 },
};

let lab: Lab;
let tmp: ReturnType<typeof tempDir>;
let frr: FrrBfd;
let agent: Agent;

beforeAll(async () => {
  lab = await Lab.create("bfdstl");
  tmp = tempDir("stall");
  await lab.addNs("v");
  await lab.addNs("f");
  await lab.veth("v", "eth0", "f", "eth0");
  await lab.addr("v", "eth0", "10.82.0.1/24");
  await lab.addr("f", "eth0", "10.82.0.2/24");
  frr = await FrrBfd.start(
    lab,
    "f",
    tmp.path,
    [
      "bfd",
      " profile lenient",
      "  receive-interval 300",
      "  transmit-interval 100",
      "  detect-multiplier 3",
      " !",
      " peer 10.82.0.1 local-address 10.82.0.2",
      "  profile lenient",
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

test("after a 400 ms stop, packets queued in the kernel keep the session Up", async () => {
  await agent.waitFor((e) => e.ev === "up", 20_000, "vipd up");
  type St = { sessions: { state: string; detectionTimeMs: number }[] };
  await waitFor(
    async () => {
      const s = ((await agent.status()) as unknown as St).sessions[0]!;
      return s.state === "Up" && s.detectionTimeMs === 300;
    },
    10_000,
    "300 ms detection time",
  );
  for (let round = 0; round < 3; round++) {
    const mark = agent.events.length;
    agent.proc.kill("SIGSTOP");
    await Bun.sleep(400);
    agent.proc.kill("SIGCONT");
    await Bun.sleep(600);
    const downs = agent.events.slice(mark).filter((e) => e.ev === "down");
    expect(downs).toEqual([]);
    expect(await frr.status("10.82.0.1")).toBe("up");
  }
}, 60_000);
