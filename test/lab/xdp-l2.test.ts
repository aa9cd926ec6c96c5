/**
 * The XDP responder on a real veth between two namespaces (client, node), driven by "the
 * daemon" (today src/xdp/cli.ts serve; `startDaemon` is the one place to switch to `vipd run`),
 * probed by real arping and ndisc6 from the client.
 *
 * Story: nobody answers for a VIP until vipd owns it; then arping/ndisc6 get the node's MAC and
 * the client's stale neighbour entries move to it (GARP / unsolicited NA); a removed VIP goes
 * quiet at once; a restart of vipd while the client arpings 100 times a second loses no reply
 * (same attachment, same maps); a killed vipd goes quiet once the liveness window passes;
 * `detach` removes everything.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import type { Subprocess } from "bun";
import { parseIp } from "../../src/util/ip.ts";
import { NA_FLAG_O, NA_FLAG_S, neighborAdvertisement, neighborSolicitation } from "../../src/xdp/frames.ts";
import { parseMac } from "../../src/xdp/layout.ts";
import { Lab } from "../support/netns.ts";
import { arping as probeArping, ndisc as probeNdisc } from "../support/probes.ts";
import { until } from "../support/until.ts";
import { buildXdp, objectPath, type TempPins, tempPins } from "../support/xdp-testkit.ts";

const CLI = new URL("../../src/xdp/cli.ts", import.meta.url).pathname;
const VIP4 = "10.77.0.100";
const VIP4B = "10.77.0.101";
const VIP6 = "fd00:77::100";
/** Long enough to cover a restart on a loaded machine; the kill test uses a short one. */
const WINDOW_MS = 10_000;
const SHORT_WINDOW_MS = 1500;

let lab: Lab;
let pins: TempPins;
let nodeMac: string;
let stateFile: string;

interface Daemon {
  proc: Subprocess<"ignore", "pipe", "inherit">;
  /** Resolves with the next JSON event line of the given kind. */
  next(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** Starts "the daemon" in the node namespace, serving the desired state in `stateFile`. */
async function startDaemon(windowMs = WINDOW_MS): Promise<Daemon> {
  const d = await spawnDaemon("node", [
    "--state",
    stateFile,
    "--pin-dir",
    pins.pinDir,
    "--window-ms",
    String(windowMs),
  ]);
  await d.next("applied"); // the initial apply, printed before "ready"
  return d;
}

/** `cli.ts serve ARGS` in a namespace; resolves once it printed its "ready" event. */
async function spawnDaemon(ns: string, args: string[]): Promise<Daemon & { ready: Record<string, unknown> }> {
  const proc = lab.spawn(ns, ["bun", CLI, "serve", ...args], { stdout: "pipe" }) as Subprocess<
    "ignore",
    "pipe",
    "inherit"
  >;
  const reader = proc.stdout.getReader();
  const events: Record<string, unknown>[] = [];
  let buf = "";
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += new TextDecoder().decode(value);
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        events.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
      }
    }
  })();
  void pump;
  const d: Daemon = {
    proc,
    async next(event, timeoutMs = 15_000) {
      // An unexpected "error" event fails the wait, unless "error" is what is awaited.
      const e = await until(
        `the daemon's "${event}" event`,
        () => {
          const i = events.findIndex((e) => e.event === event || (e.event === "error" && event !== "ready"));
          return i >= 0 ? events.splice(i, 1)[0] : undefined;
        },
        timeoutMs,
      );
      if (e.event !== event) throw new Error(`daemon error: ${JSON.stringify(e)}`);
      return e;
    },
  };
  return { ...d, ready: await d.next("ready") };
}

function setDesired(ips: string[]): void {
  writeFileSync(stateFile, JSON.stringify(ips.map((ip) => ({ ifname: "eth0", ip }))));
}

/** arping from the client: [sent, received, MACs that answered]. */
const arping = (ip: string, count: number, intervalS = 0.1) =>
  probeArping(lab, "client", ip, count, intervalS);

/** ndisc6 from the client: the MAC that answered, or null. */
const ndisc = (ip: string) => probeNdisc(lab, "client", ip);

async function clientNeigh(ip: string): Promise<string> {
  return (await lab.run("client", ["ip", "neigh", "show", ip, "dev", "eth0"])).stdout.trim();
}

async function attachedProgId(): Promise<number> {
  const r = await lab.run("node", ["ip", "-j", "link", "show", "dev", "eth0"]);
  const [link] = JSON.parse(r.stdout) as { xdp?: { prog?: { id: number } } }[];
  return link?.xdp?.prog?.id ?? 0;
}

beforeAll(async () => {
  await buildXdp();
  lab = await Lab.create("xdpl2");
  pins = await tempPins("l2");
  stateFile = `/tmp/${lab.prefix}state.json`;
  await lab.addNs("client");
  await lab.addNs("node");
  await lab.veth("client", "eth0", "node", "eth0");
  await lab.addr("client", "eth0", "10.77.0.1/24");
  await lab.addr("node", "eth0", "10.77.0.2/24");
  await lab.addr("client", "eth0", "fd00:77::1/64");
  await lab.addr("node", "eth0", "fd00:77::2/64");
  // veth delivers XDP_TX frames only if the peer runs an XDP program too (LAB.md).
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
}, 60_000);

afterAll(async () => {
  await lab?.destroy();
  await pins?.cleanup();
  if (stateFile) rmSync(stateFile, { force: true });
});

describe("XDP ARP/NDP responder in namespaces", () => {
  let daemon: Daemon;

  test("without vipd nobody answers for the VIPs (the kernel does not own them)", async () => {
    const [sent, received] = await arping(VIP4, 2);
    expect(sent).toBe(2);
    expect(received).toBe(0);
    expect(await ndisc(VIP6)).toBeNull();
  }, 20_000);

  test("bad input is refused with every problem named, and nothing is attached or programmed", async () => {
    writeFileSync(
      stateFile,
      JSON.stringify([
        { ifname: "eth0", ip: VIP4 },
        { ifname: "eth9", ip: VIP4B },
        { ifname: "eth0", ip: "10.77.0.300" },
      ]),
    );
    const d = await spawnDaemon("node", ["--state", stateFile, "--pin-dir", pins.pinDir]);
    const error = await d.next("error");
    expect(error.message).toBe(
      'invalid XDP entries: entry 1 (eth9 10.77.0.101): no interface named "eth9"; ' +
        'entry 2 (eth0 10.77.0.300): "10.77.0.300" is not an IP address',
    );
    const status = d.ready.status as { attachments: unknown[]; entries: number };
    expect(status).toMatchObject({ attachments: [], entries: 0 });
    expect(await attachedProgId()).toBe(0);
    await lab.stop(d.proc, "SIGTERM");
    expect(await arping(VIP4, 1)).toEqual([1, 0, []]);
  }, 30_000);

  test("vipd announces the takeover, then answers arping and ndisc6 with the node's MAC; other addresses stay silent", async () => {
    // Stale entries pointing elsewhere, which the takeover announcements must move.
    await lab.run("client", [
      "ip",
      "neigh",
      "replace",
      VIP4,
      "lladdr",
      "02:de:ad:00:00:01",
      "dev",
      "eth0",
      "nud",
      "stale",
    ]);
    await lab.run("client", [
      "ip",
      "-6",
      "neigh",
      "replace",
      VIP6,
      "lladdr",
      "02:de:ad:00:00:01",
      "dev",
      "eth0",
      "nud",
      "stale",
    ]);
    setDesired([VIP4, VIP6]);
    daemon = await startDaemon();
    // Before any probe: only the takeover announcements (GARP, unsolicited NA) can have moved them.
    expect(await clientNeigh(VIP4)).toContain(`lladdr ${nodeMac}`);
    expect(await clientNeigh(VIP6)).toContain(`lladdr ${nodeMac}`);
    const [sent, received, macs] = await arping(VIP4, 3);
    expect([sent, received]).toEqual([3, 3]);
    expect(macs).toEqual([nodeMac]);
    expect(await ndisc(VIP6)).toBe(nodeMac);
    const [, otherReceived] = await arping(VIP4B, 2);
    expect(otherReceived).toBe(0);
  }, 30_000);

  test("an NS without source link-layer option (the reply outgrows the request) is answered on the wire", async () => {
    const clientMac = await lab.mac("client", "eth0");
    const frame = neighborSolicitation({
      mac: parseMac(clientMac)!,
      src: parseIp("fd00:77::1")!,
      target: parseIp(VIP6)!,
      dst: parseIp(VIP6)!,
      ethDst: parseMac(nodeMac)!,
      sll: false,
    });
    const capture = lab.spawn(
      "client",
      [
        "timeout",
        "10",
        "tcpdump",
        "-i",
        "eth0",
        "-c",
        "1",
        "-n",
        "-xx",
        "icmp6 and ip6[40] == 136 and ip6[62:2] == 0x0100 and dst host fd00:77::1",
      ],
      { stdout: "pipe", stderr: "ignore" },
    );
    // Send until tcpdump (which may start listening late on a busy machine) has its one reply.
    const hex = Buffer.from(frame).toString("hex");
    for (let i = 0; i < 16 && capture.exitCode === null; i++) {
      await lab.run("client", ["bun", CLI, "send", "--if", "eth0", "--hex", hex]);
      await Bun.sleep(500);
    }
    const out = await new Response(capture.stdout as ReadableStream).text();
    const bytes = out
      .split("\n")
      .filter((l) => l.startsWith("\t0x"))
      .map((l) => l.split(":")[1]!.replace(/\s/g, ""))
      .join("");
    const expected = neighborAdvertisement({
      ownerMac: parseMac(nodeMac)!,
      target: parseIp(VIP6)!,
      dstMac: parseMac(clientMac)!,
      dst: parseIp("fd00:77::1")!,
      flags: NA_FLAG_S | NA_FLAG_O,
    });
    expect(frame.length).toBe(78);
    expect(bytes).toBe(Buffer.from(expected).toString("hex")); // 86 bytes, checksum included
  }, 30_000);

  test("adding and removing VIPs takes effect on the next apply", async () => {
    setDesired([VIP4B, VIP6]);
    daemon.proc.kill("SIGHUP");
    const applied = await daemon.next("applied");
    expect(applied.added).toEqual([{ ifname: "eth0", ip: VIP4B, mac: nodeMac }]);
    expect(applied.removed).toEqual([{ ifindex: expect.any(Number), ifname: "eth0", ip: VIP4 }]);
    expect((await arping(VIP4, 2))[1]).toBe(0);
    expect((await arping(VIP4B, 2))[1]).toBe(2);
    setDesired([VIP4, VIP6]);
    daemon.proc.kill("SIGHUP");
    await daemon.next("applied");
  }, 30_000);

  test("restarting vipd while the client arpings 100 times a second loses no reply", async () => {
    const progBefore = await attachedProgId();
    expect(progBefore).toBeGreaterThan(0);
    const load = arping(VIP4, 400, 0.01); // ~4 s of requests
    await Bun.sleep(500);
    await lab.stop(daemon.proc, "SIGTERM");
    daemon = await startDaemon();
    const [sent, received, macs] = await load;
    expect(sent).toBe(400);
    expect(received).toBe(400);
    expect(macs).toEqual([nodeMac]);
    expect(await attachedProgId()).toBe(progBefore); // reused, not reattached
    daemon.proc.kill("SIGUSR1");
    const s = (await daemon.next("status")).status as { reused: boolean; attachments: { reason?: string }[] };
    expect(s.reused).toBe(true);
    expect(s.attachments[0]?.reason).toBe("attached by a previous run");
  }, 60_000);

  test("a restart that lost its pins (fresh bpffs) adopts the attached program and its maps", async () => {
    const progBefore = await attachedProgId();
    const fresh = await tempPins("l2fresh");
    try {
      const load = arping(VIP4, 300, 0.01);
      await Bun.sleep(300);
      await lab.stop(daemon.proc, "SIGTERM");
      const d = await spawnDaemon("node", [
        "--state",
        stateFile,
        "--pin-dir",
        fresh.pinDir,
        "--window-ms",
        "10000",
      ]);
      const applied = await d.next("applied");
      const [sent, received] = await load;
      expect([sent, received]).toEqual([300, 300]);
      const status = d.ready.status as { reused: boolean; adoptedFrom: string | null; entries: number };
      expect(status).toMatchObject({ reused: true, adoptedFrom: "eth0", entries: 2 });
      expect([(applied.added as unknown[]).length, applied.unchanged]).toEqual([0, 2]); // the old maps
      expect(await attachedProgId()).toBe(progBefore);
      await lab.stop(d.proc, "SIGTERM");
    } finally {
      await fresh.cleanup();
    }
    daemon = await startDaemon();
  }, 60_000);

  test("a killed vipd stops attracting traffic once the liveness window has passed, and re-announces on return", async () => {
    await lab.stop(daemon.proc, "SIGTERM");
    daemon = await startDaemon(SHORT_WINDOW_MS);
    expect((await arping(VIP4, 2))[1]).toBe(2);
    await lab.stop(daemon.proc, "SIGKILL");
    await Bun.sleep(SHORT_WINDOW_MS + 500);
    expect((await arping(VIP4, 2))[1]).toBe(0);
    expect(await ndisc(VIP6)).toBeNull();
    // Meanwhile the client learnt another owner. vipd comes back: its entries are unchanged, but
    // it had gone quiet, so it announces them all again.
    await lab.run("client", [
      "ip",
      "neigh",
      "replace",
      VIP4,
      "lladdr",
      "02:de:ad:00:00:02",
      "dev",
      "eth0",
      "nud",
      "stale",
    ]);
    daemon = await startDaemon();
    expect(await clientNeigh(VIP4)).toContain(`lladdr ${nodeMac}`);
    await lab.stop(daemon.proc, "SIGTERM");
  }, 30_000);

  test("detach removes the program from the interface, and the pins", async () => {
    const r = await lab.run("node", ["bun", CLI, "detach", "--pin-dir", pins.pinDir]);
    expect(JSON.parse(r.stdout)).toEqual({ event: "detached", detached: ["eth0"] });
    expect(await attachedProgId()).toBe(0);
    expect(existsSync(`${pins.pinDir}/prog`)).toBe(false);
    expect(existsSync(`${pins.pinDir}/vips`)).toBe(false);
  }, 30_000);
});

describe("attach modes", () => {
  test("a bridge (no native XDP) gets generic mode, says why, and still answers", async () => {
    await lab.addNs("client2");
    await lab.addNs("bridged");
    await lab.veth("client2", "eth0", "bridged", "eth0");
    await lab.bridge("bridged", "br0", ["eth0"]);
    await lab.addr("client2", "eth0", "10.78.0.1/24");
    await lab.addr("bridged", "br0", "10.78.0.2/24");
    await lab.run("client2", [
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
    const pins2 = await tempPins("l2gen");
    try {
      const d = await spawnDaemon("bridged", [
        "--if",
        "br0",
        "--vip",
        "10.78.0.100",
        "--pin-dir",
        pins2.pinDir,
      ]);
      const status = d.ready.status as { attachments: { ifname: string; mode: string; reason?: string }[] };
      expect(status.attachments).toHaveLength(1);
      expect(status.attachments[0]).toMatchObject({ ifname: "br0", mode: "generic" });
      expect(status.attachments[0]!.reason).toStartWith("native mode failed: ");
      const r = await lab.run("client2", ["arping", "-c", "2", "-W", "0.1", "-i", "eth0", "10.78.0.100"], {
        allowFail: true,
      });
      expect(r.stdout).toContain("2 packets transmitted, 2 packets received");
      await lab.stop(d.proc, "SIGTERM");
      // Native only: refused with the kernel's reason, reported by apply, the daemon keeps running.
      const n = await spawnDaemon("bridged", [
        "--if",
        "br0",
        "--vip",
        "10.78.0.100",
        "--pin-dir",
        pins2.pinDir,
        "--mode",
        "native",
      ]);
      const applied = await n.next("applied");
      expect(applied.errors).toEqual([
        { ifname: "br0", error: expect.stringContaining("attach native to br0 failed") },
      ]);
      await lab.stop(n.proc, "SIGTERM");
    } finally {
      await lab.run("bridged", ["bun", CLI, "detach", "--pin-dir", pins2.pinDir], { allowFail: true });
      await pins2.cleanup();
    }
  }, 60_000);
});
