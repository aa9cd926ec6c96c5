/**
 * Signed A/B system updates of the edge-node image over the API (RAUC, systemd-boot boot
 * counting), in QEMU (TCG). One image is built (v1, slot A); every other version is a bundle made
 * from v1's root filesystem without rebuilding (`image/bundle.sh`: a version bump). The VM runs
 * on a copy-on-write overlay of the built image (`qemu-img create -b`), so the image stays
 * pristine and nothing is copied. Five boots in all, one after the other on the same disk:
 *
 * 1. Boot 1 (v1 on slot A, marked good): GET /api/v1/system shows A booted, primary and good, B
 *    bad. Refused, each with JSON {error, message} and nothing changed (same slots, B still not
 *    bootable) — without any reboot: a declared size over the limit (413, before any byte is
 *    read), a truncated bundle, a bundle signed by a key the node does not trust, random bytes.
 * 2. v2 is posted, and QEMU is killed (a power cut) while RAUC writes it into slot B. Boot 2
 *    (a new QEMU on the same disk): v1 on A, primary, B not bootable.
 * 3. A "broken v2" (its XDP object is garbage: vipd runs but is never ready; its trial deadline
 *    60 s) is installed into B and the node rebooted: boot 3 tries B, vipd-boot-check gives up
 *    after the deadline and reboots, and systemd-boot — B's one try used up — boots A (boot 4):
 *    v1, the rollback reported by GET /api/v1/system. The test only waits.
 * 4. v2 through POST /api/v1/system/update (progress seen on GET while it installs), then POST
 *    /api/v1/system/reboot: boot 5 comes up on slot B with v2, and vipd-boot-check marks B good.
 *    A BIRD 2 peer kept the VIP's route through that reboot (BGP graceful restart, RFC 4724):
 *    `birdc show route` lists it at every poll (about 1 s apart) while the session is down, and
 *    after boot 5 the session is back, graceful restart has ended (v2's End-of-RIB), and the route
 *    is still there — re-announced by v2, since BIRD drops at that moment every stale route not
 *    announced again. Printed: bundle size, upload + check + install time, and the downtime of the
 *    reboot: the API unreachable, the VIP unreachable from a client beside the node (on the
 *    router's segment, through the route BIRD installed), and from QEMU's own network (slirp
 *    resolves the VIP with ARP, which the node's XDP program answers); the route kept or not, and
 *    the BGP session's times (down, back, graceful restart over) against the restart time vipd
 *    advertises.
 *
 * The segment beside the node: a network namespace of the test holds a persistent tap device,
 * the guest's second NIC (eth1, 198.51.100.2/24 from a .network file on the seed partition; eth0
 * stays QEMU's user-mode network with the forwarded API port), BIRD 2 (198.51.100.1, AS 64500,
 * graceful restart on, its kernel protocol exporting the VIP's route into the namespace) and the
 * client (curl in that namespace). The node peers with BIRD from boot 1 on (BGPPeer with
 * enableGracefulRestart, a BGPAdvertisement of the Service's pool); the checks are around boot 5.
 * BIRD runs with `check link off`: the tap has no carrier while no QEMU is attached (as a NIC's
 * link during a reboot), and BIRD's default for a direct session, measured here, tears the
 * session down on that and drops the routes graceful restart kept.
 *
 * The image is built with 1 try per trial and a 300 s readiness deadline (VIPD_IMAGE_BOOT_TRIES,
 * VIPD_IMAGE_READY_DEADLINE); the broken bundle carries its own update.conf with a 60 s deadline
 * (the deadline is the trial slot's: a shorter one only makes its failure come sooner).
 *
 * Needs root, qemu-system-x86, qemu-utils, ovmf, mtools, rauc, squashfs-tools, bird2, curl
 * (scripts/setup.sh).
 * Everything lives under one temporary directory, removed at the end; each QEMU and BIRD is killed
 * by PID, and the namespace (with its tap) is removed at the end, also after a failure.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { removeTmpDirs, startBird } from "../fixtures/bgp/harness.ts";
import { Lab, sh as run } from "../support/netns.ts";
import {
  boot,
  freePort,
  get,
  overlay,
  powerCut,
  stopAll,
  stopAllAndWait,
  until,
  type Vm,
  waitConsole,
} from "./qemu.ts";

const REPO = join(import.meta.dir, "..", "..");
/** A boot to /readyz: 48–112 s measured under TCG; generous for a loaded machine. */
const BOOT_MS = 480_000;
/** The trial deadline of the image (s): vipd must answer /readyz 200 this long after it starts. */
const READY_DEADLINE = 300;
/** The broken bundle's own deadline (s). */
const BROKEN_DEADLINE = 60;
/** The VIP the site configuration gives the Service (inside QEMU's user-mode network). */
const VIP = "10.0.2.100";
/** The segment beside the node (a tap in a namespace of the test): BIRD's and the node's addresses. */
const ROUTER = "198.51.100.1";
const NODE = "198.51.100.2";
/** The guest's NIC on that segment (its .network file matches this MAC). */
const NODE_MAC = "52:54:00:19:00:02";

const dir = mkdtempSync(join("/var/tmp", `vipd-system-test-${process.pid}-`));
const out = join(dir, "out");
const image = join(out, "vipd-edge.img");
const disk = join(dir, "disk.qcow2");
const token = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
const tokenHash = new Bun.CryptoHasher("sha256").update(token).digest("hex");
// For a person watching a run (the directory goes at the end unless VIPD_IMAGE_TEST_KEEP is set).
writeFileSync(join(dir, "token"), token, { mode: 0o600 });
let api = "";
let vip = "";
let vm: Vm | undefined;
const bundles: Record<string, string> = {};
let made: Promise<{ code: number; out: string }[]> | undefined;
let lab: Lab | undefined;
let birdSock = "";
let birdPid = 0;
const t0 = Date.now();

// A run stopped from outside (CI's timeout sends SIGTERM, which ./qemu.ts turns into an exit)
// skips afterAll: BIRD (by PID) and the namespace with its tap go here.
process.on("exit", () => {
  if (birdPid !== 0) {
    try {
      process.kill(birdPid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  if (lab !== undefined) Bun.spawnSync(["ip", "netns", "del", lab.nsName("r")]);
});

afterAll(async () => {
  await stopAllAndWait();
  stopAll();
  // After the QEMUs (they hold the tap): BIRD by PID, then the namespace with its tap.
  await lab?.destroy();
  lab = undefined;
  birdPid = 0;
  removeTmpDirs();
  if (!process.env.VIPD_IMAGE_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
  console.log(`system update test: ${((Date.now() - t0) / 1000).toFixed(0)} s in all`);
});

function sh(cmd: string[], timeoutMs: number, env: Record<string, string> = {}) {
  const r = Bun.spawnSync(cmd, {
    cwd: REPO,
    timeout: timeoutMs,
    stderr: "pipe",
    stdout: "pipe",
    env: { ...process.env, ...env },
  });
  return { code: r.exitCode ?? -1, out: `${r.stdout.toString()}${r.stderr.toString()}` };
}

async function shAsync(cmd: string[], timeoutMs: number): Promise<{ code: number; out: string }> {
  const p = Bun.spawn(cmd, { cwd: REPO, stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const [o, e, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  clearTimeout(timer);
  return { code, out: o + e };
}

const secs = (ms: number) => `${(ms / 1000).toFixed(0)} s`;

/** Boots the test disk in a new QEMU with fresh forwarded ports (API and VIP). */
function start(name: string): Vm {
  const a = freePort();
  const b = freePort();
  api = `http://127.0.0.1:${a}`;
  vip = `http://127.0.0.1:${b}`;
  vm = boot(
    dir,
    disk,
    name,
    [
      { hostPort: a, guestAddr: "", guestPort: 7473 },
      { hostPort: b, guestAddr: VIP, guestPort: 7473 },
    ],
    // writeback: QEMU honours the guest's flushes, so killing it is a real power cut for the overlay.
    // restart: a guest reboot ends this QEMU and starts a new one on the same disk and UEFI
    // variables (a cold start; QEMU's warm reset under TCG once hung in OVMF for > 7 min).
    // tap: eth1 on the segment beside the node, in the test's namespace (BIRD and the client).
    {
      restart: true,
      format: "qcow2",
      cache: "writeback",
      tap: { netns: (lab as Lab).nsName("r"), ifname: "tap0", mac: NODE_MAC },
    },
  );
  return vm;
}

interface SystemView {
  compatible: string;
  booted: string | null;
  primary: string | null;
  image: Record<string, string>;
  slots: {
    bootname: string;
    bootStatus: string;
    booted: boolean;
    primary: boolean;
    bundleVersion: string | null;
  }[];
  update: {
    running: { phase: string; percent: number; message: string } | null;
    last: {
      result: string;
      error?: string;
      message: string;
      bundleVersion?: string;
      slot?: string;
      finishedAt: string;
    } | null;
    lastTrial: { outcome: string; slot: string; message: string } | null;
  };
  maxBundleBytes: number;
}

/**
 * GET /api/v1/system. Each answer runs `rauc status` in the guest, which took over 30 s under TCG
 * on a loaded machine: the client waits up to 120 s (a request given up early would leave its
 * `rauc status` running and the next one would pile onto it), and pollers ask every few seconds.
 */
async function systemOrNull(): Promise<SystemView | null> {
  try {
    const r = await fetch(`${api}/api/v1/system`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(120_000),
    });
    return r.status === 200 ? ((await r.json()) as SystemView) : null;
  } catch {
    return null;
  }
}

async function system(): Promise<SystemView> {
  const r = await fetch(`${api}/api/v1/system`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(120_000),
  });
  const body = await r.text();
  if (r.status !== 200) throw new Error(`GET /api/v1/system: ${r.status} ${body}`);
  return JSON.parse(body) as SystemView;
}

/** The slots as a short comparable summary: "A:good:booted:primary B:bad". */
function slotsLine(v: SystemView): string {
  return v.slots
    .map((s) =>
      [s.bootname, s.bootStatus, s.booted ? "booted" : "", s.primary ? "primary" : ""]
        .filter(Boolean)
        .join(":"),
    )
    .join(" ");
}

async function postBundle(file: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${api}/api/v1/system/update`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" },
    body: Bun.file(file),
    signal: AbortSignal.timeout(1_200_000),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

async function reboot(): Promise<void> {
  const rb = await fetch(`${api}/api/v1/system/reboot`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
  });
  expect(rb.status).toBe(202);
}

async function ready(v: Vm, what: string): Promise<number> {
  await until(v, what, BOOT_MS, async () => {
    const r = await get(`${api}/readyz`);
    return r?.status === 200 ? true : undefined;
  });
  return Date.now();
}

/** A raw HTTP request declaring a body far over the limit, sending none: the answer's status and body. */
async function declareHuge(bytes: number): Promise<{ status: number; body: string }> {
  const port = Number(new URL(api).port);
  return await new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    let data = "";
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error("no answer to the oversized request"));
    }, 60_000);
    s.on("data", (d: Buffer) => {
      data += d.toString();
    });
    s.on("close", () => {
      clearTimeout(t);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf("\r\n\r\n") + 4) });
    });
    s.on("error", reject);
    s.write(
      `POST /api/v1/system/update HTTP/1.1\r\nHost: vipd\r\nAuthorization: Bearer ${token}\r\n` +
        `Content-Type: application/octet-stream\r\nContent-Length: ${bytes}\r\n\r\n`,
    );
  });
}

/** Whether `url` answers 200 within 2 s. */
async function httpOk(url: string): Promise<boolean> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

/**
 * The client beside the node: GET http://VIP:7473/readyz from the router's namespace (through
 * the route BIRD installed there), 2 s at most.
 */
async function besideOk(): Promise<boolean> {
  const r = await (lab as Lab).run(
    "r",
    ["curl", "-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", `http://${VIP}:7473/readyz`],
    { allowFail: true, timeoutMs: 10_000 },
  );
  return r.stdout.trim() === "200";
}

/**
 * The router beside the node: BIRD 2 in the namespace, peering with the node over the tap
 * (direct eBGP, graceful restart). `check link off`: see the header. Fast retries (connect
 * retry 5 s, error wait 1–5 s), so the session comes back as soon as the node dials or listens.
 */
async function startRouter(): Promise<void> {
  const l = lab as Lab;
  await l.run("r", ["ip", "tuntap", "add", "dev", "tap0", "mode", "tap"]);
  await l.run("r", ["ip", "link", "set", "tap0", "up"]);
  await l.addr("r", "tap0", `${ROUTER}/24`);
  const bird = await startBird(
    l,
    "r",
    `log "${join(dir, "bird.log")}" all;
timeformat protocol iso long ms;
timeformat log iso long ms;
router id ${ROUTER};
protocol device {}
protocol kernel k4 { ipv4 { export all; import none; }; }
protocol bgp node {
  local ${ROUTER} as 64500;
  neighbor ${NODE} as 64512;
  graceful restart on;
  check link off;
  debug { states, events };
  connect retry time 5;
  error wait time 1,5;
  ipv4 { import all; export none; };
}
`,
  );
  birdSock = bird.sock;
  birdPid = bird.proc.pid;
}

/** One birdc command's output ("" when birdc fails, e.g. "Network not found" exits 1). */
async function birdc(cmd: string): Promise<string> {
  const r = await run(["birdc", "-s", birdSock, ...cmd.split(" ")], { allowFail: true, timeoutMs: 10_000 });
  return r.stdout;
}

interface BgpView {
  /** BIRD's protocol state of the session: "up" when Established, "start" while it is down. */
  state: string;
  /** When the protocol last changed state (BIRD's clock, date and time to the ms). */
  since: string;
  /** BIRD keeps the node's routes as stale ("Neighbor graceful restart active"). */
  grActive: boolean;
  /** BIRD's table has the VIP's /32 via the node. */
  route: boolean;
  /** BIRD answered the route query (birdc ran; "Network not found" is an answer). */
  answered: boolean;
  /** The restart time the node's OPEN advertised (while Established). */
  restartTime: number | undefined;
  /** The node's OPEN had the Restart State bit ("Restart recovery"). */
  recovery: boolean;
}

async function bgpView(): Promise<BgpView> {
  const proto = await birdc("show protocols all node");
  const route = await birdc(`show route ${VIP}/32`);
  // "node  BGP  ---  up  2026-12-03 03:58:07.129  Established" (timeformat protocol iso long ms)
  const row = /^node\s+BGP\s+\S+\s+(\S+)\s+(\d{4}-\d\d-\d\d \S+)/m.exec(proto);
  const caps = proto.slice(proto.indexOf("Neighbor capabilities"));
  const time = proto.includes("Neighbor capabilities") ? /Restart time:\s+(\d+)/.exec(caps)?.[1] : undefined;
  return {
    state: row?.[1] ?? "?",
    since: row?.[2] ?? "?",
    grActive: proto.includes("Neighbor graceful restart active"),
    route: route.includes(`${VIP}/32`) && route.includes(`via ${NODE}`),
    answered: / ready\./.test(route),
    restartTime: time === undefined ? undefined : Number(time),
    recovery: proto.includes("Neighbor capabilities") && /Restart recovery/.test(caps),
  };
}

interface BgpPoll {
  polls: number;
  /** Polls BIRD answered without the VIP's route, as offsets from the start (ms). */
  misses: number[];
  /** Polls birdc got no answer for (a loaded machine): neither kept nor missing. */
  unanswered: number;
  /** First poll with graceful restart active, first with the session up again after it, first
   * with graceful restart over after that (offsets in ms). */
  grFrom?: number;
  upAgain?: number;
  grDone?: number;
  /** Polls that saw graceful restart active. */
  grPolls: number;
}

/** Asks BIRD about the session and the VIP's route every second until stopped. */
function pollBgp(): { stop(): Promise<BgpPoll> } {
  let stopped = false;
  const start = Date.now();
  const r: BgpPoll = { polls: 0, misses: [], unanswered: 0, grPolls: 0 };
  const loop = (async () => {
    while (!stopped) {
      const at = Date.now();
      const v = await bgpView();
      const t = at - start;
      r.polls++;
      if (!v.answered) r.unanswered++;
      else if (!v.route) r.misses.push(t);
      if (v.grActive) {
        r.grPolls++;
        r.grFrom ??= t;
      }
      if (r.grFrom !== undefined && r.upAgain === undefined && v.state === "up") r.upAgain = t;
      if (r.upAgain !== undefined && r.grDone === undefined && v.state === "up" && !v.grActive) r.grDone = t;
      await Bun.sleep(Math.max(0, 1_000 - (Date.now() - at)));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return r;
    },
  };
}

/**
 * Runs `probe` every 500 ms until stopped; the longest stretch without success, from the last
 * success before it to the first success after it.
 */
function watchReachable(probe: () => Promise<boolean>): {
  stop(): Promise<{ longestMs: number; polls: number }>;
} {
  // stop() is called once the test has seen the URL answer again; the watcher then keeps polling
  // until it sees that too (at most 30 s more), so the gap that ends the outage is counted.
  let stopAt = Number.POSITIVE_INFINITY;
  let lastOk = Date.now();
  let longestMs = 0;
  let polls = 0;
  const loop = (async () => {
    for (;;) {
      const started = Date.now();
      const ok = await probe();
      polls++;
      if (ok) {
        longestMs = Math.max(longestMs, Date.now() - lastOk);
        lastOk = Date.now();
        if (Date.now() >= stopAt) return;
      } else if (Date.now() >= stopAt + 30_000) {
        longestMs = Math.max(longestMs, Date.now() - lastOk);
        return;
      }
      await Bun.sleep(Math.max(0, 500 - (Date.now() - started)));
    }
  })();
  return {
    stop: async () => {
      stopAt = Date.now();
      await loop;
      return { longestMs, polls };
    },
  };
}

describe("signed A/B system updates over the API", () => {
  test("build v1 (one image) and seed it; v2 and a broken v2 are bundles of the same root", async () => {
    const t = Date.now();
    // For development only: VIPD_SYSTEM_TEST_REUSE=DIR takes the pristine build output of an
    // earlier `image/build.sh DIR` with this test's settings (see below) instead of building.
    const reuse = process.env.VIPD_SYSTEM_TEST_REUSE;
    const b = reuse
      ? sh(
          [
            "bash",
            "-c",
            `mkdir -p ${out} && cp ${reuse}/vipd-rootfs.ext4 ${reuse}/vipd-edge.raucb ${out}/ && cp --sparse=always ${reuse}/vipd-edge.img ${image}`,
          ],
          300_000,
        )
      : sh(["timeout", "900", "bash", "image/build.sh", out], 920_000, {
          VIPD_IMAGE_VERSION: "test-v1",
          VIPD_IMAGE_BOOT_TRIES: "1",
          VIPD_IMAGE_READY_DEADLINE: String(READY_DEADLINE),
          VIPD_IMAGE_NO_ZSTD: "1",
        });
    console.log(`image build: ${secs(Date.now() - t)}`);
    if (b.code !== 0) throw new Error(`image/build.sh failed (${b.code}):\n${b.out.slice(-4000)}`);
    const site = join(dir, "site");
    mkdirSync(site);
    cpSync(join(import.meta.dir, "site", "pools.yaml"), join(site, "pools.yaml"));
    writeFileSync(
      join(site, "node.yaml"),
      `apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: edge1 }
spec:
  nodeName: edge1
  interfaces: [eth0]
  localDelivery: true
  # A reboot under TCG takes 60-110 s: peers keep the routes 600 s (vipd's default is 120).
  bgp: { gracefulRestartSeconds: 600 }
  api:
    listen: 0.0.0.0:7473
    metricsOpen: false
    tokens:
      - { name: fleet, role: admin, hash: "sha256:${tokenHash}" }
`,
    );
    // BGP to the router beside the node, with graceful restart, for the Service's pool.
    writeFileSync(
      join(site, "bgp.yaml"),
      `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: router, namespace: metallb-system }
spec:
  myASN: 64512
  peerASN: 64500
  peerAddress: ${ROUTER}
  enableGracefulRestart: true
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: site-bgp, namespace: metallb-system }
spec:
  ipAddressPools: [site]
`,
    );
    // The node's address on that segment: eth1, matched by its MAC; eth0 keeps the image's DHCP.
    const network = join(dir, "network");
    mkdirSync(network);
    writeFileSync(
      join(network, "10-beside.network"),
      `[Match]
MACAddress=${NODE_MAC}

[Network]
Address=${NODE}/24
LinkLocalAddressing=no
IPv6AcceptRA=no
`,
    );
    const s = sh(["bash", "image/seed.sh", image, site, network], 60_000);
    if (s.code !== 0) throw new Error(`image/seed.sh failed:\n${s.out}`);
    overlay(image, disk);
    expect(Bun.file(join(out, "vipd-edge.raucb")).size).toBeGreaterThan(1 << 20);
    lab = await Lab.create("sysupd");
    await lab.addNs("r");
    await startRouter();

    // The bundles are made while the VM boots (they only read v1's root filesystem image).
    const rootfs = join(out, "vipd-rootfs.ext4");
    const garbage = join(dir, "not-an-elf.o");
    writeFileSync(garbage, "this is not an XDP object\n");
    const conf = join(dir, "update.conf");
    writeFileSync(conf, `TRIES=1\nREADY_DEADLINE=${BROKEN_DEADLINE}\n`);
    bundles["v2"] = join(dir, "v2.raucb");
    bundles["broken"] = join(dir, "v2-broken.raucb");
    made = Promise.all([
      shAsync(["bash", "image/bundle.sh", rootfs, bundles["v2"], "--version", "test-v2"], 600_000),
      shAsync(
        [
          "bash",
          "image/bundle.sh",
          rootfs,
          bundles["broken"],
          "--version",
          "test-v2-broken",
          "--file",
          `/usr/lib/vipd/xdp/arp_responder.o=${garbage}`,
          "--file",
          `/usr/lib/vipd/update.conf=${conf}`,
        ],
        600_000,
      ),
    ]);
  }, 960_000);

  test(
    "boot 1 (v1, slot A); bad bundles are refused and change nothing",
    async () => {
      await stopAllAndWait();
      const v = start("boot1");
      const up = await ready(v, "boot 1: /readyz answers 200");
      console.log(`boot 1 (v1): /readyz after ${secs(up - v.startedAt)}`);
      const t = Date.now();
      for (const r of await (made as NonNullable<typeof made>))
        if (r.code !== 0) throw new Error(`image/bundle.sh failed:\n${r.out}`);
      console.log(`bundles v2 and broken v2 made (waited ${secs(Date.now() - t)} after boot 1)`);
      // Signed by a key the node does not trust (same content as v2).
      const other = join(dir, "other");
      mkdirSync(other);
      const k = sh(
        [
          "openssl",
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-days",
          "365",
          "-subj",
          "/CN=not the fleet",
          "-keyout",
          join(other, "key.pem"),
          "-out",
          join(other, "cert.pem"),
        ],
        60_000,
      );
      if (k.code !== 0) throw new Error(`openssl: ${k.out}`);
      bundles["untrusted"] = join(dir, "untrusted.raucb");
      const rs = sh(
        [
          "rauc",
          "resign",
          "--no-verify",
          // rauc 1.8 wants a keyring even with --no-verify (it checks the new signature with it)
          `--keyring=${join(other, "cert.pem")}`,
          `--cert=${join(other, "cert.pem")}`,
          `--key=${join(other, "key.pem")}`,
          bundles["v2"] as string,
          bundles["untrusted"],
        ],
        300_000,
      );
      if (rs.code !== 0) throw new Error(`rauc resign: ${rs.out}`);
      // The first half of v2.
      const v2bytes = await Bun.file(bundles["v2"] as string).arrayBuffer();
      bundles["truncated"] = join(dir, "truncated.raucb");
      await Bun.write(bundles["truncated"], v2bytes.slice(0, Math.floor(v2bytes.byteLength / 2)));
      bundles["junk"] = join(dir, "junk.raucb");
      await Bun.write(bundles["junk"], crypto.getRandomValues(new Uint8Array(65536)));

      const before = await system();
      expect(before).toMatchObject({ compatible: "vipd-edge-x86_64", booted: "A", primary: "A" });
      expect(before.image["image"]).toBe("test-v1");
      expect(slotsLine(before)).toBe("A:good:booted:primary B:bad");
      await waitConsole(v, /vipd-boot-check: slot A is marked good/, 120_000);

      // Declared over the limit: refused before any byte is read.
      const huge = await declareHuge(before.maxBundleBytes + 1);
      expect(huge.status).toBe(413);
      expect(JSON.parse(huge.body)).toMatchObject({ error: "PayloadTooLarge" });

      for (const name of ["truncated", "untrusted", "junk"]) {
        const t1 = Date.now();
        const r = await postBundle(bundles[name] as string);
        console.log(`${name} bundle: ${r.status} in ${secs(Date.now() - t1)}: ${JSON.stringify(r.body)}`);
        expect(r.status).toBe(400);
        expect(r.body["error"]).toBe("InvalidBundle");
        expect(String(r.body["message"])).toMatch(/refused/);
        if (name === "untrusted") expect(String(r.body["message"])).toMatch(/signature|certificate|verif/i);
        const after = await system();
        expect(slotsLine(after)).toBe("A:good:booted:primary B:bad");
        expect(after.image["image"]).toBe("test-v1");
        expect(after.update.last).toMatchObject({ result: "refused", error: "InvalidBundle" });
        expect(after.update.running).toBeNull();
      }
    },
    BOOT_MS + 600_000,
  );

  test(
    "a power cut while v2 is being installed leaves the node on v1",
    async () => {
      const v = vm as Vm;
      // The upload runs on; QEMU is killed once RAUC writes the slot.
      const lastBefore = (await system()).update.last?.finishedAt;
      const tPost = Date.now();
      const posted = postBundle(bundles["v2"] as string).catch((e: Error) => ({
        status: 0,
        body: { e: e.message },
      }));
      const seen = await until(v, "RAUC starts writing slot B", 600_000, async () => {
        await Bun.sleep(2_000);
        const s = await systemOrNull();
        if (s === null) return undefined;
        const run = s.update.running;
        if (run === null && s.update.last?.finishedAt !== lastBefore) return s.update.last; // missed it
        return run?.phase === "installing" && /^Copying image/.test(run.message) && !/done/.test(run.message)
          ? run
          : undefined;
      });
      if (seen === null || !("phase" in seen))
        throw new Error(
          `the install of v2 ended before the power cut could hit its copy: ${JSON.stringify(seen)}`,
        );
      await powerCut(v);
      console.log(
        `power cut at ${seen.percent}% (${seen.message}), ${secs(Date.now() - tPost)} after the upload began`,
      );
      expect((await posted).status).not.toBe(200);

      const v2 = start("boot2");
      const up = await ready(v2, "boot 2 (after the power cut): /readyz answers 200");
      console.log(`boot 2 (v1 after the power cut): /readyz after ${secs(up - v2.startedAt)}`);
      const s = await system();
      expect(s.booted).toBe("A");
      expect(s.primary).toBe("A");
      expect(s.image["image"]).toBe("test-v1");
      expect(slotsLine(s)).toBe("A:good:booted:primary B:bad");
      await waitConsole(v2, /vipd-boot-check: slot A is marked good/, 120_000);
    },
    BOOT_MS + 700_000,
  );

  test(
    "a v2 whose vipd never becomes ready is rolled back to v1 by the node itself",
    async () => {
      const v = vm as Vm;
      const t1 = Date.now();
      const r = await postBundle(bundles["broken"] as string);
      console.log(`broken v2 installed in ${secs(Date.now() - t1)}: ${JSON.stringify(r.body)}`);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ result: "installed", bundleVersion: "test-v2-broken", slot: "B" });
      const mark = v.serial().length;
      const t = Date.now();
      await reboot();
      // Boot 3 tries B: vipd runs but is not ready; the check gives up after its deadline.
      await waitConsole(v, /vipd-boot-check: slot B is on trial/, BOOT_MS, mark);
      await waitConsole(
        v,
        /vipd-boot-check: not marked good: vipd was not ready within/,
        (BROKEN_DEADLINE + 60) * 1000,
        mark,
      );
      // Boot 4: systemd-boot falls back to A by itself.
      await waitConsole(
        v,
        /vipd-boot-check: slot B used up its tries without becoming ready: rolled back to slot A/,
        BOOT_MS,
        mark,
      );
      await ready(v, "boot 4: /readyz answers 200");
      console.log(`rollback: reboot request → back on v1 and ready in ${secs(Date.now() - t)}`);
      const s = await system();
      expect(s.booted).toBe("A");
      expect(s.image["image"]).toBe("test-v1");
      expect(s.update.lastTrial).toMatchObject({ outcome: "rolledBack", slot: "B" });
      expect(slotsLine(s)).toBe("A:good:booted:primary B:bad");
    },
    3 * BOOT_MS + 600_000,
  );

  test(
    "v2 through the API: installed into slot B, the reboot comes up on B with v2, marked good",
    async () => {
      const v = vm as Vm;
      const size = Bun.file(bundles["v2"] as string).size;
      let maxPercent = 0;
      let polling = true;
      const poller = (async () => {
        while (polling) {
          const s = await systemOrNull();
          if (s?.update.running) maxPercent = Math.max(maxPercent, s.update.running.percent);
          await Bun.sleep(5_000);
        }
      })();
      const t = Date.now();
      const r = await postBundle(bundles["v2"] as string);
      const installMs = Date.now() - t;
      polling = false;
      await poller;
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ result: "installed", bundleVersion: "test-v2", slot: "B" });
      expect(maxPercent).toBeGreaterThan(0);
      const installed = await system();
      expect(installed.primary).toBe("B");
      expect(installed.booted).toBe("A");

      // The VIP answers before the reboot (QEMU's network resolves it with ARP).
      await until(v, `GET /readyz through the VIP ${VIP}`, 60_000, async () =>
        (await get(`${vip}/readyz`))?.status === 200 ? true : undefined,
      );
      // BIRD has the VIP's route from the node on an Established session, no restart pending, and
      // the client beside the node reaches the VIP through it.
      const before = await until(v, `BIRD has ${VIP}/32 via ${NODE}, session up`, 180_000, async () => {
        const b = await bgpView();
        return b.state === "up" && b.route && !b.grActive ? b : undefined;
      });
      // NodeSettings.spec.bgp.gracefulRestartSeconds reached the node's OPEN.
      expect(before.restartTime).toBe(600);
      await until(v, `the client beside the node reaches ${VIP}`, 60_000, async () =>
        (await besideOk()) ? true : undefined,
      );
      const apiWatch = watchReachable(() => httpOk(`${api}/readyz`));
      const vipWatch = watchReachable(() => httpOk(`${vip}/readyz`));
      const besideWatch = watchReachable(besideOk);
      const bgpPoll = pollBgp();
      const rebootAt = Date.now();
      await reboot();
      // Down first (the reboot really happens), then up again.
      await until(v, "the API goes away for the reboot", 180_000, async () =>
        (await get(`${api}/readyz`)) === null ? true : undefined,
      );
      const up = await ready(v, "boot 5: /readyz answers 200");
      await until(v, `GET /readyz through the VIP ${VIP} after the reboot`, 120_000, async () =>
        (await get(`${vip}/readyz`))?.status === 200 ? true : undefined,
      );
      await until(v, `the client beside the node reaches ${VIP} after the reboot`, 120_000, async () =>
        (await besideOk()) ? true : undefined,
      );
      // BIRD: the session is back (a new one) and graceful restart is over — v2 sent its End-of-RIB.
      const back = await until(v, "BIRD: session back and graceful restart over", 300_000, async () => {
        const b = await bgpView();
        return b.state === "up" && !b.grActive && b.since !== before.since ? b : undefined;
      });
      const [apiDown, vipDown, besideDown] = [
        await apiWatch.stop(),
        await vipWatch.stop(),
        await besideWatch.stop(),
      ];
      const bgp = await bgpPoll.stop();
      const s1 = (ms: number | undefined) => (ms === undefined ? "never" : `${(ms / 1000).toFixed(0)} s`);
      const gaps =
        bgp.misses.length === 0
          ? "none"
          : `${bgp.misses.length} polls without it, ${s1(bgp.misses[0])}–${s1(bgp.misses.at(-1))} after the reboot request`;
      console.log(
        `BGP through the reboot into v2 (BIRD 2 beside the node, polled every 1 s, ${bgp.polls} polls, ${bgp.unanswered} unanswered): ` +
          `route ${VIP}/32 kept: ${bgp.misses.length === 0 ? "yes" : "NO"} (gap: ${gaps}); ` +
          `graceful restart active from ${s1(bgp.grFrom)} (${bgp.grPolls} polls), session up again at ` +
          `${s1(bgp.upAgain)}, graceful restart over at ${s1(bgp.grDone)} (after the reboot request); ` +
          `restart window ${bgp.grFrom !== undefined && bgp.upAgain !== undefined ? s1(bgp.upAgain - bgp.grFrom) : "?"} ` +
          `of the ${before.restartTime ?? "?"} s vipd advertises; v2's OPEN had the Restart State bit: ${back.recovery ? "yes" : "no"}`,
      );
      console.log(
        `VIP ${VIP} unreachable from the client beside the node (router's segment, through BIRD's route): ` +
          `${secs(besideDown.longestMs)} (polled every 500 ms, ${besideDown.polls} polls)`,
      );
      // Kept at every poll, through a restart that really happened (BIRD saw the session go down
      // the graceful way), and still there once graceful restart ended: v2 announced it again.
      expect(bgp.misses).toEqual([]);
      expect(bgp.grPolls).toBeGreaterThan(0);
      expect(back.route).toBe(true);
      const after = await system();
      expect(after.booted).toBe("B");
      expect(after.image["image"]).toBe("test-v2");
      await until(v, "vipd-boot-check marks slot B good", (READY_DEADLINE + 60) * 1000, async () => {
        await Bun.sleep(4_000);
        const s = await systemOrNull();
        if (s === null) return undefined;
        return s.update.lastTrial?.outcome === "good" && s.update.lastTrial.slot === "B" ? s : undefined;
      });
      const good = await system();
      console.log(`GET /api/v1/system on v2: ${JSON.stringify({ ...good, seed: undefined })}`);
      console.log(
        `update v1 → v2: bundle ${(size / 2 ** 20).toFixed(0)} MiB (${size} bytes); upload + check + install ` +
          `${secs(installMs)} (progress seen up to ${maxPercent}%); reboot request → /readyz 200 on v2: ` +
          `${secs(up - rebootAt)}; API unreachable ${secs(apiDown.longestMs)}, VIP ${VIP} unreachable from ` +
          `the client beside the node ${secs(besideDown.longestMs)} and from QEMU's network ` +
          `${secs(vipDown.longestMs)} (polled every 500 ms); BIRD kept the VIP's route through the reboot: ` +
          `${bgp.misses.length === 0 ? "yes" : "no"}`,
      );
      expect(slotsLine(good)).toBe("A:good B:good:booted:primary");
      expect(good.slots.find((s) => s.bootname === "B")?.bundleVersion).toBe("test-v2");
    },
    BOOT_MS + 1_200_000,
  );
});
