/**
 * The XDP data path as `vipd run` drives it: a node namespace running the real daemon with the
 * appliance example and `interfaces: [eth0]`, a client probing with arping and ndisc6.
 *
 * Story: the client's arping / ndisc6 for the assigned VIPs get the node's MAC from XDP; an
 * address of the pool that no Service holds gets no answer; restarting vipd while the client
 * arpings 100 times a second loses no reply; a Service removed from the config goes quiet at
 * once; a vipd killed with SIGKILL goes quiet once the liveness window has passed.
 */

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { Lab } from "../support/netns.ts";
import { arping as probeArping, ndisc as probeNdisc } from "../support/probes.ts";
import { until } from "../support/until.ts";
import { buildXdp, objectPath, type TempPins, tempPins } from "../support/xdp-testkit.ts";

setDefaultTimeout(90_000);

const ROOT = join(import.meta.dir, "..", "..");
const VIP = "10.77.0.100";
const VIP6 = "fd77::100";
const UNASSIGNED = "10.77.0.115";

let lab: Lab;
let pins: TempPins;
let dir: string;
let nodeMac: string;
let vipd: Subprocess | undefined;

function settings(windowMs: number): string {
  return JSON.stringify({
    apiVersion: "vipd.io/v1alpha1",
    kind: "NodeSettings",
    metadata: { name: "node" },
    spec: { nodeName: "node", interfaces: ["eth0"], xdp: { livenessWindowMs: windowMs } },
  });
}

async function api(path: string): Promise<unknown> {
  const r = await lab.run("node", ["curl", "-sf", "--max-time", "2", `http://127.0.0.1:7473${path}`], {
    allowFail: true,
  });
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

/** Starts `vipd run` in the node namespace and waits until its API is ready. */
async function startVipd(windowMs = 10_000): Promise<Subprocess> {
  writeFileSync(join(dir, "config", "node.yaml"), settings(windowMs));
  const p = lab.spawn(
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
    { stderr: "ignore", env: { VIPD_BPF_PIN_DIR: pins.pinDir, VIPD_LOG_LEVEL: "warn" } },
  );
  const state = await until(
    "vipd ready",
    async () => (p.exitCode !== null ? "exited" : (await api("/readyz")) !== undefined && "ready"),
    30_000,
  );
  if (state === "exited") throw new Error(`vipd exited (${p.exitCode}) before it was ready`);
  return p;
}

/** arping from the client: [sent, received, MACs that answered]. */
const arping = (ip: string, count: number, intervalS = 0.1) =>
  probeArping(lab, "client", ip, count, intervalS);

/** ndisc6 from the client: the MAC that answered, or null. */
const ndisc = (ip: string) => probeNdisc(lab, "client", ip);

beforeAll(async () => {
  await buildXdp();
  lab = await Lab.create("xvipd");
  pins = await tempPins("xvipd");
  dir = mkdtempSync(join(tmpdir(), "vipd-xdp-run-"));
  mkdirSync(join(dir, "config"));
  for (const f of ["pools.yaml", "services.yaml"])
    cpSync(join(ROOT, "examples", "appliance", f), join(dir, "config", f));
  await lab.addNs("client");
  await lab.addNs("node");
  await lab.veth("client", "eth0", "node", "eth0");
  await lab.addr("client", "eth0", "10.77.0.2/24");
  await lab.addr("client", "eth0", "fd77::2/64");
  await lab.addr("node", "eth0", "10.77.0.11/24");
  await lab.addr("node", "eth0", "fd77::11/64");
  // veth drops XDP_TX frames unless the peer has an XDP program too (LAB.md).
  await lab.run("client", [
    "ip",
    "link",
    "set",
    "dev",
    "eth0",
    "xdp",
    "obj",
    objectPath("lab_pass"),
    "sec",
    "xdp",
  ]);
  nodeMac = await lab.mac("node", "eth0");
  vipd = await startVipd();
}, 120_000);

afterAll(async () => {
  await lab?.destroy();
  await pins?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("XDP answers for the VIPs `vipd run` assigned", () => {
  test("arping and ndisc6 get the node's MAC for assigned VIPs; an unassigned pool address gets nothing", async () => {
    const [sent, received, macs] = await arping(VIP, 3);
    expect([sent, received, macs]).toEqual([3, 3, [nodeMac]]);
    expect(await ndisc(VIP6)).toBe(nodeMac);
    expect((await arping(UNASSIGNED, 2))[1]).toBe(0);
    const xdp = (await api("/api/v1/xdp")) as {
      interfaces: { name: string; counters: Record<string, string> }[];
    };
    expect(xdp.interfaces.map((i) => i.name)).toEqual(["eth0"]);
    expect(Number(xdp.interfaces[0]?.counters.arp_replies)).toBeGreaterThanOrEqual(3);
    const l2 = (await api("/api/v1/l2/announcements")) as { items: { ip: string; mac: string }[] };
    expect(l2.items.map((e) => e.ip).sort()).toEqual(["10.77.0.100", "10.77.0.110", "fd77::100"]);
    expect(new Set(l2.items.map((e) => e.mac))).toEqual(new Set([nodeMac]));
  });

  test("restarting vipd while the client arpings 100 times a second loses no reply", async () => {
    const load = arping(VIP, 300, 0.01);
    await Bun.sleep(300);
    await lab.stop(vipd as Subprocess, "SIGTERM");
    vipd = await startVipd();
    const [sent, received] = await load;
    expect([sent, received]).toEqual([300, 300]);
  });

  test("a Service removed from the config goes quiet at once; back in, it answers again", async () => {
    const services = join(dir, "config", "services.yaml");
    const text = await Bun.file(services).text();
    // Keep only the dns Services: web (10.77.0.100, fd77::100) goes.
    writeFileSync(services, text.slice(text.indexOf("---") + 4));
    await until("web's VIP quiet", async () => (await arping(VIP, 1))[1] === 0, 10_000);
    expect((await arping(VIP, 2))[1]).toBe(0);
    expect(await ndisc(VIP6)).toBeNull();
    expect((await arping("10.77.0.110", 1))[1]).toBe(1);
    writeFileSync(services, text);
    await until("web's VIP answering again", async () => (await arping(VIP, 1))[1] === 1, 10_000);
    expect((await arping(VIP, 2))[1]).toBe(2);
  });

  test("a vipd killed with SIGKILL stops attracting traffic once its liveness window has passed", async () => {
    await lab.stop(vipd as Subprocess, "SIGTERM");
    vipd = await startVipd(1500);
    expect((await arping(VIP, 2))[1]).toBe(2);
    await lab.stop(vipd, "SIGKILL");
    vipd = undefined;
    await Bun.sleep(2000);
    expect((await arping(VIP, 2))[1]).toBe(0);
    expect(await ndisc(VIP6)).toBeNull();
  });
});
