/**
 * The timing worker's real-time priority (VIPD_TIMING_RT_PRIORITY, needs root): the worker's own
 * thread gets SCHED_RR, and the threads it starts — the engine's JIT and GC helper threads, which
 * the main thread's heap shares — keep the default policy (SCHED_RESET_ON_FORK). Run in a child
 * process, so the environment variable and the process-wide worker stay out of other tests.
 * Which thread starts the shared helper threads first is a race: without the reset this test
 * failed in 1 of 3 runs (the helpers at SCHED_RR when the worker started them), with it never.
 */

import { expect, test } from "bun:test";
import { join } from "node:path";

const HOST = join(import.meta.dir, "../../src/timing/host.ts");

const CHILD = `
import { readdirSync, readFileSync } from "node:fs";
import { openTimingChannel, timingWorkerPriority } from ${JSON.stringify(HOST)};
const port = 20000 + (process.pid % 20000);
const ch = openTimingChannel("bfd", { singleHopPort: port, multihopPort: port + 1 }, () => {});
await ch.call("status");
// The main thread's heap collects and compiles: its helper threads exist by now.
let keep = [];
for (let r = 0; r < 30; r++) {
  for (let i = 0; i < 100000; i++) keep.push({ i, s: "x" + i });
  keep = [];
  await Bun.sleep(10);
}
const threads = readdirSync("/proc/self/task").map((t) => {
  const comm = readFileSync("/proc/self/task/" + t + "/comm", "utf8").trim();
  const fields = readFileSync("/proc/self/task/" + t + "/stat", "utf8").split(") ")[1].split(" ");
  return { comm, policy: Number(fields[38]) };
});
console.log(JSON.stringify({ priority: timingWorkerPriority(), threads }));
await ch.close();
`;

test("SCHED_RR for the timing worker's thread only, not for the threads it starts", async () => {
  const p = Bun.spawn([process.execPath, "-e", CHILD], {
    env: { ...process.env, VIPD_TIMING_RT_PRIORITY: "7" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  expect({ code, err: code === 0 ? "" : err }).toEqual({ code: 0, err: "" });
  const r = JSON.parse(out.trim().split("\n").at(-1) as string) as {
    priority: string;
    threads: { comm: string; policy: number }[];
  };
  expect(r.priority).toBe("SCHED_RR 7");
  const SCHED_RR = 2;
  const rt = r.threads.filter((t) => t.policy === SCHED_RR).map((t) => t.comm);
  expect(rt).toEqual(["Worker"]);
  expect(r.threads.length).toBeGreaterThan(2);
}, 30_000);
