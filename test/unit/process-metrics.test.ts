/**
 * The standard process_* series on /metrics: the /proc parsers on captured text (including a
 * command name with spaces and parentheses), and the live figures of this test process through
 * the API as Prometheus scrapes them.
 */

import { expect, test } from "bun:test";
import { createApp } from "../../src/api/app.ts";
import {
  parseBootTime,
  parseMaxOpenFiles,
  parseProcStat,
  processFamilies,
  readProcessFigures,
  statusBytes,
} from "../../src/api/process-metrics.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeRuntime } from "./api-runtime-fake.ts";

// /proc/self/stat of a process whose command is "a b) c" (Linux 6.18, captured and renamed).
const STAT =
  "4242 (a b) c) S 1 4242 4242 0 -1 4194560 12000 0 3 0 250 75 0 0 20 0 9 0 123456 734003200 11800 " +
  "18446744073709551615 1 1 0 0 0 0 0 4096 17928 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

test("/proc/self/stat: CPU ticks, start ticks and vsize, past a command name with ') '", () => {
  expect(parseProcStat(STAT)).toEqual({
    utimeTicks: 250,
    stimeTicks: 75,
    startTicks: 123456,
    vsizeBytes: 734003200,
  });
  expect(() => parseProcStat("garbage")).toThrow("no command field");
});

test("/proc/self/status, /proc/stat and /proc/self/limits", () => {
  expect(statusBytes("Name:\tvipd\nVmSize:\t  716800 kB\nVmRSS:\t   47200 kB\n", "VmRSS")).toBe(47200 * 1024);
  expect(statusBytes("Name:\tvipd\n", "VmRSS")).toBeNull();
  expect(parseBootTime("cpu  1 2 3\nbtime 1764680000\nprocesses 9\n")).toBe(1764680000);
  const limits =
    "Limit                     Soft Limit           Hard Limit           Units     \n" +
    "Max open files            1024                 524288               files     \n";
  expect(parseMaxOpenFiles(limits)).toBe(1024);
  expect(parseMaxOpenFiles(limits.replace("1024 ", "unlimited"))).toBeNull();
});

test("the families follow the client libraries' names: _total only on the CPU counter", () => {
  const fams = processFamilies({
    residentMemoryBytes: 1,
    virtualMemoryBytes: 2,
    cpuSeconds: 3.25,
    openFds: 4,
    maxFds: 5,
    startTimeSeconds: 6,
  });
  expect(fams.map((f) => f.name).sort()).toEqual([
    "process_cpu_seconds_total",
    "process_max_fds",
    "process_open_fds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_virtual_memory_bytes",
  ]);
  for (const f of fams) expect(f.name.endsWith("_total")).toBe(f.type === "counter");
});

test("this process's own figures are plausible", () => {
  const f = readProcessFigures();
  expect(f).not.toBeNull();
  if (f === null) return;
  expect(f.residentMemoryBytes).toBeGreaterThan(1024 * 1024);
  expect(f.openFds).toBeGreaterThan(2);
  expect(f.cpuSeconds).toBeGreaterThan(0);
  // Started before now, and not before this test file was written.
  expect(f.startTimeSeconds).toBeLessThanOrEqual(Date.now() / 1000 + 1);
  expect(f.startTimeSeconds).toBeGreaterThan(Date.now() / 1000 - 24 * 3600);
  expect(readProcessFigures("/nonexistent")).toBeNull();
});

test("/metrics exports them, with their types, and a scrape sees the CPU time grow", async () => {
  const app = createApp(new FakeRuntime(), {
    tokens: [],
    metricsOpen: true,
    log: createLogger("api", { level: "error", sink: () => {} }),
  });
  const scrape = async () => await (await app.request("/metrics")).text();
  const value = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
  const first = await scrape();
  for (const [name, type] of [
    ["process_resident_memory_bytes", "gauge"],
    ["process_cpu_seconds_total", "counter"],
    ["process_open_fds", "gauge"],
    ["process_max_fds", "gauge"],
    ["process_start_time_seconds", "gauge"],
  ] as const) {
    expect(first).toContain(`# TYPE ${name} ${type}`);
    expect(value(first, name)).toBeGreaterThan(0);
  }
  // Burn some CPU (bounded) so the counter moves at the 10 ms tick.
  const until = performance.now() + 50;
  let x = 0;
  while (performance.now() < until) x += Math.sqrt(x + 1);
  expect(x).toBeGreaterThan(0);
  const second = await scrape();
  expect(value(second, "process_cpu_seconds_total")).toBeGreaterThanOrEqual(
    value(first, "process_cpu_seconds_total"),
  );
  expect(value(second, "process_start_time_seconds")).toBe(value(first, "process_start_time_seconds"));
});
