/**
 * Scale benchmark (issue 15). Run: `bun bench/scale.ts [sizes]` (default 1000,10000,100000).
 *
 * Appliance mode, layer 2, no interfaces (no root needed): for each size a real `vipd run`
 * (bun src/main.ts run) reads one pool, one L2Advertisement, a NodeSettings with three members
 * (no cluster key: every member counts as alive) and N LoadBalancer Services. Measured from the
 * outside: start → API answering (/livez), start → /readyz 200, one-Service reload (one Service
 * appended to the file → /api/v1/status shows the next generation, and the Service is then listed
 * with an address), a full reload (the pool file changes: every Service is re-checked and
 * re-planned), and vipd's RSS (VmRSS) after it settled (1 s idle; vipd cannot be made to GC from
 * outside). The files are replaced by rename, as editors and configuration tools save them; the
 * reload figures are the whole time from the rename to the API showing the next generation
 * (polled every 10 ms): the file watcher's event, the read, parse and validation, allocation,
 * the state file, the plan (src/appliance/watch.ts applies a file replaced by rename at once; one
 * written in place waits until it has been quiet for 150 ms, which this benchmark does not measure).
 *
 * Measured in-process on the same manifests (the appliance offers no way to observe one
 * membership change without a second node's heartbeats): config load+validate, allocation, the
 * full plan, and the plan after one member of three died (the planner call the daemon makes on a
 * membership change), each after the previous one — as the daemon calls them; then the median
 * of five more membership changes (the member comes back, leaves again...: a replan past the
 * process's first one; the goal stays on the first).
 *
 * Baseline in the same run: the bare YAML parse of the same Services file (the `yaml` package
 * vipd's loader uses), the floor any reader of that file pays.
 *
 * Every wait is bounded: a size whose start exceeds its deadline (at most 120 s) is reported as
 * "> D s", and the sizes after one that missed it are skipped, as is a size that would start after
 * the run's time budget (VIPD_SCALE_BUDGET_S, default 240 s). Above 10k the reload deadlines are
 * shorter (60 s), only the one-Service reload is measured, and the in-process figures and the bare
 * parse baseline are left out (each would take minutes of the yaml package alone): the daemon's
 * start, reload and RSS are what 100k asks of. On a shared machine wall times stretch with the
 * load: vipd's own CPU time (/proc/PID/stat) is printed beside them. Last line: `ready s at 10k: N`.
 */

import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { configFromText } from "../src/config/index.ts";
import { allocate, emptyAllocation } from "../src/plan/allocate.ts";
import { computePlan, type NodeInfo } from "../src/plan/plan.ts";
import { startRecording } from "./lib/results.ts";

const recording = startRecording("scale");
const ROOT = join(import.meta.dir, "..");
const SIZES = (process.argv[2] ?? "1000,10000,100000").split(",").map(Number);
/** Start deadline per size (ms); the reload deadlines are the same. */
const deadlineFor = (n: number) => Math.min(120_000, 20_000 + n * 4);
/** Reload deadlines: as the start's, at most 60 s. */
const reloadDeadlineFor = (n: number) => Math.min(60_000, deadlineFor(n));
/** Sizes above this are measured from the outside only (start, one-Service reload, RSS). */
const IN_PROCESS_MAX = 10_000;
const BUDGET_MS = Number(process.env.VIPD_SCALE_BUDGET_S ?? 240) * 1000;
const benchStart = performance.now();

const POOLS = (extra: boolean) => `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan, namespace: metallb-system }
spec:
  addresses: ["10.64.0.0/14"${extra ? ', "10.100.0.0/24"' : ""}]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: lan-l2, namespace: metallb-system }
spec:
  ipAddressPools: [lan]
---
apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: this-node }
spec:
  nodeName: n1
  members:
    - { name: n2, address: 127.0.0.2 }
    - { name: n3, address: 127.0.0.3 }
`;

const service = (i: number) => `---
apiVersion: v1
kind: Service
metadata: { name: svc-${i}, namespace: ns-${i % 20}, labels: { app: a${i % 7} } }
spec:
  type: LoadBalancer
  ports: [{ port: 80 }]
`;

const services = (n: number) => Array.from({ length: n }, (_, i) => service(i)).join("");

function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

function rssMb(pid: number): number {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+) kB/m.exec(text);
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** CPU seconds (user + system) a process has used so far. */
function cpuS(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function poll<T>(deadline: number, f: () => Promise<T | undefined>): Promise<T | undefined> {
  while (Date.now() < deadline) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch {
      // not listening yet
    }
    await Bun.sleep(10);
  }
  return undefined;
}

interface SizeResult {
  n: number;
  yamlMs: number;
  apiS?: number | undefined;
  readyS?: number | undefined;
  readyCpu?: number | undefined;
  reloadCpu?: number | undefined;
  reloadMs?: number | undefined;
  fullReloadMs?: number | undefined;
  rss?: number | undefined;
  loadMs?: number | undefined;
  allocMs?: number | undefined;
  planMs?: number | undefined;
  memberMs?: number | undefined;
  memberWarmMs?: number | undefined;
  deadlineS: number;
  skipped?: string | undefined;
}

async function measureDaemon(n: number, r: SizeResult): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `vipd-scale-${process.pid}-`));
  const conf = join(dir, "conf");
  mkdirSync(conf);
  writeAtomic(join(conf, "pools.yaml"), POOLS(false));
  const svcText = services(n);
  writeAtomic(join(conf, "services.yaml"), svcText);
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const deadline = deadlineFor(n);
  const t0 = performance.now();
  const proc = Bun.spawn(
    [
      process.execPath,
      join(ROOT, "src/main.ts"),
      "run",
      "--config",
      conf,
      "--api-listen",
      `127.0.0.1:${port}`,
      "--state-dir",
      join(dir, "state"),
    ],
    { cwd: ROOT, stdin: "ignore", stdout: "ignore", stderr: "ignore" },
  );
  try {
    const end = Date.now() + deadline;
    const api = await poll(end, async () =>
      (await fetch(`${base}/livez`)).ok ? performance.now() : undefined,
    );
    if (api === undefined) return;
    r.apiS = (api - t0) / 1000;
    const ready = await poll(end, async () =>
      (await fetch(`${base}/readyz`)).ok ? performance.now() : undefined,
    );
    if (ready === undefined) return;
    r.readyS = (ready - t0) / 1000;
    r.readyCpu = cpuS(proc.pid);
    await Bun.sleep(1000);
    r.rss = rssMb(proc.pid);
    const generation = async () =>
      ((await (await fetch(`${base}/api/v1/status`)).json()) as { configGeneration: number })
        .configGeneration;
    const reload = async (change: () => void): Promise<number | undefined> => {
      const g = await generation();
      const t = performance.now();
      change();
      const done = await poll(Date.now() + reloadDeadlineFor(n), async () =>
        (await generation()) > g ? performance.now() : undefined,
      );
      return done === undefined ? undefined : done - t;
    };
    // One Service more: the file changes, the API shows the next generation, then the Service.
    const c0 = cpuS(proc.pid);
    r.reloadMs = await reload(() => writeAtomic(join(conf, "services.yaml"), svcText + service(n)));
    r.reloadCpu = cpuS(proc.pid) - c0;
    if (r.reloadMs !== undefined) {
      // The list pages (at most 10,000 a page): follow metadata.continue, a bounded number of pages.
      type Page = {
        items: { name: string; namespace: string; ips: string[] }[];
        metadata?: { continue: string };
      };
      let added: Page["items"][number] | undefined;
      let cont: string | undefined;
      for (let pages = 0; pages < 100 && added === undefined; pages++) {
        const q = `limit=10000${cont === undefined ? "" : `&continue=${encodeURIComponent(cont)}`}`;
        const list = (await (await fetch(`${base}/api/v1/services?${q}`)).json()) as Page;
        added = list.items.find((s) => s.name === `svc-${n}` && s.namespace === `ns-${n % 20}`);
        cont = list.metadata?.continue;
        if (cont === undefined) break;
      }
      if (added === undefined || added.ips.length === 0)
        throw new Error(`svc-${n} not listed with an address`);
    }
    // The pools change: every assignment is re-checked and every Service re-planned.
    if (n <= IN_PROCESS_MAX)
      r.fullReloadMs = await reload(() => writeAtomic(join(conf, "pools.yaml"), POOLS(true)));
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

function measureInProcess(n: number, r: SizeResult): void {
  const text = POOLS(false) + services(n);
  let t = performance.now();
  const loaded = configFromText(text, "scale.yaml");
  r.loadMs = performance.now() - t;
  if (!loaded.ok) throw new Error(`config: ${loaded.problems[0]?.message}`);
  const config = loaded.config;
  t = performance.now();
  const alloc = allocate(config, emptyAllocation());
  r.allocMs = performance.now() - t;
  const nodes: NodeInfo[] = ["n1", "n2", "n3"].map((name) => ({ name, labels: {} }));
  const self = nodes[0] as NodeInfo;
  t = performance.now();
  computePlan(config, alloc.assignments, self, nodes, { known: nodes });
  r.planMs = performance.now() - t;
  t = performance.now();
  computePlan(config, alloc.assignments, self, [nodes[0] as NodeInfo, nodes[2] as NodeInfo], {
    known: nodes,
  });
  r.memberMs = performance.now() - t;
  // Then members leave and come back five times: the replan of a daemon past its first one.
  const again: number[] = [];
  for (let k = 0; k < 5; k++) {
    const alive = k % 2 === 0 ? nodes : [nodes[0] as NodeInfo, nodes[2] as NodeInfo];
    t = performance.now();
    computePlan(config, alloc.assignments, self, alive, { known: nodes });
    again.push(performance.now() - t);
  }
  r.memberWarmMs = again.sort((a, b) => a - b)[2];
}

const results: SizeResult[] = [];
let skip: string | undefined;
for (const n of SIZES) {
  const r: SizeResult = { n, yamlMs: Number.NaN, deadlineS: deadlineFor(n) / 1000 };
  results.push(r);
  if (skip === undefined && performance.now() - benchStart + deadlineFor(n) > BUDGET_MS)
    skip = `the run's time budget (${BUDGET_MS / 1000} s) would be exceeded`;
  if (skip !== undefined) {
    r.skipped = skip;
    continue;
  }
  if (n <= IN_PROCESS_MAX) {
    const text = services(n);
    const t = performance.now();
    parseAllDocuments(text);
    r.yamlMs = performance.now() - t;
  }
  await measureDaemon(n, r);
  // A size that was not ready in time ends the run: the next one is ten times larger.
  if (r.readyS === undefined) skip = `${n} Services were not ready within ${r.deadlineS} s`;
  if (r.readyS === undefined || n > IN_PROCESS_MAX) continue;
  measureInProcess(n, r);
  Bun.gc(true);
}

const f = (x: number | undefined, d = 0) => (x === undefined || Number.isNaN(x) ? "-" : x.toFixed(d));
for (const r of results) {
  if (r.skipped !== undefined) {
    console.log(`${r.n} Services: skipped (${r.skipped})`);
    continue;
  }
  const dl = `> ${r.deadlineS} s`;
  console.log(
    [
      `${r.n} Services:`,
      `start → API answering ${r.apiS === undefined ? dl : `${f(r.apiS, 2)} s`},`,
      `start → /readyz ${r.readyS === undefined ? dl : `${f(r.readyS, 2)} s (vipd CPU ${f(r.readyCpu, 2)} s)`},`,
      `one-Service reload ${f(r.reloadMs)} ms (file change → API shows it, everything included; vipd CPU ${f((r.reloadCpu ?? Number.NaN) * 1000)} ms),`,
      `full reload ${f(r.fullReloadMs)} ms,`,
      `RSS settled ${f(r.rss)} MB;`,
      `in-process: load+validate ${f(r.loadMs)} ms, allocate ${f(r.allocMs)} ms, full plan ${f(r.planMs, 1)} ms,`,
      `membership replan ${f(r.memberMs, 1)} ms (the next five: median ${f(r.memberWarmMs, 1)} ms);`,
      `baseline bare YAML parse ${f(r.yamlMs)} ms`,
    ].join(" "),
  );
}
const at = (n: number) => results.find((r) => r.n === n);
const r10 = at(10_000);
const r100 = at(100_000);
const exponent =
  r10?.readyS !== undefined && r100?.readyS !== undefined ? Math.log10(r100.readyS / r10.readyS) : undefined;
const exponentText =
  exponent !== undefined
    ? exponent.toFixed(2)
    : r100?.skipped !== undefined
      ? `- (100k skipped: ${r100.skipped})`
      : r100 && r10?.readyS !== undefined
        ? `> ${f(Math.log10(r100.deadlineS / r10.readyS), 2)} (100k was not ready within ${r100.deadlineS} s; stopped)`
        : "-";
console.log(`growth exponent of start → /readyz, 10k → 100k: ${exponentText} (goal ≤ 1.15)`);
console.log(
  "goals at 10k: ready ≤ 2 s, one-Service reload ≤ 100 ms, membership replan ≤ 20 ms, RSS ≤ 150 MB; 100k ready ≤ 20 s",
);

const series = (k: keyof SizeResult): [number, number][] =>
  results.flatMap((r) => (typeof r[k] === "number" && !Number.isNaN(r[k]) ? [[r.n, r[k] as number]] : []));
const figures: Record<string, number> = {};
for (const r of results) {
  const s = r.n >= 1000 ? `${r.n / 1000}k` : String(r.n);
  for (const [k, v] of [
    [`ready s at ${s}`, r.readyS],
    [`ready cpu s at ${s}`, r.readyCpu],
    [`reload cpu ms at ${s}`, r.reloadCpu === undefined ? undefined : r.reloadCpu * 1000],
    [`api s at ${s}`, r.apiS],
    [`reload ms at ${s}`, r.reloadMs],
    [`full reload ms at ${s}`, r.fullReloadMs],
    [`rss MB at ${s}`, r.rss],
    [`plan ms at ${s}`, r.planMs],
    [`membership replan ms at ${s}`, r.memberMs],
    [`membership replan median of the next 5 ms at ${s}`, r.memberWarmMs],
  ] as const)
    if (v !== undefined) figures[k] = v;
}
if (exponent !== undefined) figures["growth exponent"] = exponent;
const goals = (
  [
    ["ready s at 10k", 2, "start → /readyz ≤ 2 s at 10k Services"],
    ["reload ms at 10k", 100, "one-Service reload ≤ 100 ms at 10k (file change → API shows it)"],
    ["membership replan ms at 10k", 20, "membership replan ≤ 20 ms at 10k"],
    ["rss MB at 10k", 150, "RSS ≤ 150 MB at 10k"],
    ["growth exponent", 1.15, "growth exponent 10k → 100k ≤ 1.15"],
    ["ready s at 100k", 20, "start → /readyz ≤ 20 s at 100k"],
  ] as const
)
  .filter(([k]) => k in figures)
  .map(([figure, value, text]) => ({ figure, op: "<=" as const, value, text }));
await recording.finish({
  samples: {
    "ready.seconds": series("readyS"),
    "api.seconds": series("apiS"),
    "reload.ms": series("reloadMs"),
    "full reload.ms": series("fullReloadMs"),
    "rss.MB": series("rss"),
    "plan.ms": series("planMs"),
    "membership replan.ms": series("memberMs"),
  },
  baseline: { "bare YAML parse.ms": series("yamlMs") },
  figures,
  goals,
  units: { ready: "s", api: "s", reload: "ms", "full reload": "ms", rss: "MB", plan: "ms" },
  params: { sizes: SIZES, mode: "appliance, layer 2, no interfaces, 3 members without a cluster key" },
});
console.log(`ready s at 10k: ${r10?.readyS === undefined ? "-1" : r10.readyS.toFixed(2)}`);
