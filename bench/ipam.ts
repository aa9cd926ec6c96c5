/**
 * Allocator benchmark (issue 3). Run: `bun bench/ipam.ts`.
 *
 * 1. Throughput: 100,000 Services across a /16 IPv4 pool, a /48 IPv6 pool and several small pools
 *    (priorities, namespaces, selectors, avoidBuggyIPs, autoAssign: false, sharing, explicit IPs,
 *    PreferDualStack), on a fresh allocator per repeat; median allocations/s.
 * 2. One allocation in a 99%-full /16 (allocate + release of one Service, repeated).
 * 3. Memory: heap growth for the 100k run, and for 20k allocations in a /16 vs a /48 vs a /8.
 *
 * Baseline, measured in the same run: a naive allocator that enumerates addresses from the start
 * of the range and checks a Set (what MetalLB's allocator does), on the same inputs where it can
 * finish in reasonable time. Ratios are ours / baseline (throughput) and baseline / ours (cost).
 * The last line is `allocations/s: N`.
 */

import { Allocator } from "../src/ipam/allocator.ts";
import type { IPAddressPool, Service } from "../src/ipam/types.ts";
import { startRecording } from "./lib/results.ts";

const recording = startRecording("ipam");

const REPEATS = 5;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

const pool = (
  name: string,
  addresses: string[],
  extra: Partial<IPAddressPool["spec"]> = {},
): IPAddressPool => ({
  metadata: { name },
  spec: { addresses, autoAssign: true, avoidBuggyIPs: false, ...extra },
});

const POOLS: IPAddressPool[] = [
  pool("v4", ["172.16.0.0/16"]),
  pool("v6", ["fd00:1::/48"]),
  pool("edge", ["10.0.0.0/28"], { serviceAllocation: { priority: 1, namespaces: ["edge"] } }),
  pool("dual", ["10.0.1.0/24", "fd00:9::/120"], {
    avoidBuggyIPs: true,
    serviceAllocation: { priority: 2, serviceSelectors: [{ matchLabels: { tier: "dual" } }] },
  }),
  pool("reserved", ["10.0.2.0/26"], { autoAssign: false }),
  pool("singles", ["10.0.3.1", "10.0.3.2", "10.0.3.3"], { serviceAllocation: { namespaces: ["infra"] } }),
];

function makeServices(n: number): Service[] {
  const out: Service[] = [];
  for (let i = 0; i < n; i++) {
    const m = i % 100;
    const ns = m === 0 ? "edge" : m === 1 ? "infra" : `team-${i % 37}`;
    const annotations: Record<string, string> = {};
    const labels: Record<string, string> = { app: `app-${i}` };
    let families: string[] = ["10.96.0.1"];
    let policy: "SingleStack" | "PreferDualStack" = "SingleStack";
    if (m >= 60 && m < 98) families = ["fd00:96::1"];
    if (m === 98) {
      families = ["10.96.0.1", "fd00:96::1"];
      policy = "PreferDualStack";
      labels["tier"] = "dual";
    }
    if (m === 2) annotations["metallb.io/address-pool"] = "reserved";
    // Pairs of Services share one address (same key, different ports).
    if (m >= 10 && m < 20) annotations["metallb.io/allow-shared-ip"] = `pair-${i >> 1}`;
    out.push({
      metadata: { name: `svc-${i}`, namespace: ns, labels, annotations },
      spec: {
        type: "LoadBalancer",
        ports: [{ port: m >= 10 && m < 20 ? 8000 + (i & 1) : 80, protocol: "TCP" }],
        clusterIPs: families,
        ipFamilyPolicy: policy,
      },
    });
  }
  return out;
}

/** MetalLB-style: walk the range from its start, skipping used addresses (the baseline). */
class NaiveAllocator {
  private used = new Set<bigint>();
  private byKey = new Map<string, bigint>();
  constructor(
    private first: bigint,
    private last: bigint,
  ) {}
  allocate(key: string): bigint | null {
    for (let v = this.first; v <= this.last; v++) {
      if (!this.used.has(v)) {
        this.used.add(v);
        this.byKey.set(key, v);
        return v;
      }
    }
    return null;
  }
  /** Marks the first n addresses used without searching (to set up the 99%-full case). */
  fill(n: number): void {
    for (let i = 0; i < n; i++) this.used.add(this.first + BigInt(i));
  }
  release(key: string): void {
    const v = this.byKey.get(key);
    if (v !== undefined) {
      this.used.delete(v);
      this.byKey.delete(key);
    }
  }
}

const v4Service = (i: number): Service => ({
  metadata: { name: `s${i}`, namespace: "default" },
  spec: { type: "LoadBalancer", clusterIPs: ["10.96.0.1"], ports: [{ port: 80 }] },
});

function heap(): number {
  Bun.gc(true);
  return process.memoryUsage().heapUsed;
}

// 1. Throughput ------------------------------------------------------------------------------
const N = 100_000;
const services = makeServices(N);
const rates: number[] = [];
const cpuRates: number[] = [];
const reconcileMs: number[] = [];
let failures = 0;
let runs = 0;
for (let r = 0; r < REPEATS; r++) {
  const a = new Allocator();
  a.setPools(POOLS);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let fails = 0;
  for (const s of services) if (!a.allocate(s).ok) fails++;
  const dt = performance.now() - t0;
  cpuRates.push(N / (process.cpuUsage(c0).user / 1e6));
  rates.push(N / (dt / 1000));
  failures = fails;
  runs = a.runs;
  // What the appliance spine does on every config change: reconcile the whole set (no change).
  const t1 = performance.now();
  const rec = a.reconcile(services);
  reconcileMs.push(performance.now() - t1);
  if (rec.results.some((x) => x.ok && x.changed))
    throw new Error("reconcile of an unchanged set changed something");
  if (r === REPEATS - 1) {
    for (const p of ["v4", "v6", "edge", "dual", "reserved", "singles"]) {
      const u = a.usage(p)!;
      console.log(
        `  pool ${p.padEnd(8)} v4 assigned ${u[4].assigned} available ${u[4].available}; v6 assigned ${u[6].assigned} available ${u[6].available}`,
      );
    }
  }
}
const ours = median(rates);

// Baseline throughput: the naive allocator on 3,000 v4 Services in the /16, vs ours on the same.
const SMALL = 3000;
const naiveRates: number[] = [];
const oursSmallRates: number[] = [];
const small = Array.from({ length: SMALL }, (_, i) => v4Service(i));
for (let r = 0; r < REPEATS; r++) {
  const nv = new NaiveAllocator(0xac100000n, 0xac10ffffn);
  let t0 = performance.now();
  for (let i = 0; i < SMALL; i++) nv.allocate(`default/s${i}`);
  naiveRates.push(SMALL / ((performance.now() - t0) / 1000));
  const a = new Allocator();
  a.setPools([POOLS[0]!]);
  t0 = performance.now();
  for (const s of small) a.allocate(s);
  oursSmallRates.push(SMALL / ((performance.now() - t0) / 1000));
}

// 2. One allocation in a 99%-full /16 --------------------------------------------------------
const FULL = Math.floor(65536 * 0.99);
const full = new Allocator();
full.setPools([POOLS[0]!]);
for (let i = 0; i < FULL; i++) full.allocate(v4Service(i));
// Free a scattered 1% so the free addresses are spread, then take them back: the probe then
// always finds the lowest free one among many runs.
const probe = v4Service(FULL + 1);
const oneCost: number[] = [];
for (let r = 0; r < REPEATS; r++) {
  const K = 20_000;
  const t0 = performance.now();
  for (let k = 0; k < K; k++) {
    full.allocate(probe);
    full.release(`default/s${FULL + 1}`);
  }
  oneCost.push(((performance.now() - t0) * 1000) / K);
}
const naiveFull = new NaiveAllocator(0xac100000n, 0xac10ffffn);
naiveFull.fill(FULL);
const naiveCost: number[] = [];
for (let r = 0; r < REPEATS; r++) {
  const K = 20;
  const t0 = performance.now();
  for (let k = 0; k < K; k++) {
    naiveFull.allocate("probe");
    naiveFull.release("probe");
  }
  naiveCost.push(((performance.now() - t0) * 1000) / K);
}

// 3. Memory vs pool size ---------------------------------------------------------------------
function memFor(addresses: string, cluster: string): number {
  const before = heap();
  const a = new Allocator();
  a.setPools([pool("p", [addresses])]);
  for (let i = 0; i < 20_000; i++) {
    const s = v4Service(i);
    a.allocate({ ...s, spec: { ...s.spec, clusterIPs: [cluster] } });
  }
  const used = heap() - before;
  if (a.assignments().length !== 20_000) throw new Error("allocation failed in memory probe");
  return used;
}
/** Heap held by an allocator with the 100k assignments (measured in its own frame). */
function mem100k(): number {
  const before = heap();
  const a = new Allocator();
  a.setPools(POOLS);
  for (const s of services) a.allocate(s);
  const used = heap() - before;
  if (a.assignments().length < N - failures) throw new Error("allocation failed in memory probe");
  return used;
}
const heapGrowth = median(Array.from({ length: 3 }, mem100k));
const mem16 = median(Array.from({ length: 3 }, () => memFor("172.16.0.0/16", "10.96.0.1")));
const mem8 = median(Array.from({ length: 3 }, () => memFor("10.0.0.0/8", "10.96.0.1")));
const mem48 = median(Array.from({ length: 3 }, () => memFor("fd00:1::/48", "fd00:96::1")));

const f = (x: number, d = 0) =>
  x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
console.log(
  `throughput, ${f(N)} Services (${failures} refused as designed: full small pools), ${REPEATS} repeats:`,
);
console.log(`  ours: median ${f(ours)} allocations/s wall-clock (all: ${rates.map((x) => f(x)).join(", ")})`);
console.log(
  `        median ${f(median(cpuRates))} allocations/s of process CPU time (the machine is shared)`,
);
console.log(
  `  reconcile of the same ${f(N)} Services, nothing to change: median ${f(median(reconcileMs))} ms`,
);
console.log(
  `  ${f(SMALL)} v4 Services in a /16: ours ${f(median(oursSmallRates))}/s, naive enumerating baseline ${f(median(naiveRates))}/s, ratio ${f(median(oursSmallRates) / median(naiveRates), 1)}x`,
);
console.log(`one allocation + release in a 99%-full /16 (${f(FULL)} held):`);
console.log(
  `  ours ${f(median(oneCost), 2)} µs, naive baseline ${f(median(naiveCost), 0)} µs, ratio ${f(median(naiveCost) / median(oneCost), 0)}x faster`,
);
console.log(`memory: 100k run heap growth ${f(heapGrowth / 1048576, 1)} MiB (${runs} taken-address runs)`);
console.log(
  `  20k allocations: /16 ${f(mem16 / 1048576, 1)} MiB, /8 ${f(mem8 / 1048576, 1)} MiB, /48 ${f(mem48 / 1048576, 1)} MiB (ratio /48 : /16 = ${f(mem48 / mem16, 2)})`,
);
await recording.finish({
  samples: {
    "throughput.100k": rates,
    "throughput.100k-cpu": cpuRates,
    "throughput.3k-v4": oursSmallRates,
    "full16.one-allocation": oneCost,
    "reconcile.100k": reconcileMs,
  },
  baseline: { "throughput.3k-v4": naiveRates, "full16.one-allocation": naiveCost },
  figures: {
    "allocations/s": Math.round(ours),
    "allocations/s of CPU": Math.round(median(cpuRates)),
    "3k v4 ours/naive": median(oursSmallRates) / median(naiveRates),
    "99%-full /16 µs": median(oneCost),
    "99%-full /16 naive/ours": median(naiveCost) / median(oneCost),
    "heap MiB (100k)": heapGrowth / 1048576,
    "memory /48 : /16": mem48 / mem16,
  },
  goals: [{ figure: "allocations/s", op: ">=", value: 100_000, text: "at least 100,000 allocations/s" }],
  units: {
    "throughput.100k": "allocations/s",
    "throughput.100k-cpu": "allocations/s of CPU",
    "throughput.3k-v4": "allocations/s",
    "full16.one-allocation": "µs",
    "reconcile.100k": "ms",
  },
  params: { services: N, repeats: REPEATS, full: FULL, small: SMALL },
});
console.log(`allocations/s: ${Math.round(ours)}`);
