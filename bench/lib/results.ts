/**
 * Raw results of a benchmark run, written as JSON beside the printed figures so that
 * `bun bench/report.ts` can draw them (docs/benchmarks.md). One file per benchmark:
 * `bench/results/<name>.json` (override the folder with VIPD_BENCH_RESULTS).
 *
 * Usage:
 *   const rec = startRecording("failover");   // at the start: machine facts, load before
 *   ...                                         // the benchmark runs; load is sampled each second
 *   await rec.finish({ samples, baseline, figures });   // before the closing line: it prints nothing
 *
 * `samples` and `baseline` hold named series: arrays of numbers (a distribution, e.g. gap ms per
 * round) or arrays of [x, y] points (a curve, e.g. routes in table over time). `figures` are the
 * headline numbers the benchmark prints (its closing line's figure among them). `goals` states what
 * each figure is measured against, in words and numbers, so the report can say it next to a plot.
 */

import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { dirname, join } from "node:path";

export type Series = number[] | [number, number][];

export interface Goal {
  /** The figure's key in `figures`. */
  figure: string;
  /** "<=" or ">=": which side of `value` is good. */
  op: "<=" | ">=";
  value: number;
  /** Words, e.g. "median failover ≤ 500 ms". */
  text: string;
}

export interface BenchResultsInput {
  /** Named series measured for vipd. */
  samples: Record<string, Series>;
  /** Named series measured for the baseline in the same run (kernel, BIRD, GoBGP, FRR...). */
  baseline: Record<string, Series>;
  /** Headline figures, as printed. */
  figures: Record<string, number>;
  goals?: Goal[];
  /** Units of the series and figures, e.g. { "gap.crash": "ms" }. */
  units?: Record<string, string>;
  /** Anything else worth keeping (parameters of the run). */
  params?: Record<string, unknown>;
}

export interface MachineFacts {
  cores: number;
  cpuModel: string;
  kernel: string;
  bun: string;
  gitRevision: string;
  loadBefore: [number, number, number];
  /** 1-minute load average sampled about once a second while the benchmark ran. */
  loadDuring: number[];
  /** True when the 1-minute load average went above the core count during the run. */
  loaded: boolean;
}

export interface BenchResults extends BenchResultsInput {
  name: string;
  startedAt: string;
  durationS: number;
  machine: MachineFacts;
}

export const RESULTS_DIR = process.env.VIPD_BENCH_RESULTS ?? join(import.meta.dir, "..", "results");

function gitRevision(): string {
  try {
    const r = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], {
      cwd: join(import.meta.dir, ".."),
      stdout: "pipe",
      stderr: "ignore",
    });
    const s = r.stdout.toString().trim();
    return r.exitCode === 0 && s ? s : "unknown";
  } catch {
    return "unknown";
  }
}

function cpuModel(): string {
  try {
    const m = /model name\s*:\s*(.+)/.exec(readFileSync("/proc/cpuinfo", "utf8"));
    return m?.[1]?.trim() ?? cpus()[0]?.model ?? "unknown";
  } catch {
    return cpus()[0]?.model ?? "unknown";
  }
}

export interface Recording {
  readonly name: string;
  /** Writes bench/results/<name>.json atomically; returns its path. */
  finish(input: BenchResultsInput): Promise<string>;
}

/** Most load samples kept (one a second: an hour). */
const MAX_LOAD_SAMPLES = 3600;

/**
 * Samples the 1-minute load average once a second in a Worker writing into shared memory, so a
 * benchmark that keeps the main thread busy (the allocator's loops) is sampled all the same.
 * Falls back to a timer on the main thread if a Worker cannot start.
 */
function loadSampler(): { stop(): number[] } {
  const shared = new SharedArrayBuffer(8 * (MAX_LOAD_SAMPLES + 1));
  const code = `
    const { loadavg } = require("node:os");
    self.onmessage = (e) => {
      const a = new Float64Array(e.data);
      const tick = () => { const n = a[0]; if (n < a.length - 1) { a[n + 1] = loadavg()[0]; a[0] = n + 1; } };
      tick();
      setInterval(tick, 1000);
    };`;
  try {
    const url = URL.createObjectURL(new Blob([code], { type: "application/javascript" }));
    const worker = new Worker(url);
    worker.postMessage(shared);
    worker.unref();
    return {
      stop() {
        worker.terminate();
        URL.revokeObjectURL(url);
        const a = new Float64Array(shared);
        return Array.from(a.subarray(1, 1 + a[0]!));
      },
    };
  } catch {
    const out: number[] = [];
    const timer = setInterval(() => out.length < MAX_LOAD_SAMPLES && out.push(loadavg()[0] ?? 0), 1000);
    timer.unref?.();
    return {
      stop() {
        clearInterval(timer);
        return out;
      },
    };
  }
}

/** Starts recording a benchmark run: machine facts now, load average each second until finish. */
export function startRecording(name: string): Recording {
  const startedAt = new Date();
  const t0 = performance.now();
  const [l1, l5, l15] = loadavg();
  const loadBefore: [number, number, number] = [l1 ?? 0, l5 ?? 0, l15 ?? 0];
  const sampler = loadSampler();
  return {
    name,
    async finish(input: BenchResultsInput): Promise<string> {
      const loadDuring = sampler.stop().map((x) => Math.round(x * 100) / 100);
      loadDuring.push(loadavg()[0] ?? 0);
      const cores = cpus().length;
      const results: BenchResults = {
        name,
        startedAt: startedAt.toISOString(),
        durationS: Math.round((performance.now() - t0) / 100) / 10,
        machine: {
          cores,
          cpuModel: cpuModel(),
          kernel: release(),
          bun: Bun.version,
          gitRevision: gitRevision(),
          loadBefore,
          loadDuring,
          loaded: Math.max(loadBefore[0], ...loadDuring) > cores,
        },
        ...input,
      };
      const path = join(RESULTS_DIR, `${name}.json`);
      mkdirSync(dirname(path), { recursive: true });
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, `${JSON.stringify(results, null, 1)}\n`);
      renameSync(tmp, path);
      return path;
    },
  };
}
