/**
 * BGP announcement benchmark: `bun bench/bgp.ts [runs=3] [routes=100000]` (root).
 *
 * One BIRD 2 router (namespace r, kernel protocol exporting everything) peers with a vipd speaker
 * (namespace n1, src/bgp/cli.ts) and with gobgpd 3.10 (namespace g). For each speaker in turn, in
 * the same run and against the same BIRD, we hand over N /32s and time until BIRD's kernel table
 * holds all N, counted from the kernel's own route notifications by a netlink listener in r with a
 * 256 MB receive buffer (SO_RCVBUFFORCE), so no event is lost and polling costs nothing (`ip
 * monitor` is capped by net.core.rmem_max and lost events in most vipd runs): gobgpd is fed
 * through its fastest path, gRPC AddPathStream in batches of 1000 (LAB.md), by a feeder process in
 * its namespace that speaks gRPC over node:http2 with hand-encoded protobuf. We also report vipd's
 * CPU seconds (utime+stime from /proc) and resident memory, repeat, and print medians and the
 * ratio. For vipd we also print the speaker-side send time (diff and encoding, then first UPDATE
 * handed to the socket → last byte taken by the kernel; cli GET /sends) and the resident memory
 * after a full GC with the routes announced, and per route. The last line is `vipd/gobgp time: R`.
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { writeFileSync } from "node:fs";
import http2 from "node:http2";
import type { SendTiming } from "../src/bgp/bgp-speaker.ts";
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

// ------------------------------------------------------------------ route counter (runs in ns r)

/**
 * Counts the kernel's IPv4 route notifications for routes BIRD installed (protocol 12) via `nh`:
 * an rtnetlink socket subscribed to RTMGRP_IPV4_ROUTE with a 256 MB receive buffer (SO_RCVBUFFORCE,
 * root, not capped by rmem_max), read with blocking recv() in this helper process. Prints
 * "added deleted lost t" lines (t: epoch ms, sub-ms) at most every 20 ms and at once when the
 * count reaches `target`; "ready" once subscribed. lost=1 after an ENOBUFS (events dropped).
 */
function countRoutes(nh: string, target: number): void {
  const c = dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    setsockopt: {
      args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32],
      returns: FFIType.i32,
    },
    bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
    write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols;
  const out = (line: string) => {
    const b = new TextEncoder().encode(`${line}\n`);
    c.write(1, ptr(b), b.length);
  };
  const fd = c.socket(16 /* AF_NETLINK */, 3 /* SOCK_RAW */, 0 /* NETLINK_ROUTE */);
  if (fd < 0) throw new Error("netlink socket failed");
  const size = new Int32Array([256 * 1024 * 1024]);
  if (c.setsockopt(fd, 1 /* SOL_SOCKET */, 33 /* SO_RCVBUFFORCE */, ptr(size), 4) !== 0)
    throw new Error("SO_RCVBUFFORCE failed");
  const sa = new Uint8Array(12);
  const sv = new DataView(sa.buffer);
  sv.setUint16(0, 16, true);
  sv.setUint32(8, 0x40 /* RTMGRP_IPV4_ROUTE */, true);
  if (c.bind(fd, ptr(sa), 12) !== 0) throw new Error("netlink bind failed");
  const gw = nh.split(".").map(Number);
  const buf = new Uint8Array(1 << 20);
  const v = new DataView(buf.buffer);
  let added = 0;
  let deleted = 0;
  let lost = 0;
  let printed = 0;
  const now = () => performance.timeOrigin + performance.now();
  out("ready");
  for (;;) {
    const n = c.recv(fd, ptr(buf), buf.length, 0);
    if (n < 0) {
      if (read.i32(c.__errno_location()!, 0) === 105 /* ENOBUFS */) lost = 1;
      continue;
    }
    const before = added;
    for (let at = 0; at + 16 <= n; ) {
      const len = v.getUint32(at, true);
      const type = v.getUint16(at + 4, true);
      if (len < 16) break;
      // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
      if ((type === 24 || type === 25) && buf[at + 16] === 2 && buf[at + 16 + 5] === 12) {
        let via = false;
        for (let a = at + 16 + 12; a + 4 <= at + len; ) {
          const alen = v.getUint16(a, true);
          if (alen < 4) break;
          if (v.getUint16(a + 2, true) === 5 /* RTA_GATEWAY */ && alen === 8)
            via =
              buf[a + 4] === gw[0] && buf[a + 5] === gw[1] && buf[a + 6] === gw[2] && buf[a + 7] === gw[3];
          a += (alen + 3) & ~3;
        }
        if (via) {
          if (type === 24) added++;
          else deleted++;
        }
      }
      at += (len + 3) & ~3;
    }
    const t = now();
    if (added !== before && (t - printed >= 20 || (added >= target && before < target))) {
      out(`${added} ${deleted} ${lost} ${t}`);
      printed = t;
    }
  }
}

// ------------------------------------------------------------------ the benchmark (runs on the host)

interface Sample {
  /** False when the route counter lost events and the end time came from a slower poll. */
  exact: boolean;
  /** Resident memory before the routes were handed over (idle speaker with one session). */
  idleRssMB?: number;
  /** Resident memory after a full GC with the routes announced (what the speaker keeps). */
  retainedRssMB?: number;
  /** Speaker side (vipd): diff and encoding, then first UPDATE → last byte written, seconds. */
  encodeS?: number;
  writeS?: number;
  seconds: number;
  afterFirst: number;
  cpu?: number;
  rssMB?: number;
  hwmMB?: number;
  /** Routes in the kernel table over time: [seconds since the handover, routes], thinned. */
  curve: [number, number][];
}

/** Runs the route counter in ns r for routes via `nh`; resolves once it is subscribed. */
async function monitor(lab: Lab, nh: string, target: number) {
  const proc = lab.spawn("r", ["bun", new URL(import.meta.url).pathname, "--count", nh, String(target)], {
    stdout: "pipe",
  });
  let added = 0;
  let deleted = 0;
  let lost = false;
  let first = 0;
  let at = 0;
  const points: [number, number][] = [];
  let ready: () => void = () => {};
  const isReady = new Promise<void>((res) => {
    ready = res;
  });
  (async () => {
    const dec = new TextDecoder();
    let tail = "";
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
      tail += dec.decode(chunk);
      const lines = tail.split("\n");
      tail = lines.pop() ?? "";
      for (const l of lines) {
        if (l === "ready") {
          ready();
          continue;
        }
        const [a, d, x, t] = l.split(" ").map(Number) as [number, number, number, number];
        // The helper's epoch time in this process's performance.now() terms.
        const when = t - performance.timeOrigin;
        if (added === 0 && a > 0) first = when;
        added = a;
        deleted = d;
        lost ||= x === 1;
        at = when;
        points.push([when, added]);
      }
    }
  })();
  await Promise.race([
    isReady,
    Bun.sleep(15_000).then(() => {
      throw new Error("route counter did not start");
    }),
  ]);
  return {
    proc,
    points,
    get added() {
      return added;
    },
    get deleted() {
      return deleted;
    },
    get lost() {
      return lost;
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
 * Time (performance.now) when the kernel holds n routes via `nh`: from the counter's timestamps,
 * or, if it lost events (ENOBUFS, not seen with its 256 MB buffer), from a 250 ms poll of a dump
 * (then the time is rounded up to the poll, which only makes the speaker look slower).
 */
async function routesIn(
  lab: Lab,
  mon: Awaited<ReturnType<typeof monitor>>,
  nh: string,
  n: number,
): Promise<{ at: number; exact: boolean }> {
  const deadline = performance.now() + 300_000;
  let lastAdded = -1;
  let still = 0;
  while (performance.now() < deadline) {
    if (mon.added >= n) return { at: mon.at, exact: true };
    // Poll the dump only when the counter lost events and seems stuck.
    if (mon.lost && mon.added === lastAdded && ++still >= 8) {
      const dump = (await lab.run("r", ["ip", "-4", "route", "show", "proto", "bird"])).stdout;
      const have = dump.split("\n").filter((l) => l.includes(`via ${nh}`)).length;
      if (have >= n) return { at: performance.now(), exact: false };
    } else if (mon.added !== lastAdded) still = 0;
    lastAdded = mon.added;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${n} routes via ${nh} (counter saw ${mon.added})`);
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

/** The speaker's timing of its last flush (cli GET /sends). */
async function sends(control: string): Promise<SendTiming[]> {
  return (await (await fetch("http://vipd/sends", { unix: control })).json()) as SendTiming[];
}

async function runVipd(lab: Lab, n: number): Promise<Sample> {
  const mon = await monitor(lab, "10.0.0.2", n);
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
  const sent = (await sends(v.control))[0];
  if (sent?.prefixes !== n || sent.writeMs === undefined)
    throw new Error(`vipd send timing: ${JSON.stringify(sent)}`);
  // A full GC, and another a second later: the allocator returns freed pages to the OS lazily.
  await v.gc();
  await Bun.sleep(1000);
  await v.gc();
  const retained = procStats(v.proc.pid);
  await lab.stop(mon.proc);
  await v.close(false);
  await kernelEmpty(lab);
  return {
    exact,
    idleRssMB: before.rssMB,
    retainedRssMB: retained.rssMB,
    encodeS: sent.encodeMs / 1000,
    writeS: sent.writeMs / 1000,
    seconds: (t1 - t0) / 1000,
    afterFirst: (t1 - mon.first) / 1000,
    cpu: after.cpu - before.cpu,
    rssMB: after.rssMB,
    hwmMB: after.hwmMB,
    curve: curve(mon.points, t0),
  };
}

async function runGobgp(lab: Lab, n: number, dir: string): Promise<Sample> {
  const mon = await monitor(lab, "10.0.0.3", n);
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
            `${s.exact ? "" : "(counter lost events: end time from a poll) "}${s.writeS !== undefined ? `speaker send ${(s.encodeS! + s.writeS).toFixed(3)} s (diff+encode ${s.encodeS!.toFixed(3)} s), ` : ""}cpu ${s.cpu?.toFixed(2)} s, rss ${s.rssMB?.toFixed(0)} MB (peak ${s.hwmMB?.toFixed(0)} MB)`,
        );
      }
    }
    const vm = median(vs.map((s) => s.seconds));
    const sendS = median(vs.map((s) => (s.encodeS ?? 0) + (s.writeS ?? 0)));
    const retained = median(vs.map((s) => s.retainedRssMB ?? 0));
    const perRoute = median(vs.map((s) => (((s.retainedRssMB ?? 0) - (s.idleRssMB ?? 0)) * 1048576) / n));
    const polled = [...vs, ...gs].filter((s) => !s.exact).length;
    const gm = median(gs.map((s) => s.seconds));
    console.log(
      `median vipd : ${vm.toFixed(3)} s (after first route ${median(vs.map((s) => s.afterFirst)).toFixed(3)} s), cpu ${median(vs.map((s) => s.cpu ?? 0)).toFixed(2)} s, rss ${median(vs.map((s) => s.rssMB ?? 0)).toFixed(0)} MB (idle ${median(vs.map((s) => s.idleRssMB ?? 0)).toFixed(0)} MB before the routes, ${median(vs.map((s) => s.retainedRssMB ?? 0)).toFixed(0)} MB after a full GC), peak ${median(vs.map((s) => s.hwmMB ?? 0)).toFixed(0)} MB`,
    );
    console.log(
      `vipd speaker side: ${sendS.toFixed(3)} s to send all ${n} routes (diff+encode ${median(vs.map((s) => s.encodeS ?? 0)).toFixed(3)} s, then first UPDATE → last byte written ${median(vs.map((s) => s.writeS ?? 0)).toFixed(3)} s); RSS after GC ${retained.toFixed(1)} MB, ${perRoute.toFixed(0)} bytes per route over idle`,
    );
    console.log(
      `receiver end time from the kernel's notifications in ${vs.length + gs.length - polled} of ${vs.length + gs.length} runs${polled > 0 ? `, from a dump poll in ${polled}` : ""}`,
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
        "runs where the route counter lost events": polled,
        "vipd speaker send seconds": sendS,
        "vipd RSS after GC MB": retained,
        "vipd bytes per route": perRoute,
      },
      goals: [
        { figure: "vipd/gobgp time", op: "<=", value: 0.2, text: "vipd at most 1/5 of GoBGP's time" },
        { figure: "vipd RSS after GC MB", op: "<=", value: 60, text: "vipd RSS after GC at most 60 MB" },
      ],
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
  else if (process.argv[2] === "--count") countRoutes(process.argv[3]!, Number(process.argv[4]));
  else await main();
}
