/**
 * ARP reply throughput of the XDP responder against the kernel, and the link's ceiling, on one
 * veth pair with two queues between two namespaces; plus the program's cost per answered packet
 * (BPF_PROG_RUN) and the time to program 10,000 VIPs from TypeScript.
 *
 * Method (see LAB.md): two senders (bench/lib/arpflood.c, AF_PACKET + QDISC_BYPASS + sendmmsg),
 * pinned one per core, each on its own veth queue, send the same ARP request for one VIP for
 * RUN_S seconds. Replies are counted on the client veth under XDP_DROP (rx_queue_N_xdp_packets),
 * so the client's stack is out of the way. Scenarios, interleaved ROUNDS times in one run:
 *   xdp      the responder attached to the node's veth, answering the VIP (the node also has the
 *            VIP as an address, but the kernel never sees the requests);
 *   kernel   no XDP on the node: its stack answers the same VIP;
 *   reflect  XDP_TX of every frame unchanged on the node (test/support/bpf/lab_reflect.c): the cheapest
 *            reply there is, so the with-replies ceiling of the link (counted on the client);
 *   ceiling  XDP_DROP on the node: requests/s the link carries with no replies at all (counted on
 *            the node).
 * Besides replies/s it reports the senders' CPU time per packet (user + system, which includes
 * the veth/XDP/ARP softirq work done in their context): on a shared, noisy machine the rates
 * follow whatever CPU share the senders get, while the CPU cost per packet stays steady.
 * The program's own cost comes from BPF_PROG_RUN; 10,000 VIPs are programmed through bun:ffi.
 * Reports medians and ratios. Last line: `xdp/kernel: R` (replies/s, XDP over kernel).
 *
 * The kernel baseline is bimodal on this shared VM: with the same code it answered 0.59–0.79 M/s
 * (2,250–2,850 ns of CPU per reply) in most rounds and 1.44–1.46 M/s (~1,370 ns) in a spell of
 * two consecutive rounds, while XDP stayed at 0.8–1 µs per reply; with 3 rounds such a spell
 * became the median and halved the ratio (2.81 and 1.44 in two CI runs an hour apart). So: 5
 * rounds, each round's own xdp/kernel and xdp/reflect printed beside the ratio of medians, and a
 * warning when the kernel's rounds differ by more than 1.5×.
 *
 *   bun bench/arp.ts [--seconds 3] [--rounds 5]
 */

import { parseIp } from "../src/util/ip.ts";
import { arpRequest, ETH_P_IP, ethHeader } from "../src/xdp/frames.ts";
import { parseMac } from "../src/xdp/layout.ts";
import { monotonicNs } from "../src/xdp/libbpf.ts";
import { XdpMaps } from "../src/xdp/maps.ts";
import { destroyLabsOnSignal, Lab } from "../test/support/netns.ts";
import { buildXdp, objectPath, tempPins } from "../test/support/xdp-testkit.ts";
import { startRecording } from "./lib/results.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const CLI = `${ROOT}src/xdp/cli.ts`;
const SENDER = `${ROOT}build/bench/arpflood`;

type Mode = "xdp" | "kernel" | "reflect" | "ceiling";

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!(v > 0)) throw new Error(`--${name} must be a positive number`);
  return v;
}
const RUN_S = Math.min(arg("seconds", 3), 20);
const ROUNDS = Math.min(arg("rounds", 5), 10);
const MAX_FRAMES = 50_000_000; // per sender, a hard bound whatever the speed

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (n: number) => `${(n / 1e6).toFixed(2)} M/s`;

async function sh(cmd: string[]): Promise<string> {
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  if ((await p.exited) !== 0) throw new Error(`${cmd.join(" ")} failed: ${err}`);
  return out;
}

async function xdpPackets(lab: Lab, ns: string): Promise<number> {
  const out = (await lab.run(ns, ["ethtool", "-S", "eth0"])).stdout;
  return [...out.matchAll(/rx_queue_\d+_xdp_packets: (\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
}

async function main(): Promise<void> {
  const recording = startRecording("arp");
  await buildXdp();
  await sh(["mkdir", "-p", `${ROOT}build/bench`]);
  await sh(["clang", "-O2", "-Wall", "-Werror", "-o", SENDER, `${ROOT}bench/lib/arpflood.c`]);
  const cpus = Number((await sh(["nproc"])).trim());
  const senders = Math.min(2, cpus);

  destroyLabsOnSignal();
  const lab = await Lab.create("arpb");
  const pins = await tempPins("bench");
  const stats = (await sh(["sysctl", "-n", "kernel.bpf_stats_enabled"])).trim();
  try {
    if (stats !== "0") await sh(["sysctl", "-q", "kernel.bpf_stats_enabled=0"]); // adds ~58 ns per run
    await lab.addNs("client");
    await lab.addNs("node");
    // Two queues each way: created with them (Lab.veth makes single-queue pairs).
    await lab.run("client", [
      "ip",
      "link",
      "add",
      "eth0",
      "numtxqueues",
      "2",
      "numrxqueues",
      "2",
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "numtxqueues",
      "2",
      "numrxqueues",
      "2",
      "netns",
      lab.nsName("node"),
    ]);
    for (const ns of ["client", "node"]) await lab.run(ns, ["ip", "link", "set", "eth0", "up"]);
    await lab.addr("client", "eth0", "10.88.0.1/24");
    await lab.addr("node", "eth0", "10.88.0.2/24");
    await lab.addr("node", "eth0", "10.88.0.100/32"); // the VIP, so the kernel can answer it too
    await lab.run("client", [
      "ip",
      "link",
      "set",
      "dev",
      "eth0",
      "xdp",
      "obj",
      objectPath("lab_drop"),
      "sec",
      "xdp",
    ]);

    // Load and attach the responder once through the driver (window 0: no liveness gate), then
    // stop the daemon: program, maps and attachment stay pinned.
    const state = `/tmp/${lab.prefix}state.json`;
    // The VIP under test among 9,999 others: the map holds 10,000 entries, as a big node would.
    const desired = [{ ifname: "eth0", ip: "10.88.0.100" }];
    for (let i = 1; i < 10_000; i++) desired.push({ ifname: "eth0", ip: `10.89.${i >> 8}.${i & 255}` });
    await Bun.write(state, JSON.stringify(desired));
    const daemon = lab.spawn(
      "node",
      ["bun", CLI, "serve", "--state", state, "--pin-dir", pins.pinDir, "--window-ms", "0"],
      { stdout: "pipe" },
    );
    const reader = (daemon.stdout as ReadableStream<Uint8Array>).getReader();
    let out = "";
    const deadline = Date.now() + 20_000;
    while (!out.includes('"event":"ready"') && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    if (!out.includes('"event":"ready"') || out.includes('"event":"error"')) {
      throw new Error(`the daemon did not start:\n${out}`);
    }
    const applyMs = Number(/"ms":([0-9.]+)/.exec(out)?.[1] ?? Number.NaN);
    await lab.stop(daemon, "SIGTERM");
    await sh(["rm", "-f", state]);

    const channels = (await lab.run("node", ["ethtool", "-l", "eth0"])).stdout;
    const clientMac = parseMac(await lab.mac("client", "eth0"))!;
    const request = arpRequest({
      mac: clientMac,
      ip: parseIp("10.88.0.1")!,
      target: parseIp("10.88.0.100")!,
      padTo: 60,
    });
    const hex = Buffer.from(request).toString("hex");

    const setNode = async (mode: Mode) => {
      await lab.run("node", ["ip", "link", "set", "dev", "eth0", "xdp", "off"]);
      if (mode === "xdp") {
        await lab.run("node", [
          "bpftool",
          "net",
          "attach",
          "xdpdrv",
          "pinned",
          `${pins.pinDir}/prog`,
          "dev",
          "eth0",
        ]);
      } else if (mode === "ceiling" || mode === "reflect") {
        const obj = objectPath(mode === "ceiling" ? "lab_drop" : "lab_reflect");
        await lab.run("node", ["ip", "link", "set", "dev", "eth0", "xdpdrv", "obj", obj, "sec", "xdp"]);
      }
    };
    const runOnce = async (mode: Mode) => {
      await setNode(mode);
      const countNs = mode === "ceiling" ? "node" : "client";
      const before = await xdpPackets(lab, countNs);
      const t0 = performance.now();
      const procs = Array.from({ length: senders }, (_, i) =>
        lab.spawn(
          "client",
          ["taskset", "-c", String(i), SENDER, "eth0", String(RUN_S), String(MAX_FRAMES), hex],
          {
            stdout: "pipe",
          },
        ),
      );
      const outs = await Promise.all(
        procs.map(async (p) => {
          const out = await new Response(p.stdout as ReadableStream).text();
          await p.exited;
          await lab.stop(p);
          const [sent, user, sys] = out.trim().split(" ").map(Number) as [number, number, number];
          return { sent, cpuUs: user + sys };
        }),
      );
      const secs = (performance.now() - t0) / 1000;
      await Bun.sleep(200); // let the last replies land
      const got = (await xdpPackets(lab, countNs)) - before;
      const sent = outs.reduce((a, o) => a + o.sent, 0);
      const cpuNs = outs.reduce((a, o) => a + o.cpuUs, 0) * 1000;
      return { rate: got / secs, sentRate: sent / secs, nsPerPacket: cpuNs / Math.max(got, 1) };
    };

    console.log(`veth pair, node channels:\n${channels.trim().split("\n").slice(-5).join("\n")}`);
    console.log(`${senders} sender(s), ${RUN_S} s per run, ${ROUNDS} rounds, interleaved\n`);
    const res: Record<Mode, number[]> = { xdp: [], kernel: [], reflect: [], ceiling: [] };
    const cpu: Record<Mode, number[]> = { xdp: [], kernel: [], reflect: [], ceiling: [] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const mode of ["xdp", "kernel", "reflect", "ceiling"] as const) {
        const { rate, sentRate, nsPerPacket } = await runOnce(mode);
        res[mode].push(rate);
        cpu[mode].push(nsPerPacket);
        console.log(
          `round ${r + 1} ${mode.padEnd(7)} ${fmt(rate)} (requests sent ${fmt(sentRate)}, ` +
            `sender-context CPU ${nsPerPacket.toFixed(0)} ns per ${mode === "ceiling" ? "request" : "reply"})`,
        );
      }
    }
    await setNode("xdp");

    // Cost per answered packet: single runs of a fresh request (a repeated run would answer its
    // own reply), minus the timer overhead of a single run (measured on a non-ARP frame run once
    // and run 100k times).
    const maps = XdpMaps.open(pins.pinDir);
    const cost = (() => {
      try {
        const vip = parseIp("10.88.0.100")!;
        maps.setVip(1, vip, clientMac); // ifindex 1 (lo) of this namespace, where BPF_PROG_RUN runs
        maps.setLiveness(monotonicNs(), 600_000_000_000n); // the gate on, as in production
        const req = arpRequest({ mac: clientMac, ip: parseIp("10.88.0.1")!, target: vip });
        const miss = arpRequest({
          mac: clientMac,
          ip: parseIp("10.88.0.1")!,
          target: parseIp("10.88.0.222")!,
        });
        const other = new Uint8Array([...ethHeader(clientMac, clientMac, ETH_P_IP), ...new Uint8Array(46)]);
        const single = (f: Uint8Array) => {
          const d: number[] = [];
          for (let i = 0; i < 20_000; i++) {
            const r = maps.testRun(f);
            if (f === req && r.retval !== 3) throw new Error("the request was not answered");
            d.push(r.durationNs);
          }
          return median(d);
        };
        const answeredOnce = single(req);
        const otherOnce = single(other);
        const otherMany = median(
          Array.from({ length: 5 }, () => maps.testRun(other, { repeat: 100_000 }).durationNs),
        );
        const missMany = median(
          Array.from({ length: 5 }, () => maps.testRun(miss, { repeat: 100_000 }).durationNs),
        );
        const overhead = otherOnce - otherMany;
        // A request for an owned VIP that stays a request: the gate closed (heartbeat older than
        // the window), so the program does everything up to the rewrite, then passes. Repeatable.
        maps.setLiveness(1n, 1n);
        const gatedMany = median(
          Array.from({ length: 5 }, () => maps.testRun(req, { repeat: 100_000 }).durationNs),
        );
        maps.setLiveness(monotonicNs(), 600_000_000_000n);
        maps.deleteVip(1, vip);
        return { answered: answeredOnce - overhead, answeredOnce, overhead, otherMany, missMany, gatedMany };
      } finally {
        maps.close();
      }
    })();

    // 10,000 VIPs programmed from TypeScript: map updates through bun:ffi, then removed again.
    const program = (() => {
      const m = XdpMaps.open(pins.pinDir);
      try {
        const mac = clientMac;
        const ips = Array.from({ length: 10_000 }, (_, i) => ({
          family: 4 as const,
          value: 0x0a590000n + BigInt(i),
        }));
        const add: number[] = [];
        const batch: number[] = [];
        const del: number[] = [];
        for (let r = 0; r < 5; r++) {
          let t = performance.now();
          for (const ip of ips) m.setVip(1000, ip, mac);
          add.push(performance.now() - t);
          t = performance.now();
          for (const ip of ips) m.deleteVip(1000, ip);
          del.push(performance.now() - t);
          t = performance.now();
          m.setVips(ips.map((ip) => ({ ifindex: 1000, ip, mac })));
          batch.push(performance.now() - t);
          for (const ip of ips) m.deleteVip(1000, ip);
        }
        return { add: median(add), batch: median(batch), del: median(del) };
      } finally {
        m.close();
      }
    })();

    const x = median(res.xdp);
    const k = median(res.kernel);
    const c = median(res.ceiling);
    const rf = median(res.reflect);
    // Each round's xdp and kernel ran back to back: their ratio is paired in time.
    const perRound = (a: number[], b: number[]) => a.map((v, i) => v / b[i]!);
    const rk = perRound(res.xdp, res.kernel);
    const rr = perRound(res.xdp, res.reflect);
    const list = (xs: number[]) => xs.map((v) => v.toFixed(2)).join(" ");
    console.log(`\nper round: xdp/kernel ${list(rk)}; xdp/reflect ${list(rr)}`);
    const kSpread = Math.max(...res.kernel) / Math.min(...res.kernel);
    if (kSpread > 1.5) {
      console.log(
        `WARNING: the kernel baseline varied ${kSpread.toFixed(1)}x between rounds (${fmt(Math.min(...res.kernel))} – ` +
          `${fmt(Math.max(...res.kernel))}): the ratio of medians depends on which mode most rounds hit; ` +
          `per-round xdp/kernel ${Math.min(...rk).toFixed(2)}–${Math.max(...rk).toFixed(2)}`,
      );
    }
    console.log("\nmedians:");
    console.log(`  xdp      ${fmt(x)}`);
    console.log(`  kernel   ${fmt(k)}`);
    console.log(`  reflect  ${fmt(rf)} (every request sent back unchanged, XDP_TX: the cheapest reply)`);
    console.log(`  ceiling  ${fmt(c)} (no replies, XDP_DROP on the node)`);
    console.log(
      `  xdp / ceiling: ${((100 * x) / c).toFixed(1)}% (goal >= 85%); reflect / ceiling: ${((100 * rf) / c).toFixed(1)}%; xdp / reflect: ${((100 * x) / rf).toFixed(1)}%`,
    );
    const cx = median(cpu.xdp);
    const ck = median(cpu.kernel);
    const cc = median(cpu.ceiling);
    const cr = median(cpu.reflect);
    console.log(
      `  CPU per packet (sender + softirq in its context): xdp ${cx.toFixed(0)} ns, kernel ${ck.toFixed(0)} ns, ` +
        `reflect ${cr.toFixed(0)} ns, ceiling ${cc.toFixed(0)} ns; kernel/xdp CPU ${(ck / cx).toFixed(2)}; ` +
        `xdp / ceiling by CPU ${((100 * cc) / cx).toFixed(1)}%; reflect / ceiling by CPU ${((100 * cc) / cr).toFixed(1)}%; ` +
        `xdp / reflect by CPU ${((100 * cr) / cx).toFixed(1)}%`,
    );
    // A reply is a second frame over the link, received by the peer: even a program that does
    // nothing but XDP_TX pays for that. That bound, not the no-reply ceiling, is what a responder
    // can approach; the program's own share is the gap between xdp and reflect.
    console.log(
      `  a reply's own cost on this link (reflect - ceiling): ${(cr - cc).toFixed(0)} ns; the responder's work on top ` +
        `(xdp - reflect): ${(cx - cr).toFixed(0)} ns per reply`,
    );
    console.log(
      `  BPF_PROG_RUN, a request that stays a request (owned VIP, gate closed: all but the rewrite, ` +
        `100k repeats): ${cost.gatedMany} ns (goal <= 30 ns); one answered request from single runs ` +
        `(${cost.answeredOnce} ns - timer ${cost.overhead} ns, a noisy estimate): ${cost.answered.toFixed(0)} ns; ` +
        `VIP not owned ${cost.missMany} ns, non-ARP ${cost.otherMany} ns`,
    );
    console.log(
      `  10,000 VIPs programmed: batch ${program.batch.toFixed(1)} ms, one by one ${program.add.toFixed(1)} ms, ` +
        `removed one by one ${program.del.toFixed(1)} ms (goal < 20 ms); a daemon's first XdpDriver.apply of ` +
        `10,000 (interface listing, attach by ip(8), diff, map, first announcements) ${applyMs} ms`,
    );
    await recording.finish({
      samples: { "replies/s.xdp": res.xdp, "CPU per packet.xdp": cpu.xdp },
      baseline: {
        "replies/s.kernel": res.kernel,
        "replies/s.reflect": res.reflect,
        "replies/s.ceiling": res.ceiling,
        "CPU per packet.kernel": cpu.kernel,
        "CPU per packet.reflect": cpu.reflect,
        "CPU per packet.ceiling": cpu.ceiling,
      },
      figures: {
        "xdp/kernel": x / k,
        "xdp/ceiling": x / c,
        "xdp/reflect": x / rf,
        "xdp/kernel, lowest round": Math.min(...rk),
        "xdp/kernel, highest round": Math.max(...rk),
        "kernel, highest round / lowest": kSpread,
        "xdp replies/s": x,
        "kernel replies/s": k,
        "BPF_PROG_RUN ns (request stays a request)": cost.gatedMany,
        "10,000 VIPs batch ms": program.batch,
      },
      goals: [
        { figure: "xdp/kernel", op: ">=", value: 2, text: "XDP at least 2× the kernel's replies/s" },
        { figure: "xdp/ceiling", op: ">=", value: 0.85, text: "at least 85% of the link's no-reply ceiling" },
        {
          figure: "BPF_PROG_RUN ns (request stays a request)",
          op: "<=",
          value: 30,
          text: "≤ 30 ns per packet",
        },
        {
          figure: "10,000 VIPs batch ms",
          op: "<=",
          value: 20,
          text: "10,000 VIPs programmed in under 20 ms",
        },
      ],
      units: { "replies/s": "replies/s", "CPU per packet": "ns" },
      params: { senders, seconds: RUN_S, rounds: ROUNDS },
    });
    console.log(`xdp/kernel: ${(x / k).toFixed(2)}`);
  } finally {
    if (stats !== "0") await sh(["sysctl", "-q", `kernel.bpf_stats_enabled=${stats}`]).catch(() => {});
    await lab.destroy();
    await pins.cleanup();
  }
}

await main();
