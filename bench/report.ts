/**
 * The benchmark report a person reads: `bun bench/report.ts [--record [--label NAME]]`.
 *
 * Reads bench/results/<name>.json (written by each benchmark through bench/lib/results.ts) and
 * writes docs/benchmarks.md with SVG plots under docs/benchmarks/: a headline table (figure,
 * value, goal, baseline, ratio, machine load), the machine facts and git revision of each run,
 * one section per benchmark with a plot per group of series (the part of a series' name before
 * its first dot: distributions as box plots with every repeat, [x, y] series as curves), each
 * stating the goal, the baseline and the spread over repeats, and flagging a run taken on a
 * loaded machine (1-minute load average above the core count). Results files this report does
 * not know get the same generic treatment.
 *
 * `--readme` also puts the headline table into README.md's Status section (between its markers).
 *
 * History: `--record` appends the headline figures of these results as one row to
 * docs/benchmarks/history.json (committed), which the report tabulates and plots, so a reader sees
 * how a figure moved from one version to the next.
 *
 * Plots are Vega-Lite specs compiled by vega-lite and rendered to SVG by vega's headless View
 * (renderer "none"): pure JavaScript, no DOM, no canvas, no browser — it runs under Bun as is.
 *
 * A missing results file is reported as "not run"; a malformed one is rejected with
 * `file: field: message` (the rest of the report is still written, and the exit code is 1).
 *
 * Options: --results DIR (default bench/results or $VIPD_BENCH_RESULTS), --out FILE (default
 * docs/benchmarks.md; plots go to <dir of FILE>/benchmarks/), --history FILE (default
 * docs/benchmarks/history.json, whatever --out is). CI writes to build/ (scripts/test.sh), so a
 * test run does not touch the committed page.
 */

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import * as vega from "vega";
import * as vl from "vega-lite";
import { z } from "zod";
import type { BenchResults, Goal } from "./lib/results.ts";

// ------------------------------------------------------------------ reading and validating

const num = z.number().finite();
/** JSON turns NaN and Infinity into null: kept as "no value". */
const numOrNull = z.union([num, z.null()]);
const point = z.tuple([num, numOrNull]);
const series = z.union([z.array(numOrNull), z.array(point)]);
const goal = z.object({
  figure: z.string().min(1),
  op: z.enum(["<=", ">="]),
  value: num,
  text: z.string(),
});
const resultsSchema = z.object({
  name: z.string().min(1),
  startedAt: z.string().min(1),
  durationS: num,
  machine: z.object({
    cores: z.number().int().positive(),
    cpuModel: z.string(),
    kernel: z.string(),
    bun: z.string(),
    gitRevision: z.string(),
    loadBefore: z.tuple([num, num, num]),
    loadDuring: z.array(num),
    loaded: z.boolean(),
  }),
  samples: z.record(z.string().min(1), series),
  baseline: z.record(z.string().min(1), series),
  figures: z.record(z.string().min(1), numOrNull),
  goals: z.array(goal).optional(),
  units: z.record(z.string(), z.string()).optional(),
  params: z.record(z.string(), z.unknown()).optional(),
});

/** Validated results; figures may be null (a NaN when written). */
export type Results = Omit<BenchResults, "figures" | "samples" | "baseline"> & {
  figures: Record<string, number | null>;
  samples: Record<string, (number | null)[] | [number, number | null][]>;
  baseline: Record<string, (number | null)[] | [number, number | null][]>;
};

export class ResultsError extends Error {}

/** Parses one results file's text; throws ResultsError with `file: field: message`. */
export function parseResults(text: string, file: string): Results {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ResultsError(`${file}: not JSON: ${(e as Error).message}`);
  }
  const r = resultsSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const where = issue.path.length ? issue.path.join(".") : "(top level)";
    const more = r.error.issues.length > 1 ? ` (and ${r.error.issues.length - 1} more)` : "";
    throw new ResultsError(`${file}: ${where}: ${issue.message}${more}`);
  }
  const want = basename(file, ".json");
  if (r.data.name !== want)
    throw new ResultsError(`${file}: name: "${r.data.name}" does not match the file name`);
  for (const g of r.data.goals ?? []) {
    if (!(g.figure in r.data.figures)) {
      throw new ResultsError(`${file}: goals: figure "${g.figure}" is not among the figures`);
    }
  }
  return r.data as Results;
}

export type Loaded =
  | { name: string; file: string; status: "ok"; results: Results }
  | { name: string; file: string; status: "missing" }
  | { name: string; file: string; status: "rejected"; error: string };

/** The benchmarks the project has, in the report's order; any other results file follows. */
export const KNOWN = ["failover", "bfd", "bgp", "arp", "ipam", "k8s"] as const;

export function loadResults(dir: string): Loaded[] {
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".json")) : [];
  const others = files
    .map((f) => basename(f, ".json"))
    .filter((n) => !(KNOWN as readonly string[]).includes(n));
  return [...KNOWN, ...others.sort()].map((name): Loaded => {
    const file = join(dir, `${name}.json`);
    const shown = relative(process.cwd(), file) || file;
    if (!existsSync(file)) return { name, file: shown, status: "missing" };
    try {
      return { name, file: shown, status: "ok", results: parseResults(readFileSync(file, "utf8"), shown) };
    } catch (e) {
      const error = e instanceof ResultsError ? e.message : `${shown}: ${(e as Error).message}`;
      return { name, file: shown, status: "rejected", error };
    }
  });
}

// ------------------------------------------------------------------ numbers

const finite = (xs: (number | null)[]): number[] => xs.filter((x): x is number => typeof x === "number");

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function fmt(x: number | null | undefined, unit = ""): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "n/a";
  const a = Math.abs(x);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  const s = x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  return unit ? `${s} ${unit}` : s;
}

/** The highest 1-minute load average seen before or during the run. */
export function peakLoad(r: Results): number {
  return Math.max(r.machine.loadBefore[0], ...r.machine.loadDuring);
}

/** Loaded: the 1-minute load average went above the core count (recomputed, not trusted). */
export function isLoaded(r: Results): boolean {
  return peakLoad(r) > r.machine.cores;
}

export function loadText(r: Results): string {
  const p = fmt(peakLoad(r));
  return isLoaded(r)
    ? `LOADED: load average up to ${p} on ${r.machine.cores} cores`
    : `quiet: load average at most ${p} on ${r.machine.cores} cores`;
}

function goalMet(g: Goal, v: number | null | undefined): boolean | undefined {
  if (v === null || v === undefined || !Number.isFinite(v)) return undefined;
  return g.op === "<=" ? v <= g.value : v >= g.value;
}

function goalText(g: Goal, v: number | null | undefined): string {
  const m = goalMet(g, v);
  return `${g.text}${m === undefined ? "" : m ? " (met)" : " (not met)"}`;
}

// ------------------------------------------------------------------ what each benchmark is

interface Rule {
  /** Which axis the goal line is on: the value axis of a distribution, or x of a curve. */
  value: number;
  label: string;
}

interface Meta {
  title: string;
  /** One sentence: what is measured. */
  what: string;
  /** The baseline, in words. */
  baseline: string;
  /** Short name of the baseline's rows in a plot. */
  baselineShort: string;
  /** Goal lines drawn on the plot of a group. */
  rules?: Record<string, Rule[]>;
}

export const META: Record<string, Meta> = {
  failover: {
    title: "Layer-2 failover",
    what: "the gap in a client's answers (UDP probe every 10 ms) when the VIP's owner fails (takeover) and when it comes back and takes the VIP back (failback), per kind of failure",
    baseline:
      "the longest silence in a window of the same length with no event (the noise floor of the machine and the probe)",
    baselineShort: "no event",
    rules: {
      takeover: [
        { value: 500, label: "median ≤ 500 ms" },
        { value: 1000, label: "every gap < 1 s" },
      ],
      failback: [{ value: 100, label: "median ≤ 100 ms" }],
    },
  },
  bfd: {
    title: "BFD detection time",
    what: "time from a peer's SIGSTOP to the detector's Down packet on the wire, at 50 ms × 3",
    baseline: "FRR bfdd 8.4 detecting the same failure in the same run",
    baselineShort: "FRR",
    rules: { detection: [{ value: 165, label: "goal: p99 ≤ 165 ms" }] },
  },
  bgp: {
    title: "BGP: routes into a router's kernel table",
    what: "time until BIRD's kernel table holds every /32 a speaker was handed, and the routes in the table over time",
    baseline:
      "gobgpd 3.10 fed over gRPC AddPathStream (its fastest path), against the same BIRD in the same run",
    baselineShort: "GoBGP",
  },
  arp: {
    title: "ARP replies per second",
    what: "ARP replies/s on a veth pair with two senders, XDP responder vs the kernel, with the link's bounds",
    baseline:
      "the kernel's own ARP replies; reflect = XDP_TX of every frame unchanged (the cheapest reply: the with-replies bound); ceiling = requests/s the link carries with no replies",
    baselineShort: "baseline",
  },
  ipam: {
    title: "Allocator throughput",
    what: "allocations/s for 100,000 Services over several pools, on a fresh allocator per repeat, and the cost of one allocation in a 99%-full /16",
    baseline:
      "a naive allocator enumerating the range from its start (MetalLB's approach), on the same inputs where it finishes",
    baselineShort: "naive",
    rules: { throughput: [{ value: 100_000, label: "goal: ≥ 100,000/s" }] },
  },
  k8s: {
    title: "Kubernetes status writes",
    what: "Services with their status.loadBalancer written over time, after N LoadBalancer Services are created at once",
    baseline: "a plain client that only PATCHes the same statuses with the same rate limit",
    baselineShort: "status-only",
    rules: { "statuses written": [{ value: 30, label: "goal: all in < 30 s" }] },
  },
};

function metaOf(name: string): Meta {
  return (
    META[name] ?? {
      title: name,
      what: `series recorded by bench/${name}.ts`,
      baseline: "as recorded by the benchmark (see its header)",
      baselineShort: "baseline",
    }
  );
}

// ------------------------------------------------------------------ headline table

export interface HeadlineRow {
  bench: string;
  /** Key in the history file. */
  key: string;
  figure: string;
  value: number | null;
  valueText: string;
  /** Unit of `value` (what the history records). */
  unit: string;
  goal: string;
  baseline: string;
  ratio: string;
  load: string;
}

function fig(r: Results, k: string): number | null {
  return r.figures[k] ?? null;
}

function goalsFor(r: Results, ...figures: string[]): string {
  const gs = (r.goals ?? []).filter((g) => figures.includes(g.figure));
  return gs.length ? gs.map((g) => goalText(g, fig(r, g.figure))).join("; ") : "—";
}

type RowSpec = Omit<HeadlineRow, "bench" | "key" | "load">;

/** All values of the distributions whose name starts with `prefix.` (e.g. every takeover gap). */
function pooled(series: Results["samples"], prefix: string): number[] {
  return Object.entries(series)
    .filter(([k, v]) => k.startsWith(`${prefix}.`) && isDistribution(v))
    .flatMap(([, v]) => finite(v as (number | null)[]));
}

const HEADLINES: Record<string, (r: Results) => RowSpec[]> = {
  failover: (r) => {
    const silence = finite(
      (r.baseline["silence"] ?? []).filter((x) => !Array.isArray(x)) as (number | null)[],
    );
    const base = median(silence);
    const baseline = `no event: longest silence median ${fmt(base, "ms")}, worst ${fmt(silence.length ? Math.max(...silence) : null, "ms")}`;
    return (["takeover", "failback"] as const).map((phase) => {
      const xs = pooled(r.samples, phase);
      const m = median(xs);
      return {
        figure: `${phase} gap, median (worst) over every kind and client`,
        value: m,
        valueText: `${fmt(m, "ms")} (${fmt(xs.length ? Math.max(...xs) : null, "ms")})`,
        unit: "ms",
        goal: goalsFor(r, ...(phase === "takeover" ? ["max failover ms"] : ["failback.median"])),
        baseline,
        ratio: `${fmt(m / base)}× the silence`,
      };
    });
  },
  ipam: (r) => [
    {
      figure: "allocations/s (100k Services)",
      value: fig(r, "allocations/s"),
      valueText: fmt(fig(r, "allocations/s"), "/s"),
      unit: "allocations/s",
      goal: goalsFor(r, "allocations/s"),
      baseline: `naive ${fmt(median(finite((r.baseline["throughput.3k-v4"] ?? []) as (number | null)[])), "/s")} (3k v4 Services)`,
      ratio: `${fmt(fig(r, "3k v4 ours/naive"))}× (same 3k inputs)`,
    },
  ],
  arp: (r) => {
    const xc = fig(r, "xdp/ceiling");
    const xr = fig(r, "xdp/reflect");
    const rc = xc !== null && xr ? xc / xr : null;
    return [
      {
        figure: "ARP replies/s, XDP",
        value: fig(r, "xdp replies/s"),
        valueText: `${fmt((fig(r, "xdp replies/s") ?? Number.NaN) / 1e6)} M/s`,
        unit: "replies/s",
        goal: goalsFor(r, "xdp/kernel"),
        baseline: `kernel ${fmt((fig(r, "kernel replies/s") ?? Number.NaN) / 1e6)} M/s`,
        ratio: `${fmt(fig(r, "xdp/kernel"))}×`,
      },
      {
        figure: "XDP replies / link ceiling",
        value: xc === null ? null : 100 * xc,
        valueText: `${fmt(xc === null ? null : 100 * xc)}%`,
        unit: "%",
        goal: goalsFor(r, "xdp/ceiling"),
        baseline: `reflect (cheapest reply) ${fmt(rc === null ? null : 100 * rc)}% of ceiling`,
        ratio: `xdp/reflect ${fmt(xr === null ? null : 100 * xr)}%`,
      },
    ];
  },
  bgp: (r) => [
    {
      figure: `${fmt(Number(r.params?.["routes"] ?? Number.NaN))} routes into BIRD's kernel table`,
      value: fig(r, "vipd seconds"),
      valueText: fmt(fig(r, "vipd seconds"), "s"),
      unit: "s",
      goal: goalsFor(r, "vipd/gobgp time"),
      baseline: `GoBGP ${fmt(fig(r, "gobgp seconds"), "s")}`,
      ratio: fmt(fig(r, "vipd/gobgp time")),
    },
  ],
  bfd: (r) => [
    {
      figure: "BFD detection p99 (50 ms × 3)",
      value: fig(r, "p99 detection ms"),
      valueText: fmt(fig(r, "p99 detection ms"), "ms"),
      unit: "ms",
      goal: goalsFor(r, "p99 detection ms", "p99 vipd/FRR"),
      baseline: `FRR ${fmt(fig(r, "FRR p99 detection ms"), "ms")}`,
      ratio: fmt(fig(r, "p99 vipd/FRR")),
    },
  ],
  k8s: (r) => [
    {
      figure: `${fmt(Number(r.params?.["services"] ?? Number.NaN))} Service statuses written`,
      value: fig(r, "seconds to every status"),
      valueText: fmt(fig(r, "seconds to every status"), "s"),
      unit: "s",
      goal: goalsFor(r, "seconds to every status"),
      baseline: `status-only ${fmt(fig(r, "baseline seconds"), "s")}`,
      ratio: fmt(fig(r, "vipd/baseline time")),
    },
  ],
};

/** Any other benchmark: one row per goal (or its first figure), the baseline's ungrouped series. */
function genericRows(r: Results, meta: Meta): RowSpec[] {
  const plain = Object.entries(r.baseline).filter(([k, v]) => !k.includes(".") && isDistribution(v));
  const base = plain.length
    ? plain
        .map(([k, v]) => `${k}: median ${fmt(median(finite(v as (number | null)[])), unitOf(r, k))}`)
        .join("; ")
    : meta.baselineShort;
  const goals = r.goals ?? [];
  const keys = goals.length ? [...new Set(goals.map((g) => g.figure))] : Object.keys(r.figures).slice(0, 1);
  return keys.map((k) => ({
    figure: k,
    value: fig(r, k),
    valueText: fmt(fig(r, k), unitOf(r, k)),
    unit: unitOf(r, k),
    goal: goalsFor(r, k),
    baseline: base,
    ratio: "—",
  }));
}

export function headlineRows(loaded: Loaded[]): HeadlineRow[] {
  const rows: HeadlineRow[] = [];
  for (const l of loaded) {
    if (l.status !== "ok") continue;
    const r = l.results;
    const specs = (HEADLINES[l.name] ?? ((x: Results) => genericRows(x, metaOf(l.name))))(r);
    const load = isLoaded(r)
      ? `**loaded** (${fmt(peakLoad(r))} / ${r.machine.cores} cores)`
      : `quiet (${fmt(peakLoad(r))} / ${r.machine.cores} cores)`;
    for (const s of specs)
      rows.push({ ...s, bench: l.name, key: `${l.name}: ${s.figure}${s.unit ? ` (${s.unit})` : ""}`, load });
  }
  return rows;
}

/** The headline table in markdown (also what `--readme` puts into README.md's Status section). */
export function headlineTable(loaded: Loaded[]): string {
  const md = [
    "| Benchmark | Figure | Value | Goal | Baseline (same run) | Ratio | Machine load |",
    "| --- | --- | ---: | --- | --- | --- | --- |",
  ];
  for (const l of loaded) {
    if (l.status === "ok") {
      for (const row of headlineRows([l])) {
        md.push(
          `| ${l.name} | ${row.figure} | ${row.valueText} | ${row.goal} | ${row.baseline} | ${row.ratio} | ${row.load} |`,
        );
      }
    } else {
      md.push(
        `| ${l.name} | ${l.status === "missing" ? "not run" : "rejected (malformed results)"} | — | — | — | — | — |`,
      );
    }
  }
  return md.join("\n");
}

export const README_BEGIN = "<!-- headline: generated by `bun bench/report.ts --readme` -->";
export const README_END = "<!-- /headline -->";

/** README text with the headline table between the markers replaced; throws when they are missing. */
export function withReadmeTable(readme: string, table: string): string {
  const a = readme.indexOf(README_BEGIN);
  const b = readme.indexOf(README_END);
  if (a < 0 || b < a)
    throw new ResultsError(`README.md: the markers ${README_BEGIN} ... ${README_END} are missing`);
  return `${readme.slice(0, a + README_BEGIN.length)}\n${table}\n${readme.slice(b)}`;
}

// ------------------------------------------------------------------ plots

function isDistribution(s: Results["samples"][string]): s is (number | null)[] {
  return s.every((x) => x === null || typeof x === "number");
}

function unitOf(r: Results, name: string): string {
  const u = r.units ?? {};
  return u[name] ?? u[groupOf(name)] ?? "";
}

const groupOf = (name: string) => (name.includes(".") ? name.slice(0, name.indexOf(".")) : name);
const labelOf = (name: string) => (name.includes(".") ? name.slice(name.indexOf(".") + 1) : name);

export interface Plot {
  bench: string;
  group: string;
  file: string;
  kind: "distribution" | "curve";
  spec: vl.TopLevelSpec;
  /** Markdown table of the spread over repeats. */
  table: string;
}

const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "") || "x";

const COLORS = { vipd: "#1f77b4", baseline: "#ff7f0e" };
const CONFIG = {
  font: "DejaVu Sans, Arial, sans-serif",
  background: "white",
  legend: { orient: "bottom" as const, direction: "horizontal" as const },
};

function titleOf(r: Results, meta: Meta, group: string): string {
  return `${meta.title}: ${group}${isLoaded(r) ? " (run on a LOADED machine)" : ""}`;
}

function subtitle(r: Results, meta: Meta, head: string): string[] {
  const lines = [head];
  for (const g of r.goals ?? []) lines.push(`goal: ${goalText(g, fig(r, g.figure))}`);
  lines.push(`baseline: ${meta.baseline}`);
  lines.push(
    `${loadText(r)} · revision ${r.machine.gitRevision} · ${r.startedAt.slice(0, 16).replace("T", " ")} UTC`,
  );
  return lines.flatMap((l) => wrap(l, 110));
}

function wrap(s: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const w of s.split(" ")) {
    if (line && line.length + 1 + w.length > width) {
      out.push(line);
      line = `  ${w}`;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) out.push(line);
  return out;
}

/** The plots of one results file: one per group of series. */
export function plotsFor(r: Results): Plot[] {
  const meta = metaOf(r.name);
  const groups = new Map<string, { role: "vipd" | "baseline"; name: string }[]>();
  const add = (role: "vipd" | "baseline", name: string) => {
    const g = groupOf(name);
    groups.set(g, [...(groups.get(g) ?? []), { role, name }]);
  };
  for (const k of Object.keys(r.samples)) add("vipd", k);
  // Ungrouped baseline series (e.g. failover's "silence") are the reference for every
  // distribution group of vipd's samples; grouped ones join their group.
  const refs: string[] = [];
  for (const k of Object.keys(r.baseline)) {
    if (!k.includes(".") && !(k in r.samples) && Object.keys(r.samples).some((s) => s.includes(".")))
      refs.push(k);
    else add("baseline", k);
  }
  const plots: Plot[] = [];
  for (const [group, members] of groups) {
    const data = (m: { role: "vipd" | "baseline"; name: string }) =>
      (m.role === "vipd" ? r.samples : r.baseline)[m.name]!;
    const dist = members.filter((m) => isDistribution(data(m)));
    const curves = members.filter((m) => !isDistribution(data(m)));
    if (dist.length) {
      const withRefs = [...dist, ...refs.map((name) => ({ role: "baseline" as const, name }))];
      plots.push(distributionPlot(r, meta, group, withRefs, data));
    }
    if (curves.length) plots.push(curvePlot(r, meta, group, curves, data));
  }
  return plots;
}

type Member = { role: "vipd" | "baseline"; name: string };

function rowName(meta: Meta, m: Member): string {
  return `${m.role === "vipd" ? "vipd" : meta.baselineShort}: ${labelOf(m.name)}`;
}

const MAX_TICKS = 200;

function distributionPlot(
  r: Results,
  meta: Meta,
  group: string,
  members: Member[],
  data: (m: Member) => Results["samples"][string],
): Plot {
  const unit = unitOf(r, members[0]!.name);
  const values: { row: string; role: string; value: number; repeat: number; tick: boolean }[] = [];
  const order: string[] = [];
  const tableRows: string[] = [];
  for (const m of members) {
    const xs = finite(data(m) as (number | null)[]);
    const name = rowName(meta, m);
    // The spread, stated in the plot itself: median (min–max) over the n samples.
    const row = xs.length
      ? `${name} · ${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}), n=${xs.length}`
      : `${name} · no samples`;
    order.push(row);
    xs.forEach((value, i) => {
      // Past MAX_TICKS samples a row is drawn as its box and whiskers only (the ticks would be a smear).
      const tick = xs.length <= MAX_TICKS;
      values.push({ row, role: m.role === "vipd" ? "vipd" : meta.baselineShort, value, repeat: i + 1, tick });
    });
    tableRows.push(
      `| ${name} | ${xs.length} | ${fmt(Math.min(...xs))} | ${fmt(median(xs))} | ${fmt(Math.max(...xs))} |`,
    );
  }
  const rules = (meta.rules?.[group] ?? []).map((x) => ({ ...x }));
  const color = {
    field: "role",
    type: "nominal" as const,
    title: null,
    scale: { domain: ["vipd", meta.baselineShort], range: [COLORS.vipd, COLORS.baseline] },
  };
  const x = {
    field: "value",
    type: "quantitative" as const,
    title: unit && unit !== group ? `${group} (${unit})` : group,
    scale: { zero: false, nice: true },
  };
  const y = { field: "row", type: "nominal" as const, sort: order, title: null, axis: { labelLimit: 420 } };
  const spec: vl.TopLevelSpec = {
    width: 520,
    height: { step: 28 },
    title: {
      text: titleOf(r, meta, group),
      subtitle: subtitle(
        r,
        meta,
        `${unit || "value"}: a tick per sample (rows of at most ${MAX_TICKS}); box = middle half, black line = median, whiskers = min–max; labels: median (min–max)`,
      ),
      anchor: "start",
      subtitleFontSize: 10,
    },
    layer: [
      {
        data: { values },
        mark: { type: "boxplot", extent: "min-max", size: 16, opacity: 0.35, median: { color: "black" } },
        encoding: { x, y, color },
      },
      {
        data: { values },
        transform: [{ filter: "datum.tick" }],
        mark: { type: "tick", thickness: 2, size: 18, opacity: 0.9 },
        encoding: { x, y, color },
      },
      ...(rules.length
        ? [
            {
              data: { values: rules },
              mark: { type: "rule" as const, color: "#d62728", strokeDash: [4, 3] },
              encoding: { x: { field: "value", type: "quantitative" as const } },
            },
            {
              data: { values: rules },
              mark: {
                type: "text" as const,
                color: "#d62728",
                align: "left" as const,
                dx: 3,
                dy: -4,
                fontSize: 10,
              },
              encoding: {
                x: { field: "value", type: "quantitative" as const },
                y: { value: 0 },
                text: { field: "label" },
              },
            },
          ]
        : []),
    ],
    config: CONFIG,
  };
  const table = [
    `| ${group} (${unit || "value"}) | n | min | median | max |`,
    "| --- | ---: | ---: | ---: | ---: |",
    ...tableRows,
  ].join("\n");
  return {
    bench: r.name,
    group,
    file: `${slug(r.name)}-${slug(group)}.svg`,
    kind: "distribution",
    spec,
    table,
  };
}

/** "time to the final value: vipd median 10.9 s (8.99–18.8), GoBGP ..." over the repeats of each role. */
function curveSpread(members: Member[], data: (m: Member) => Results["samples"][string], meta: Meta): string {
  const parts: string[] = [];
  for (const role of ["vipd", "baseline"] as const) {
    const ends = members
      .filter((m) => m.role === role)
      .map((m) => (data(m) as [number, number | null][]).at(-1)?.[0])
      .filter((t): t is number => typeof t === "number");
    if (ends.length === 0) continue;
    parts.push(
      `${role === "vipd" ? "vipd" : meta.baselineShort} median ${fmt(median(ends), "s")} (${fmt(Math.min(...ends))}–${fmt(Math.max(...ends))})`,
    );
  }
  return `time to the final value: ${parts.join(", ")}`;
}

function curvePlot(
  r: Results,
  meta: Meta,
  group: string,
  members: Member[],
  data: (m: Member) => Results["samples"][string],
): Plot {
  const unit = unitOf(r, members[0]!.name);
  const values: { t: number; n: number; role: string; series: string }[] = [];
  const tableRows: string[] = [];
  for (const m of members) {
    const pts = (data(m) as [number, number | null][]).filter((p): p is [number, number] => p[1] !== null);
    const series = rowName(meta, m);
    for (const [t, n] of pts)
      values.push({ t, n, role: m.role === "vipd" ? "vipd" : meta.baselineShort, series });
    const last = pts.at(-1);
    const first = pts.find((p) => p[1] > 0);
    tableRows.push(
      `| ${series} | ${pts.length} | ${fmt(first?.[0])} | ${fmt(last?.[1])} | ${fmt(last?.[0])} |`,
    );
  }
  const rules = meta.rules?.[group] ?? [];
  const color = {
    field: "role",
    type: "nominal" as const,
    title: null,
    scale: { domain: ["vipd", meta.baselineShort], range: [COLORS.vipd, COLORS.baseline] },
  };
  const spec: vl.TopLevelSpec = {
    width: 520,
    height: 260,
    title: {
      text: titleOf(r, meta, group),
      subtitle: subtitle(
        r,
        meta,
        `${unit || "value"} over time, one line per repeat; ${curveSpread(members, data, meta)}`,
      ),
      anchor: "start",
      subtitleFontSize: 10,
    },
    layer: [
      {
        data: { values },
        mark: { type: "line", strokeWidth: 1.5, opacity: 0.85, interpolate: "step-after" },
        encoding: {
          x: { field: "t", type: "quantitative", title: "seconds" },
          y: { field: "n", type: "quantitative", title: unit || group },
          color,
          detail: { field: "series", type: "nominal" },
        },
      },
      ...(rules.length
        ? [
            {
              data: { values: rules.map((x) => ({ ...x })) },
              mark: { type: "rule" as const, color: "#d62728", strokeDash: [4, 3] },
              encoding: { x: { field: "value", type: "quantitative" as const } },
            },
            {
              data: { values: rules.map((x) => ({ ...x })) },
              mark: {
                type: "text" as const,
                color: "#d62728",
                align: "right" as const,
                dx: -3,
                dy: 10,
                fontSize: 10,
              },
              encoding: {
                x: { field: "value", type: "quantitative" as const },
                y: { value: 0 },
                text: { field: "label" },
              },
            },
          ]
        : []),
    ],
    config: CONFIG,
  };
  const table = [
    `| ${group} | points | first at (s) | final (${unit || "value"}) | final at (s) |`,
    "| --- | ---: | ---: | ---: | ---: |",
    ...tableRows,
  ].join("\n");
  return { bench: r.name, group, file: `${slug(r.name)}-${slug(group)}.svg`, kind: "curve", spec, table };
}

/** Compiles a Vega-Lite spec and renders it to an SVG string, headless. */
export async function renderSvg(spec: vl.TopLevelSpec): Promise<string> {
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none", logLevel: vega.Error });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

// ------------------------------------------------------------------ history

export interface HistoryEntry {
  label: string;
  revision: string;
  recordedAt: string;
  /** True when any of the runs behind these figures was on a loaded machine. */
  loaded: boolean;
  figures: Record<string, number>;
}

const historySchema = z.array(
  z.object({
    label: z.string().min(1),
    revision: z.string(),
    recordedAt: z.string(),
    loaded: z.boolean(),
    figures: z.record(z.string(), num),
  }),
);

export function readHistory(path: string): HistoryEntry[] {
  if (!existsSync(path)) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ResultsError(`${path}: not JSON: ${(e as Error).message}`);
  }
  const r = historySchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new ResultsError(`${path}: ${i.path.join(".") || "(top level)"}: ${i.message}`);
  }
  return r.data;
}

/** The history with one row for these results (replacing a row of the same label). */
export function withRecord(
  history: HistoryEntry[],
  loaded: Loaded[],
  label?: string,
  now = new Date(),
): HistoryEntry[] {
  const ok = loaded.flatMap((l) => (l.status === "ok" ? [l.results] : []));
  if (ok.length === 0) throw new ResultsError("--record: no results to record (no benchmark has run)");
  const revisions = [...new Set(ok.map((r) => r.machine.gitRevision))];
  const figures: Record<string, number> = {};
  for (const row of headlineRows(loaded)) {
    if (row.value !== null && Number.isFinite(row.value)) figures[row.key] = Number(row.value.toPrecision(4));
  }
  const entry: HistoryEntry = {
    label: label ?? revisions.join("+"),
    revision: revisions.join("+"),
    recordedAt: now.toISOString(),
    loaded: ok.some(isLoaded),
    figures,
  };
  return [...history.filter((h) => h.label !== entry.label), entry];
}

function historyPlot(history: HistoryEntry[]): vl.TopLevelSpec {
  const labels = history.map((h) => h.label);
  const HX = { field: "label", type: "ordinal" as const, sort: labels, title: null, axis: { labelAngle: 0 } };
  const HY = {
    field: "value",
    type: "quantitative" as const,
    title: null,
    scale: { zero: true },
    axis: { format: "~s", tickCount: 3 },
  };
  const values = history.flatMap((h) =>
    Object.entries(h.figures).map(([figure, value]) => ({
      label: h.label,
      figure,
      value,
      loaded: h.loaded ? "loaded" : "quiet",
    })),
  );
  return {
    title: {
      text: "Headline figures by recorded version",
      subtitle: "each panel has its own scale; hollow points were recorded on a loaded machine",
      anchor: "start",
    },
    data: { values },
    facet: {
      row: {
        field: "figure",
        type: "nominal",
        title: null,
        header: { labelAngle: 0, labelOrient: "top", labelAnchor: "start", labelLimit: 0, labelFontSize: 11 },
      },
    },
    spec: {
      width: 360,
      height: 50,
      layer: [
        {
          mark: { type: "line", color: COLORS.vipd },
          encoding: {
            x: HX,
            y: HY,
          },
        },
        {
          mark: { type: "point", color: COLORS.vipd, size: 40 },
          encoding: {
            x: HX,
            y: HY,
            fill: {
              field: "loaded",
              type: "nominal",
              scale: { domain: ["quiet", "loaded"], range: [COLORS.vipd, "white"] },
              legend: null,
            },
          },
        },
      ],
    },
    resolve: { scale: { y: "independent" } },
    config: { font: "DejaVu Sans, Arial, sans-serif", background: "white" },
  };
}

function historyTable(history: HistoryEntry[]): string {
  const last = history.slice(-8);
  const keys = [...new Set(last.flatMap((h) => Object.keys(h.figures)))];
  return [
    `| figure | ${last.map((h) => `${h.label}${h.loaded ? " (loaded)" : ""}`).join(" | ")} |`,
    `| --- | ${last.map(() => "---:").join(" | ")} |`,
    ...keys.map((k) => `| ${k} | ${last.map((h) => fmt(h.figures[k] ?? null)).join(" | ")} |`),
  ].join("\n");
}

// ------------------------------------------------------------------ the markdown

export interface Report {
  markdown: string;
  /** File name (in the assets folder) → SVG text. */
  svgs: Map<string, string>;
  /** Rejected results files, with their message. */
  errors: string[];
}

const HOW = `## How this report is made

Each benchmark in \`bench/\` writes its raw samples, its baseline's samples (measured in the same
run), its figures and goals, and the facts of the machine it ran on (cores, CPU, kernel, Bun, git
revision, the 1-minute load average before and about every second during the run) to
\`bench/results/<name>.json\` (not committed). \`bun bench/report.ts\` turns those files into this
page; \`scripts/test.sh\` runs it after the benchmarks, so every CI run produces it. A run is marked
**loaded** when the load average went above the number of cores: its figures measure a machine
shared with other work as much as vipd, and are not a regression by themselves. Compare a loaded
run with a loaded one, and vipd with its baseline from the same run (the ratio), not absolute
numbers across machines.

The plots are Vega-Lite specifications rendered to SVG by Vega's headless view (\`vega\`,
\`vega-lite\`, pinned in \`package.json\`): declarative charts from plain JavaScript, with no DOM,
canvas or browser, so they render under Bun on a CI machine as they are.

**Refreshing the committed report when a release is cut:** run the benchmarks on the release
machine (\`bash scripts/test.sh\`, which also writes this report into \`build/benchmarks.md\`, or
the single \`bun bench/<name>.ts\` files), then
\`bun bench/report.ts --record --label vX.Y.Z --readme\`: it adds the headline figures as one row
of \`docs/benchmarks/history.json\`, regenerates this page and its plots, and puts the headline
table into README.md's Status section; commit \`README.md\`, \`docs/benchmarks.md\` and
\`docs/benchmarks/\`. Without \`--record\` the report only redraws the page from the results there
are; without \`--readme\` it leaves README.md alone.`;

export async function buildReport(
  loaded: Loaded[],
  history: HistoryEntry[],
  opts: { assetsRel: string; now?: Date },
): Promise<Report> {
  const svgs = new Map<string, string>();
  const errors = loaded.flatMap((l) => (l.status === "rejected" ? [l.error] : []));
  const ok = loaded.flatMap((l) => (l.status === "ok" ? [l.results] : []));
  const revisions = [...new Set(ok.map((r) => r.machine.gitRevision))];
  const md: string[] = [];
  md.push("# Benchmarks", "");
  md.push(
    "<!-- Generated by `bun bench/report.ts` from bench/results/*.json: edit the script, not this page. -->",
    "",
  );
  md.push(
    `Generated ${(opts.now ?? new Date()).toISOString().slice(0, 16).replace("T", " ")} UTC from the runs of ` +
      `revision ${revisions.length ? revisions.map((x) => `\`${x}\``).join(", ") : "(none)"}. ` +
      "Every figure is measured against a baseline in the same run; how to read and refresh this page is at the end.",
    "",
  );
  if (errors.length) {
    md.push("**Rejected results files** (malformed; not shown):", "");
    for (const e of errors) md.push(`- ${e}`);
    md.push("");
  }

  md.push("## Headline", "", headlineTable(loaded), "");

  md.push("## Machine and revision of each run", "");
  md.push(
    "| Benchmark | Revision | Started (UTC) | Duration | Cores | CPU | Kernel | Bun | Load before (1/5/15 min) | Load during (1 min, min–max) | Loaded |",
  );
  md.push("| --- | --- | --- | ---: | ---: | --- | --- | --- | --- | --- | --- |");
  for (const r of ok) {
    const m = r.machine;
    const during = m.loadDuring.length
      ? `${fmt(Math.min(...m.loadDuring))}–${fmt(Math.max(...m.loadDuring))}`
      : "n/a";
    md.push(
      `| ${r.name} | \`${m.gitRevision}\` | ${r.startedAt.slice(0, 16).replace("T", " ")} | ${fmt(r.durationS)} s | ${m.cores} | ${m.cpuModel} | ${m.kernel} | ${m.bun} | ${m.loadBefore.map((x) => fmt(x)).join(" / ")} | ${during} | ${isLoaded(r) ? "**yes**" : "no"} |`,
    );
  }
  md.push("");

  md.push("## History", "");
  if (history.length) {
    md.push(
      "Headline figures of each recorded version (`docs/benchmarks/history.json`, appended by `bun bench/report.ts --record`).",
      "",
    );
    svgs.set("history.svg", await renderSvg(historyPlot(history)));
    md.push(`![Headline figures by version](${opts.assetsRel}/history.svg)`, "", historyTable(history), "");
  } else {
    md.push("No version recorded yet: `bun bench/report.ts --record --label NAME` adds one.", "");
  }

  for (const l of loaded) {
    const meta = metaOf(l.name);
    md.push(`## ${meta.title} (\`bench/${l.name}.ts\`)`, "");
    if (l.status === "missing") {
      md.push(`Not run: no \`${l.file}\`.`, "");
      continue;
    }
    if (l.status === "rejected") {
      md.push(`Rejected: ${l.error}`, "");
      continue;
    }
    const r = l.results;
    md.push(`Measured: ${meta.what}. Baseline: ${meta.baseline}.`, "");
    const goals = r.goals ?? [];
    if (goals.length) md.push(`Goals: ${goals.map((g) => goalText(g, fig(r, g.figure))).join("; ")}.`, "");
    md.push(
      `Machine: ${isLoaded(r) ? `**${loadText(r)}**` : loadText(r)}; revision \`${r.machine.gitRevision}\`.`,
      "",
    );
    if (r.params && Object.keys(r.params).length) {
      md.push(
        `Parameters: ${Object.entries(r.params)
          .map(([k, v]) => `${k} ${typeof v === "string" ? v : JSON.stringify(v)}`)
          .join(", ")}.`,
        "",
      );
    }
    md.push("| Figure | Value |", "| --- | ---: |");
    for (const [k, v] of Object.entries(r.figures)) md.push(`| ${k} | ${fmt(v)} |`);
    md.push("");
    for (const p of plotsFor(r)) {
      svgs.set(p.file, await renderSvg(p.spec));
      md.push(
        `### ${p.group}`,
        "",
        `![${meta.title}: ${p.group}](${opts.assetsRel}/${p.file})`,
        "",
        p.table,
        "",
      );
    }
  }
  md.push(HOW, "");
  return { markdown: md.join("\n"), svgs, errors };
}

// ------------------------------------------------------------------ command line

function argOf(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith("--")) throw new Error(`--${name} needs a value`);
  return v;
}

function writeAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

async function main(): Promise<number> {
  const root = join(import.meta.dir, "..");
  const resultsDir = argOf("results") ?? process.env.VIPD_BENCH_RESULTS ?? join(root, "bench", "results");
  const out = argOf("out") ?? join(root, "docs", "benchmarks.md");
  const assets = join(dirname(out), "benchmarks");
  const historyPath = argOf("history") ?? join(root, "docs", "benchmarks", "history.json");
  const record = process.argv.includes("--record");
  const label = argOf("label");

  const loaded = loadResults(resultsDir);
  let history = readHistory(historyPath);
  if (record) {
    history = withRecord(history, loaded, label);
    writeAtomic(historyPath, `${JSON.stringify(history, null, 2)}\n`);
  }
  const report = await buildReport(loaded, history, { assetsRel: relative(dirname(out), assets) || "." });
  mkdirSync(assets, { recursive: true });
  // Plots of series that no longer exist go; everything else in the folder stays.
  for (const f of readdirSync(assets)) if (f.endsWith(".svg") && !report.svgs.has(f)) rmSync(join(assets, f));
  for (const [f, svg] of report.svgs) writeAtomic(join(assets, f), svg);
  writeAtomic(out, report.markdown);
  if (process.argv.includes("--readme")) {
    const readme = join(root, "README.md");
    writeAtomic(readme, withReadmeTable(readFileSync(readme, "utf8"), headlineTable(loaded)));
    console.log(`README.md: headline table updated`);
  }
  for (const l of loaded) {
    if (l.status === "missing") console.log(`${l.name}: not run (no ${l.file})`);
    if (l.status === "ok")
      console.log(`${l.name}: ${isLoaded(l.results) ? "loaded machine" : "quiet machine"}`);
  }
  for (const row of headlineRows(loaded)) {
    console.log(
      `  ${row.key}: ${row.valueText}; goal ${row.goal}; baseline ${row.baseline}; ratio ${row.ratio}`,
    );
  }
  for (const e of report.errors) console.error(`rejected ${e}`);
  console.log(
    `report: ${out} with ${report.svgs.size} plots${record ? `; history: ${history.length} versions` : ""}`,
  );
  return report.errors.length ? 1 : 0;
}

if (import.meta.main) {
  try {
    process.exitCode = await main();
  } catch (e) {
    if (e instanceof ResultsError || (e as Error).message?.startsWith("--")) {
      console.error(`bench/report: ${(e as Error).message}`);
      process.exitCode = 2;
    } else throw e;
  }
}
