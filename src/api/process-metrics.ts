/**
 * The `process_*` series every Prometheus client library exports (the names and units of the
 * Go client's process collector and of prom-client's defaults), read from /proc/self at scrape
 * time: resident memory, CPU time, open and allowed file descriptors, start time.
 *
 * The parsers are pure (text in, numbers out); `readProcessFigures` does the reading. Linux
 * only: elsewhere, or when /proc cannot be read, it returns null and the families are absent.
 *
 * @example
 * const f = readProcessFigures(); // { residentMemoryBytes: 48_123_904, cpuSeconds: 1.93, ... }
 */

import { readdirSync, readFileSync } from "node:fs";

/** The kernel's USER_HZ, the unit of /proc's CPU times: 100 on every Linux architecture vipd runs on. */
export const USER_HZ = 100;

export interface ProcessFigures {
  /** process_resident_memory_bytes: VmRSS. */
  residentMemoryBytes: number;
  /** process_virtual_memory_bytes: VmSize. */
  virtualMemoryBytes: number;
  /** process_cpu_seconds_total: user + system time. */
  cpuSeconds: number;
  /** process_open_fds. */
  openFds: number;
  /** process_max_fds: the soft limit on open files (RLIMIT_NOFILE); null when unlimited. */
  maxFds: number | null;
  /** process_start_time_seconds: since the Unix epoch. */
  startTimeSeconds: number;
}

/** /proc/self/stat: CPU ticks (user, system), start time in ticks since boot, vsize in bytes. */
export function parseProcStat(text: string): {
  utimeTicks: number;
  stimeTicks: number;
  startTicks: number;
  vsizeBytes: number;
} {
  // The command name (field 2) is in parentheses and may itself hold spaces and ')'.
  const close = text.lastIndexOf(")");
  if (close < 0) throw new Error("/proc/self/stat: no command field");
  const f = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  // proc(5): field n (1-based) is f[n - 3] here (field 3, the state, is f[0]).
  const num = (n: number) => {
    const v = Number(f[n - 3]);
    if (!Number.isFinite(v)) throw new Error(`/proc/self/stat: field ${n} is not a number`);
    return v;
  };
  return { utimeTicks: num(14), stimeTicks: num(15), startTicks: num(22), vsizeBytes: num(23) };
}

/** A `Key:   N kB` line of /proc/self/status, in bytes; null when absent. */
export function statusBytes(text: string, key: string): number | null {
  const m = new RegExp(`^${key}:\\s+(\\d+)\\s*kB\\s*$`, "m").exec(text);
  return m ? Number(m[1]) * 1024 : null;
}

/** The boot time (`btime`, seconds since the Unix epoch) in /proc/stat. */
export function parseBootTime(text: string): number {
  const m = /^btime\s+(\d+)\s*$/m.exec(text);
  if (!m) throw new Error("/proc/stat: no btime line");
  return Number(m[1]);
}

/** The soft "Max open files" limit in /proc/self/limits; null when unlimited or absent. */
export function parseMaxOpenFiles(text: string): number | null {
  const m = /^Max open files\s+(\S+)\s+/m.exec(text);
  if (!m || m[1] === "unlimited") return null;
  const v = Number(m[1]);
  return Number.isFinite(v) ? v : null;
}

/** This process's figures from /proc, or null when /proc cannot be read (not Linux). */
export function readProcessFigures(proc = "/proc"): ProcessFigures | null {
  try {
    const stat = parseProcStat(readFileSync(`${proc}/self/stat`, "utf8"));
    const status = readFileSync(`${proc}/self/status`, "utf8");
    return {
      residentMemoryBytes: statusBytes(status, "VmRSS") ?? 0,
      virtualMemoryBytes: stat.vsizeBytes,
      cpuSeconds: (stat.utimeTicks + stat.stimeTicks) / USER_HZ,
      openFds: readdirSync(`${proc}/self/fd`).length,
      maxFds: parseMaxOpenFiles(readFileSync(`${proc}/self/limits`, "utf8")),
      startTimeSeconds: parseBootTime(readFileSync(`${proc}/stat`, "utf8")) + stat.startTicks / USER_HZ,
    };
  } catch {
    return null;
  }
}

export const PROCESS_METRIC_NAMES = [
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_cpu_seconds_total",
  "process_open_fds",
  "process_max_fds",
  "process_start_time_seconds",
] as const;

/** The families with their help texts and types, as metrics.ts exports them. */
export function processFamilies(
  f: ProcessFigures,
): { name: (typeof PROCESS_METRIC_NAMES)[number]; help: string; type: "counter" | "gauge"; value: number }[] {
  const out: ReturnType<typeof processFamilies> = [
    {
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes",
      type: "gauge",
      value: f.residentMemoryBytes,
    },
    {
      name: "process_virtual_memory_bytes",
      help: "Virtual memory size in bytes",
      type: "gauge",
      value: f.virtualMemoryBytes,
    },
    {
      name: "process_cpu_seconds_total",
      help: "Total user and system CPU time spent in seconds",
      type: "counter",
      value: f.cpuSeconds,
    },
    { name: "process_open_fds", help: "Number of open file descriptors", type: "gauge", value: f.openFds },
    {
      name: "process_start_time_seconds",
      help: "Start time of the process since unix epoch in seconds",
      type: "gauge",
      value: f.startTimeSeconds,
    },
  ];
  if (f.maxFds !== null)
    out.push({
      name: "process_max_fds",
      help: "Maximum number of open file descriptors",
      type: "gauge",
      value: f.maxFds,
    });
  return out;
}
