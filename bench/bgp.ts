/**
 * BGP announcement benchmark: `bun bench/bgp.ts [runs=3] [routes=100000]` (root).
 *
 * One BIRD 2 router (namespace r, kernel protocol exporting everything) peers with a vipd speaker
 * (namespace n1, src/bgp/cli.ts) and with gobgpd 3.10 (namespace g). For each speaker in turn, in
 * the same run and against the same BIRD, we hand over N /32s and time until BIRD's kernel table
 * holds all N (counted from `ip -o monitor route` in r, so polling costs nothing): gobgpd is fed
 * through its fastest path, gRPC AddPathStream in batches of 1000 (LAB.md), by a feeder process in
 * its namespace that speaks gRPC over node:http2 with hand-encoded protobuf. We also report vipd's
 * CPU seconds (utime+stime from /proc) and resident memory, repeat, and print medians and the
 * ratio. The last line is `vipd/gobgp time: R`.
 */
import { writeFileSync } from "node:fs";
import http2 from "node:http2";
import { removeTmpDirs, startBird, startVipd, tmpDir, waitFor } from "../test/fixtures/bgp/harness.ts";
import { Lab } from "../test/support/netns.ts";
import { startRecording } from "./lib/results.ts";

// ------------------------------------------------------------------ gobgpd feeder (runs in ns g)

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n >>> 0;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}
const te = new TextEncoder();
function field(no: number, bytes: Uint8Array | number[]): number[] {
  const b = bytes instanceof Uint8Array ? [...bytes] : bytes;
  return [...varint((no << 3) | 2), ...varint(b.length), ...b];
}
const vfield = (no: number, v: number) => [...varint(no << 3), ...varint(v)];
const any = (type: string, value: number[]) =>
  field(1, te.encode(`type.googleapis.com/apipb.${type}`)).concat(field(2, value));

/** apipb.Path for prefix/32 with ORIGIN IGP and NEXT_HOP. */
function path(prefix: string, nextHop: string): number[] {
  const nlri = any("IPAddressPrefix", [...vfield(1, 32), ...field(2, te.encode(prefix))]);
  const origin = any("OriginAttribute", []);
  const nh = any("NextHopAttribute", field(1, te.encode(nextHop)));
  const family = [...vfield(1, 1), ...vfield(2, 1)];
  return [...field(1, nlri), ...field(2, origin), ...field(2, nh), ...field(9, family)];
}

/**
 * Feeds `count` paths to gobgpd. One AddPathStream call per batch of 500 paths (~55 KB, inside
 * HTTP/2's initial 64 KB stream window): one long stream stalled Bun's http2 client after
 * 16k–30k paths here, even with every write awaited.
 */
async function feed(count: number, nextHop: string): Promise<void> {
  const client = http2.connect("http://127.0.0.1:50051");
  const t0 = Date.now();
  console.log(JSON.stringify({ feedStart: t0 }));
  let status = "0";
  for (let i = 0; i < count && status === "0"; i += 500) {
    const paths: number[] = [];
    for (let k = i; k < Math.min(count, i + 500); k++) {
      paths.push(...field(3, path(`10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`, nextHop)));
    }
    const msg = Uint8Array.from(paths);
    const frame = new Uint8Array(5 + msg.length);
    new DataView(frame.buffer).setUint32(1, msg.length);
    frame.set(msg, 5);
    const req = client.request({
      ":method": "POST",
      ":path": "/apipb.GobgpApi/AddPathStream",
      "content-type": "application/grpc",
      te: "trailers",
    });
    let st = "";
    req.on("trailers", (t) => {
      st = String(t["grpc-status"] ?? "");
    });
    req.on("response", (h) => {
      if (h["grpc-status"] !== undefined) st = String(h["grpc-status"]);
    });
    const closed = new Promise<void>((res) => req.on("close", () => res()));
    req.resume();
    req.end(frame);
    await closed;
    status = st;
  }
  client.close();
  console.log(JSON.stringify({ feedEnd: Date.now(), grpcStatus: status }));
}

// ------------------------------------------------------------------ the benchmark (runs on the host)

interface Sample {
  /** False when the route monitor lost events and the end time came from a slower poll. */
  exact: boolean;
  /** Resident memory before the routes were handed over (idle speaker with one session). */
  idleRssMB?: number;
  /** Resident memory after a full GC with the routes announced (what the speaker keeps). */
  retainedRssMB?: number;
  seconds: number;
  afterFirst: number;
  cpu?: number;
  rssMB?: number;
  hwmMB?: number;
  /** Routes in the kernel table over time: [seconds since the handover, routes], thinned. */
  curve: [number, number][];
}

/** Streams `ip -o monitor route` in ns r and counts added routes via `nh`. */
function monitor(lab: Lab, nh: string) {
  const proc = lab.spawn("r", ["ip", "-rcvbuf", "4194304", "-o", "-4", "monitor", "route"], {
    stdout: "pipe",
    stderr: "ignore",
  });
  let added = 0;
  let deleted = 0;
  let first = 0;
  let at = 0;
  const points: [number, number][] = [];
  (async () => {
    const dec = new TextDecoder();
    let tail = "";
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
      const now = performance.now();
      tail += dec.decode(chunk);
      const lines = tail.split("\n");
      tail = lines.pop() ?? "";
      for (const l of lines) {
        if (!l.includes(`via ${nh}`) || !l.includes("proto bird")) continue;
        if (l.startsWith("Deleted")) deleted++;
        else {
          if (added === 0) first = now;
          added++;
        }
      }
      at = now;
      if (points.at(-1)?.[1] !== added) points.push([now, added]);
    }
  })();
  return {
    proc,
    points,
    get added() {
      return added;
    },
    get deleted() {
      return deleted;
    },
    get first() {
      return first;
    },
    get at() {
      return at;
    },
  };
}

/**
 * Time (performance.now) when the kernel holds n routes via `nh`: from the monitor's timestamps,
 * or, if the monitor lost events (netlink ENOBUFS under a burst), from a 250 ms poll of a dump
 * (then the time is rounded up to the poll, which only makes vipd look slower).
 */
async function routesIn(
  lab: Lab,
  mon: ReturnType<typeof monitor>,
  nh: string,
  n: number,
): Promise<{ at: number; exact: boolean }> {
  const deadline = performance.now() + 300_000;
  let lastAdded = -1;
  let still = 0;
  while (performance.now() < deadline) {
    if (mon.added >= n) return { at: mon.at, exact: true };
    // Poll the dump only when the monitor seems stuck (it usually is not).
    if (mon.added === lastAdded && ++still >= 8) {
      const dump = (await lab.run("r", ["ip", "-4", "route", "show", "proto", "bird"])).stdout;
      const have = dump.split("\n").filter((l) => l.includes(`via ${nh}`)).length;
      if (have >= n) return { at: performance.now(), exact: false };
    } else if (mon.added !== lastAdded) still = 0;
    lastAdded = mon.added;
    await Bun.sleep(250);
  }
  throw new Error(`timed out waiting for ${n} routes via ${nh} (monitor saw ${mon.added})`);
}

/** Waits (polling a dump; deletions are too bursty for the monitor's buffer) for BIRD's routes to go. */
async function kernelEmpty(lab: Lab): Promise<void> {
  await waitFor(
    "kernel table empty",
    async () => (await lab.run("r", ["ip", "-4", "route", "show", "proto", "bird"])).stdout.trim() === "",
    120_000,
    500,
  );
}

function procStats(pid: number): { cpu: number; rssMB: number; hwmMB: number } {
  const stat = require("node:fs").readFileSync(`/proc/${pid}/stat`, "utf8") as string;
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const hz = 100;
  const cpu = (Number(f[11]) + Number(f[12])) / hz;
  const status = require("node:fs").readFileSync(`/proc/${pid}/status`, "utf8") as string;
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
  return { cpu, rssMB: kb("VmRSS"), hwmMB: kb("VmHWM") };
}

/** The monitor's points as [seconds since t0, routes], at most ~200 of them (the last one kept). */
function curve(points: [number, number][], t0: number): [number, number][] {
  const step = Math.max(1, Math.ceil(points.length / 200));
  const out: [number, number][] = [[0, 0]];
  for (let i = 0; i < points.length; i++) {
    if (i % step === 0 || i === points.length - 1) {
      const [t, n] = points[i]!;
      out.push([Math.round(t - t0) / 1000, n]);
    }
  }
  return out;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function runVipd(lab: Lab, n: number): Promise<Sample> {
  const mon = monitor(lab, "10.0.0.2");
  const v = await startVipd(
    lab,
    "n1",
    {
      routerId: "10.0.0.2",
      listen: false,
      peers: [
        { name: "r", myASN: 64512, peerASN: 64500, peerAddress: "10.0.0.1", holdTime: 90, connectTime: 1 },
      ],
    },
    `n1-${Date.now()}`,
  );
  await waitFor("vipd Established", async () => (await v.status()).peers[0]?.state === "Established", 30_000);
  const before = procStats(v.proc.pid);
  const t0 = performance.now();
  await v.generate("r", "10.0.0.0", n);
  const { at: t1, exact } = await routesIn(lab, mon, "10.0.0.2", n);
  const after = procStats(v.proc.pid);
  await v.gc();
  const retained = procStats(v.proc.pid);
  await lab.stop(mon.proc);
  await v.close(false);
  await kernelEmpty(lab);
  return {
    exact,
    idleRssMB: before.rssMB,
    retainedRssMB: retained.rssMB,
    seconds: (t1 - t0) / 1000,
    afterFirst: (t1 - mon.first) / 1000,
    cpu: after.cpu - before.cpu,
    rssMB: after.rssMB,
    hwmMB: after.hwmMB,
    curve: curve(mon.points, t0),
  };
}

async function runGobgp(lab: Lab, n: number, dir: string): Promise<Sample> {
  const mon = monitor(lab, "10.0.0.3");
  const conf = `${dir}/gobgpd.toml`;
  writeFileSync(
    conf,
    `[global.config]\n  as = 64513\n  router-id = "10.0.0.3"\n  port = -1\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = "10.0.0.1"\n    peer-as = 64500\n`,
  );
  const g = lab.spawn(
    "g",
    ["gobgpd", "-f", conf, "--api-hosts", "127.0.0.1:50051", "-p", "--pprof-disable", "-l", "warn"],
    { stdout: "ignore", stderr: "ignore" },
  );
  await waitFor(
    "gobgpd Established",
    async () => (await lab.run("g", ["gobgp", "neighbor"], { allowFail: true })).stdout.includes("Establ"),
    60_000,
    250,
  );
  const t0 = performance.now();
  const feeder = lab.spawn("g", ["bun", new URL(import.meta.url).pathname, "--feed", String(n), "10.0.0.3"], {
    stdout: "pipe",
  });
  const out = new Response(feeder.stdout as ReadableStream<Uint8Array>).text();
  const { at: t1, exact } = await routesIn(lab, mon, "10.0.0.3", n);
  const log = await out;
  if (!log.includes('"grpcStatus":"0"')) throw new Error(`gobgp feeder failed: ${log}`);
  const stats = procStats(g.pid);
  await lab.stop(mon.proc);
  await lab.stop(g);
  await kernelEmpty(lab);
  return {
    exact,
    seconds: (t1 - t0) / 1000,
    afterFirst: (t1 - mon.first) / 1000,
    cpu: stats.cpu,
    rssMB: stats.rssMB,
    hwmMB: stats.hwmMB,
    curve: curve(mon.points, t0),
  };
}

async function main(): Promise<void> {
  const recording = startRecording("bgp");
  const runs = Number(process.argv[2] ?? 3);
  const n = Number(process.argv[3] ?? 100_000);
  const lab = await Lab.create("bgpbch");
  const cleanup = async () => {
    await lab.destroy();
    removeTmpDirs();
  };
  process.on("SIGINT", async () => {
    await cleanup();
    process.exit(130);
  });
  try {
    await lab.addNs("r");
    await lab.addNs("n1");
    await lab.addNs("g");
    await lab.veth("r", "vn1", "n1", "eth0");
    await lab.veth("r", "vg", "g", "eth0");
    await lab.bridge("r", "br0", ["vn1", "vg"]);
    await lab.addr("r", "br0", "10.0.0.1/24");
    await lab.addr("n1", "eth0", "10.0.0.2/24");
    await lab.addr("g", "eth0", "10.0.0.3/24");
    const dir = tmpDir(lab, "bench");
    await startBird(
      lab,
      "r",
      `router id 10.0.0.1;
protocol device {}
protocol kernel k4 { ipv4 { export all; import none; }; }
protocol bgp vipd { local 10.0.0.1 as 64500; neighbor 10.0.0.2 as 64512; connect delay time 1; ipv4 { import all; export none; }; }
protocol bgp gobgp { local 10.0.0.1 as 64500; neighbor 10.0.0.3 as 64513; connect delay time 1; ipv4 { import all; export none; }; }
`,
    );
    const vs: Sample[] = [];
    const gs: Sample[] = [];
    for (let i = 0; i < runs; i++) {
      // Alternate the order so neither speaker always runs on a warmer machine.
      const order = i % 2 === 0 ? ["vipd", "gobgp"] : ["gobgp", "vipd"];
      for (const who of order) {
        const s = who === "vipd" ? await runVipd(lab, n) : await runGobgp(lab, n, dir);
        (who === "vipd" ? vs : gs).push(s);
        console.log(
          `run ${i + 1} ${who.padEnd(5)}: ${s.seconds.toFixed(3)} s to ${n} routes in BIRD's kernel table (${s.afterFirst.toFixed(3)} s after the first), ` +
            `${s.exact ? "" : "(monitor lost events: end time from a poll) "}cpu ${s.cpu?.toFixed(2)} s, rss ${s.rssMB?.toFixed(0)} MB (peak ${s.hwmMB?.toFixed(0)} MB)`,
        );
      }
    }
    const vm = median(vs.map((s) => s.seconds));
    const gm = median(gs.map((s) => s.seconds));
    console.log(
      `median vipd : ${vm.toFixed(3)} s (after first route ${median(vs.map((s) => s.afterFirst)).toFixed(3)} s), cpu ${median(vs.map((s) => s.cpu ?? 0)).toFixed(2)} s, rss ${median(vs.map((s) => s.rssMB ?? 0)).toFixed(0)} MB (idle ${median(vs.map((s) => s.idleRssMB ?? 0)).toFixed(0)} MB before the routes, ${median(vs.map((s) => s.retainedRssMB ?? 0)).toFixed(0)} MB after a full GC), peak ${median(vs.map((s) => s.hwmMB ?? 0)).toFixed(0)} MB`,
    );
    console.log(
      `median gobgp: ${gm.toFixed(3)} s (after first route ${median(gs.map((s) => s.afterFirst)).toFixed(3)} s), gobgpd cpu ${median(gs.map((s) => s.cpu ?? 0)).toFixed(2)} s (whole life), rss ${median(gs.map((s) => s.rssMB ?? 0)).toFixed(0)} MB`,
    );
    const byRun = (ss: Sample[]) =>
      Object.fromEntries(ss.map((s, i) => [`routes in table.run ${i + 1}`, s.curve]));
    await recording.finish({
      samples: {
        "time to all routes.seconds": vs.map((s) => s.seconds),
        "after the first route.seconds": vs.map((s) => s.afterFirst),
        ...byRun(vs),
      },
      baseline: {
        "time to all routes.seconds": gs.map((s) => s.seconds),
        "after the first route.seconds": gs.map((s) => s.afterFirst),
        ...byRun(gs),
      },
      figures: {
        "vipd/gobgp time": vm / gm,
        "vipd seconds": vm,
        "gobgp seconds": gm,
        "vipd CPU s": median(vs.map((s) => s.cpu ?? 0)),
        "vipd RSS MB": median(vs.map((s) => s.rssMB ?? 0)),
        "runs where the monitor lost events": [...vs, ...gs].filter((s) => !s.exact).length,
      },
      goals: [{ figure: "vipd/gobgp time", op: "<=", value: 0.2, text: "vipd at most 1/5 of GoBGP's time" }],
      units: { "routes in table": "routes", "time to all routes": "s", "after the first route": "s" },
      params: {
        runs,
        routes: n,
        baseline: "gobgpd 3.10 via gRPC AddPathStream",
        peer: "BIRD 2 kernel table",
      },
    });
    console.log(`vipd/gobgp time: ${(vm / gm).toFixed(3)}`);
  } finally {
    await cleanup();
  }
}

if (import.meta.main) {
  if (process.argv[2] === "--feed") await feed(Number(process.argv[3]), process.argv[4]!);
  else await main();
}
