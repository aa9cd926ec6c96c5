/**
 * Timing-loop stall benchmark (needs root): `bun bench/stall.ts [--seconds 10]`
 *
 * Two real `vipd run` members (n1, n2) on one segment (test/support/cluster-lab/cluster-lab.ts:
 * veth pairs into a bridge), default cluster timing (heartbeat 50 ms, dead after 200 ms), and n1
 * has a BGP session (hold time 3 s) with BFD at 50 ms × 3 to BIRD 2 in the client namespace (BIRD
 * runs under SCHED_RR 20, so the reference peer is not the one starved on a shared machine). Then, for the
 * window (default 10 s; longer while n1's reload has not finished, at most 60 s):
 *
 * - four clients in n1's namespace flood n1's `POST /api/v1/config/validate` with the worst
 *   bodies, with a read token: 1 MiB of nested `[`, `--- {}` × 149k, `---` × 260k;
 * - n1 reloads a configuration of 10,000 Services (a file dropped into its config directory);
 * - a prober in n1's namespace asks `/livez` every 20 ms.
 *
 * Measured from outside n1: its heartbeats and BFD packets as they leave it (tcpdump on its
 * switch port), so the figure is what its peers live with — the timer lateness of the heartbeat
 * loop is each gap between heartbeats minus the 50 ms interval; false member-downs from n2's
 * `vipd_cluster_member_flaps_total{member="n1"}` (and n1's of n2, and a pause n1 detected in
 * itself: its tick came later than 200 ms); false BFD downs from n1's `vipd_bfd_session_flaps_total`
 * and BIRD's log; BGP session drops in BIRD's log (BGP, keepalives included, runs on n1's main
 * thread: a drop means the main thread held it past the hold time); `/livez` max latency; n1's peak RSS (VmHWM, every thread included). A quiet
 * window of 3 s before the load gives the baseline. Goals (issue "timing isolation"): 0 false
 * downs, lateness p99 ≤ 5 ms and max ≤ 20 ms, /livez max ≤ 100 ms, peak RSS ≤ 300 MB. The last
 * line is `false downs: N`. The machine's own floor is printed beside the heartbeats' lateness: a
 * bare Bun Worker's 50 ms timer in a separate process (no vipd code), over the same windows, so
 * what is vipd's and what any worker thread on this machine would see can be told apart. Every
 * loop is bounded in count and time; namespaces and processes are removed at the end, on failure
 * and on SIGINT/SIGTERM.
 */

import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { hashToken } from "../src/api/auth.ts";
import { ADMIN_TOKEN, ClusterLab, type LabNode, until } from "../test/support/cluster-lab/cluster-lab.ts";
import { destroyLabsOnSignal } from "../test/support/netns.ts";
import { startRecording } from "./lib/results.ts";

const READ_TOKEN = "stall-bench-read-token-0123456789";
const API = "http://127.0.0.1:7473";
const SERVICES = 10_000;
const HB_PORT = 7946;
const BFD_PORT = 3784;
const INTERVAL_MS = 50;
const QUIET_MS = 3000;
const MAX_WINDOW_MS = 60_000;

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

// ---------------------------------------------------------------------------------------------
// Child roles (run inside n1's namespace by this same script).

/** The worst bodies of the issue: deep nesting, many empty documents, many document markers. */
function worstBodies(): string[] {
  return ["[".repeat(1024 * 1024), "--- {}\n".repeat(149_000), "---\n".repeat(260_000)];
}

/** One flood client: POSTs the worst bodies in turn until `ms` has passed (at most 5,000 requests). */
async function flood(ms: number, client: number): Promise<void> {
  const bodies = worstBodies();
  const end = performance.now() + ms;
  const statuses = new Map<string, number>();
  for (let i = 0; i < 5000 && performance.now() < end; i++) {
    const body = bodies[(i + client) % bodies.length] as string;
    let key: string;
    try {
      const r = await fetch(`${API}/api/v1/config/validate`, {
        method: "POST",
        headers: { authorization: `Bearer ${READ_TOKEN}`, "content-type": "application/yaml" },
        body,
        signal: AbortSignal.timeout(Math.max(1000, end - performance.now() + 5000)),
      });
      await r.arrayBuffer();
      key = String(r.status);
    } catch (e) {
      key = (e as Error).name;
    }
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
  }
  console.log(JSON.stringify(Object.fromEntries(statuses)));
}

/**
 * The floor: a bare Bun Worker firing a 50 ms interval timer (nothing else), for `ms`; prints the
 * lateness of each firing (ms) as JSON with the wall-clock time of each, so the quiet and loaded
 * windows can be cut out of it.
 */
async function floor(ms: number): Promise<void> {
  const src = `const out = []; let last = performance.now();
const iv = setInterval(() => { const n = performance.now(); out.push([Date.now(), n - last - ${INTERVAL_MS}]); last = n; }, ${INTERVAL_MS});
onmessage = () => { clearInterval(iv); postMessage(out); };`;
  const w = new Worker(URL.createObjectURL(new Blob([src], { type: "application/javascript" })));
  const out = new Promise<[number, number][]>((resolve) => {
    w.onmessage = (e: MessageEvent<[number, number][]>) => resolve(e.data);
  });
  // Stops at SIGINT (the end of the window) or after `ms`, whichever is first.
  const stop = () => w.postMessage("stop");
  process.on("SIGINT", stop);
  const t = setTimeout(stop, ms);
  const fired = await out;
  clearTimeout(t);
  w.terminate();
  console.log(JSON.stringify(fired));
}

// ---------------------------------------------------------------------------------------------
// The benchmark.

const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
};
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "n/a");

/** n1's packets as they leave it: tcpdump on its switch port, one timestamp (ms) per packet. */
class Capture {
  readonly hb: number[] = [];
  readonly bfd: number[] = [];
  readonly done: Promise<void>;
  constructor(readonly proc: Subprocess<"ignore", "pipe", "pipe">) {
    this.done = this.read();
  }
  private async read(): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of this.proc.stdout) {
      buf += dec.decode(chunk, { stream: true });
      let i = buf.indexOf("\n");
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        i = buf.indexOf("\n");
        const m = /^(\d+\.\d+) IP \S+ > \S+\.(\d+): /.exec(line); // BFD is dissected, not "UDP"
        if (!m) continue;
        const t = Number(m[1]) * 1000;
        if (Number(m[2]) === HB_PORT) this.hb.push(t);
        else if (Number(m[2]) === BFD_PORT) this.bfd.push(t);
      }
    }
  }
}

/**
 * Lateness of each packet in [from, to] (ms, wall clock): its gap to the previous one minus the
 * interval. A silence still running at `to` counts as one more gap (to - last), so a loop that
 * sent nothing in the window is not reported as never late.
 */
function lateness(ts: number[], from: number, to: number, interval: number): number[] {
  const out: number[] = [];
  let last = Number.NaN;
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i] as number;
    if (t > to) break;
    if (t >= from && i > 0) out.push(Math.max(0, t - (ts[i - 1] as number) - interval));
    last = t;
  }
  if (Number.isFinite(last) && to - last > interval) out.push(to - last - interval);
  return out;
}

function metric(text: string, name: string, labels: string): number {
  const re = new RegExp(`^${name}${labels ? `\\{${labels}\\}` : ""} ([0-9.e+-]+)$`, "m");
  const m = re.exec(text);
  return m ? Number(m[1]) : 0;
}

function bulkConfig(): string {
  const parts = [
    `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: bulk, namespace: metallb-system }
spec: { addresses: [10.90.0.0/18] }
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: bulk-l2, namespace: metallb-system }
spec: { ipAddressPools: [bulk] }
`,
  ];
  for (let i = 0; i < SERVICES; i++)
    parts.push(`---
apiVersion: v1
kind: Service
metadata: { name: s${i}, namespace: bulk }
spec: { type: LoadBalancer, ports: [{ port: 80 }] }
`);
  return parts.join("");
}

const BIRD_CONF = (dir: string) => `log "${dir}/bird.log" all;
timeformat log iso long ms;
router id 10.88.0.2;
debug protocols { states, events };
protocol device { }
protocol bfd { interface "eth0" { min rx interval 50 ms; min tx interval 50 ms; multiplier 3; }; }
protocol bgp vipd {
  local 10.88.0.2 as 64500; neighbor 10.88.0.11 as 64512;
  ipv4 { import all; export none; };
  hold time 3; connect retry time 1; error wait time 1,2; bfd on;
}
`;

const PEER = `
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: router, namespace: metallb-system }
spec: { myASN: 64512, peerASN: 64500, peerAddress: 10.88.0.2, holdTime: 3s, connectTime: 1s, bfdProfile: fast }
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: { name: fast, namespace: metallb-system }
spec: { receiveInterval: 50, transmitInterval: 50, detectMultiplier: 3 }
`;

async function vmHwmMb(c: ClusterLab, node: LabNode): Promise<number> {
  const pid = node.proc?.pid;
  if (pid === undefined) return Number.NaN;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    void c;
    return Number.NaN;
  }
}

async function main(): Promise<number> {
  const seconds = Math.min(60, Math.max(1, arg("seconds", 10)));
  destroyLabsOnSignal();
  const rec = startRecording("stall");
  const c = await ClusterLab.create({ tag: "stall", nodes: 2 });
  let report: Record<string, number> = {};
  const samples: Record<string, number[]> = {};
  const baseline: Record<string, number[]> = {};
  try {
    const [n1, n2] = c.nodes as [LabNode, LabNode];
    // n1: a read token for the flood, and the BGP peer with BFD to BIRD (in the client namespace).
    c.writeConfig(n1, {
      api: {
        listen: "127.0.0.1:7473",
        tokens: [
          { name: "ops", role: "admin", hash: hashToken(ADMIN_TOKEN) },
          { name: "viewer", role: "read", hash: hashToken(READ_TOKEN) },
        ],
      },
    });
    const cfg1 = join(n1.dir, "config", "vipd.yaml");
    writeFileSync(cfg1, readFileSync(cfg1, "utf8") + PEER);
    writeFileSync(join(c.work, "bird.conf"), BIRD_CONF(c.work));
    c.lab.spawn("client", [
      "chrt",
      "-r",
      "20",
      "bird",
      "-f",
      "-c",
      join(c.work, "bird.conf"),
      "-s",
      join(c.work, "bird.ctl"),
    ]);
    // Generous: on a loaded machine a node takes many seconds to load its XDP program and start.
    for (const n of c.nodes) c.start(n);
    await c
      .allReady(60_000)
      .then(() => c.settled(30_000))
      .catch((e) => {
        for (const n of c.nodes) console.log(`${n.name} log tail:\n  ${n.logs.slice(-8).join("\n  ")}`);
        throw e;
      });
    const birdc = async (...cmd: string[]) =>
      (await c.lab.run("client", ["birdc", "-s", join(c.work, "bird.ctl"), ...cmd], { allowFail: true }))
        .stdout;
    await until(
      "BGP Established and BFD Up between n1 and BIRD",
      async () =>
        /Established/.test(await birdc("show", "protocols", "vipd")) &&
        /10\.88\.0\.11\s+eth0\s+Up/.test(await birdc("show", "bfd", "sessions")),
      30_000,
    );
    const cap = new Capture(
      c.lab.spawn(
        "lan",
        [
          "tcpdump",
          "-i",
          "p-n1",
          "-Q",
          "in",
          "-n",
          "-l",
          "-tt",
          "-B",
          "8192",
          `udp and src host ${n1.ip} and (dst port ${HB_PORT} or dst port ${BFD_PORT})`,
        ],
        { stdout: "pipe", stderr: "ignore" },
      ) as Subprocess<"ignore", "pipe", "pipe">,
    );
    await Bun.sleep(1000); // tcpdump attaches
    const floorProc = c.lab.spawn(
      n1.ns,
      [process.execPath, import.meta.path, "--floor", String(QUIET_MS + MAX_WINDOW_MS + 10_000)],
      { stdout: "pipe", stderr: "ignore" },
    ) as Subprocess<"ignore", "pipe", "pipe">;
    const before2 = await c.metrics(n2);
    const before1 = await c.metrics(n1);
    const birdLogBefore = readFileSync(join(c.work, "bird.log"), "utf8").length;
    const quietFrom = Date.now();
    await Bun.sleep(QUIET_MS);
    const loadFrom = Date.now();
    const logsFrom = n1.logs.length;

    // The load: the flood clients, the /livez prober and the reload of 10,000 Services.
    const windowMs = seconds * 1000;
    const self = import.meta.path;
    const floods = Array.from(
      { length: 4 },
      (_, i) =>
        c.lab.spawn(n1.ns, [process.execPath, self, "--flood", String(windowMs), String(i)], {
          stdout: "pipe",
          stderr: "ignore",
        }) as Subprocess<"ignore", "pipe", "pipe">,
    );
    const prober = c.lab.spawn(n1.ns, [process.execPath, self, "--livez", String(MAX_WINDOW_MS)], {
      stdout: "pipe",
      stderr: "ignore",
    }) as Subprocess<"ignore", "pipe", "pipe">;
    const bulk = join(c.work, "bulk.yaml");
    writeFileSync(bulk, bulkConfig());
    renameSync(bulk, join(n1.dir, "config", "bulk.yaml"));
    const reloadFrom = Date.now();
    // The window lasts `seconds`, and until n1 applied (or rejected) the reload, at most 60 s.
    const reloaded = () =>
      n1.logs
        .slice(logsFrom)
        .find((l) => /configuration (applied|rejected)/.test(l) && !l.includes('"reason":"start"'));
    let reloadMs = Number.NaN;
    for (let i = 0; i < MAX_WINDOW_MS / 100; i++) {
      if (Number.isNaN(reloadMs) && reloaded() !== undefined) reloadMs = Date.now() - reloadFrom;
      if (Date.now() - loadFrom >= windowMs && !Number.isNaN(reloadMs)) break;
      await Bun.sleep(100);
    }
    await Bun.sleep(500); // the last heartbeats reach the capture
    const loadTo = Date.now();
    const floodOut = await Promise.all(
      floods.map(async (p) => {
        const t = setTimeout(() => p.kill("SIGKILL"), 15_000);
        const s = await new Response(p.stdout).text();
        clearTimeout(t);
        return s.trim();
      }),
    );
    prober.kill("SIGINT");
    floorProc.kill("SIGINT");
    const floorText = await Promise.race([
      new Response(floorProc.stdout).text(),
      Bun.sleep(3000).then(() => ""),
    ]);
    floorProc.kill("SIGKILL");
    const floorFired = (floorText.trim() ? JSON.parse(floorText.trim()) : []) as [number, number][];
    const floorIn = (from: number, to: number) =>
      floorFired.filter(([t]) => t >= from && t <= to).map(([, late]) => Math.max(0, late));
    const probeText = await Promise.race([
      new Response(prober.stdout).text(),
      Bun.sleep(3000).then(() => ""),
    ]);
    prober.kill("SIGKILL");
    const statuses = new Map<string, number>();
    for (const o of floodOut)
      for (const [k, v] of Object.entries(JSON.parse(o || "{}") as Record<string, number>))
        statuses.set(k, (statuses.get(k) ?? 0) + v);

    const after2 = await c.metrics(n2);
    // n1 may still be busy: its counters are read once it answers again (at most 30 s).
    const after1 = await until(
      "n1 to answer /metrics",
      async () => (await c.metrics(n1)) || undefined,
      30_000,
    ).catch(() => "");
    const peak = await vmHwmMb(c, n1);
    cap.proc.kill("SIGINT");
    await Promise.race([cap.done, Bun.sleep(3000)]);
    const birdLog = readFileSync(join(c.work, "bird.log"), "utf8").slice(birdLogBefore);

    const flaps = (m: string, member: string) =>
      metric(m, "vipd_cluster_member_flaps_total", `member="${member}"`);
    const n2SawN1Down = flaps(after2, "n1") - flaps(before2, "n1");
    const n1SawN2Down = flaps(after1, "n2") - flaps(before1, "n2");
    const paused = n1.logs.slice(logsFrom).filter((l) => l.includes("this process was paused")).length;
    const bfdFlapsN1 =
      metric(after1, "vipd_bfd_session_flaps_total", 'session="router"') -
      metric(before1, "vipd_bfd_session_flaps_total", 'session="router"');
    const birdBfdDowns = (birdLog.match(/BFD session down/gi) ?? []).length;
    // BGP runs on n1's main thread (keepalives every hold/3 = 3 s): a session BIRD saw drop.
    const bgpDrops = (birdLog.match(/vipd: State changed to down/g) ?? []).length;
    const bfdDowns = Math.max(bfdFlapsN1, birdBfdDowns);
    const memberDowns = n2SawN1Down + n1SawN2Down + paused;
    const falseDowns = memberDowns + bfdDowns;

    const quiet = lateness(cap.hb, quietFrom, loadFrom, INTERVAL_MS);
    const loaded = lateness(cap.hb, loadFrom, loadTo, INTERVAL_MS);
    const bfdGaps = lateness(cap.bfd, loadFrom, loadTo, 0);
    const probe = (
      probeText ? JSON.parse(probeText.trim().split("\n").at(-1) as string) : { lat: [], failed: 0 }
    ) as {
      lat: number[];
      failed: number;
    };
    // Only the /livez requests made while the load ran (the prober ran for the whole window).
    const livezMax = probe.lat.length > 0 ? Math.max(...probe.lat) : Number.NaN;

    console.log(
      `window ${((loadTo - loadFrom) / 1000).toFixed(1)} s; reload of ${SERVICES} Services: ${Number.isNaN(reloadMs) ? "not finished" : `${reloadMs} ms`} ${reloaded()?.includes("rejected") ? " (rejected)" : ""}`,
    );
    console.log(`flood answers: ${[...statuses].map(([k, v]) => `${k}×${v}`).join(" ")}`);
    console.log(
      `heartbeat timer lateness (quiet, n=${quiet.length}): p50 ${f1(quantile(quiet, 0.5))} ms, p99 ${f1(quantile(quiet, 0.99))} ms, max ${f1(Math.max(...quiet))} ms`,
    );
    console.log(
      `heartbeat timer lateness (load, n=${loaded.length}): p50 ${f1(quantile(loaded, 0.5))} ms, p99 ${f1(quantile(loaded, 0.99))} ms, max ${f1(Math.max(...loaded))} ms`,
    );
    const fq = floorIn(quietFrom, loadFrom);
    const fl = floorIn(loadFrom, loadTo);
    console.log(
      `floor, a bare worker's 50 ms timer in another process (quiet, n=${fq.length}): p50 ${f1(quantile(fq, 0.5))} ms, p99 ${f1(quantile(fq, 0.99))} ms, max ${f1(Math.max(...fq))} ms`,
    );
    console.log(
      `floor, a bare worker's 50 ms timer in another process (load, n=${fl.length}): p50 ${f1(quantile(fl, 0.5))} ms, p99 ${f1(quantile(fl, 0.99))} ms, max ${f1(Math.max(...fl))} ms`,
    );
    console.log(
      `BFD transmit gaps (load, n=${bfdGaps.length}; 37.5–50 ms by RFC 5880 jitter): p99 ${f1(quantile(bfdGaps, 0.99))} ms, max ${f1(Math.max(...bfdGaps))} ms`,
    );
    console.log(
      `false member-downs: ${memberDowns} (n2 saw n1 down ${n2SawN1Down}, n1 saw n2 down ${n1SawN2Down}, n1 paused ${paused})`,
    );
    const inside = metric(after1, "vipd_bfd_timer_lateness_p99_seconds", "") * 1000;
    console.log(`BFD scheduler lateness inside n1 (its last 4096 fires): p99 ${f1(inside)} ms`);
    console.log(`false BFD downs: ${bfdDowns} (n1 flaps ${bfdFlapsN1}, BIRD ${birdBfdDowns})`);
    console.log(
      `BGP session drops seen by BIRD (hold time 3 s, keepalives every 1 s from n1's main thread): ${bgpDrops}`,
    );
    console.log(`/livez max latency: ${f1(livezMax)} ms (n=${probe.lat.length}, failed ${probe.failed})`);
    console.log(`peak RSS of n1: ${f1(peak)} MB`);
    report = {
      "lateness.p50": quantile(loaded, 0.5),
      "lateness.p99": quantile(loaded, 0.99),
      "lateness.max": Math.max(...loaded),
      "floor.p99": quantile(fl, 0.99),
      "floor.max": Math.max(...fl),
      "member downs": memberDowns,
      "bfd downs": bfdDowns,
      "bgp drops": bgpDrops,
      "livez max ms": livezMax,
      "peak rss MB": peak,
      "reload ms": reloadMs,
      "false downs": falseDowns,
    };
    samples.lateness = loaded;
    samples.livez = probe.lat;
    baseline.lateness = quiet;
    baseline.floor = fl;
  } finally {
    await c.destroy();
  }
  const figures = Object.fromEntries(
    Object.entries(report).map(([k, v]) => [k, Number.isFinite(v) ? v : -1]),
  );
  await rec.finish({
    samples,
    baseline,
    figures,
    goals: [
      { figure: "false downs", op: "<=", value: 0, text: "no false member or BFD down" },
      { figure: "lateness.p99", op: "<=", value: 5, text: "heartbeat timer lateness p99 ≤ 5 ms" },
      { figure: "lateness.max", op: "<=", value: 20, text: "heartbeat timer lateness max ≤ 20 ms" },
      { figure: "livez max ms", op: "<=", value: 100, text: "/livez max ≤ 100 ms" },
      { figure: "peak rss MB", op: "<=", value: 300, text: "peak RSS ≤ 300 MB" },
    ],
    units: { lateness: "ms", livez: "ms", floor: "ms" },
    params: { seconds, services: SERVICES, clients: 4, intervalMs: INTERVAL_MS },
  });
  console.log(`false downs: ${report["false downs"] ?? -1}`);
  return 0;
}

if (process.argv[2] === "--floor") {
  await floor(Number(process.argv[3]));
} else if (process.argv[2] === "--flood") {
  await flood(Number(process.argv[3]), Number(process.argv[4]));
} else if (process.argv[2] === "--livez") {
  let stop = false;
  process.on("SIGINT", () => {
    stop = true;
  });
  // Stops at SIGINT (the end of the window) or after the given time, whichever is first.
  const end = performance.now() + Number(process.argv[3]);
  const lat: number[] = [];
  let failed = 0;
  for (let i = 0; i < 10_000 && !stop && performance.now() < end; i++) {
    const t0 = performance.now();
    try {
      const r = await fetch(`${API}/livez`, { signal: AbortSignal.timeout(10_000) });
      await r.arrayBuffer();
      if (!r.ok) failed++;
    } catch {
      failed++;
    }
    const dt = performance.now() - t0;
    lat.push(dt);
    if (dt < 20) await Bun.sleep(20 - dt);
  }
  console.log(JSON.stringify({ lat, failed }));
} else {
  process.exit(await main());
}
