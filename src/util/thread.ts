/**
 * The calling thread's CPU priority (Linux priorities are per thread, so a Bun Worker can change
 * its own without touching the main thread's timers): its nice value (`threadNice`), or a raise
 * for a timing-critical thread (`raiseThread`). Best effort: off Linux/x86_64 glibc, or where the
 * call fails, the thread keeps its priority.
 *
 * @example
 * const nice = threadNice(); // once, on the thread it is for
 * nice(10); // a large parse: let the main thread's timers run first
 * nice(0); // back up (needs privileges: without them the thread stays at 10)
 * raiseThread({ nice: -10 }); // "nice -10", or "default" without root or CAP_SYS_NICE
 */

import { dlopen, FFIType, ptr } from "bun:ffi";

const SYS_gettid = 186n; // x86_64
const PRIO_PROCESS = 0;
const SCHED_OTHER = 0;
const SCHED_RR = 2;
const SCHED_RESET_ON_FORK = 0x40000000;

/** libc's calls and the calling thread's id; undefined where they are not to be had. */
function thisThread() {
  if (process.platform !== "linux" || process.arch !== "x64") return undefined;
  try {
    const libc = dlopen("libc.so.6", {
      syscall: { args: [FFIType.i64], returns: FFIType.i64 },
      setpriority: { args: [FFIType.i32, FFIType.u32, FFIType.i32], returns: FFIType.i32 },
      sched_setscheduler: { args: [FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    });
    const tid = Number(libc.symbols.syscall(SYS_gettid));
    return tid > 0 ? { libc: libc.symbols, tid } : undefined;
  } catch {
    // Not Linux/glibc.
    return undefined;
  }
}

export function threadNice(): (nice: number) => void {
  const t = thisThread();
  if (t === undefined) return () => {};
  let now = 0;
  return (nice: number) => {
    if (nice !== now && t.libc.setpriority(PRIO_PROCESS, t.tid, nice) === 0) now = nice;
  };
}

/**
 * Raises the calling thread: SCHED_RR `rt` (1..99) when given, else nice `nice` (-20..-1); both
 * with SCHED_RESET_ON_FORK, so the threads it starts later begin at the default policy and nice 0.
 * Says what it got: "SCHED_RR N", "nice N", or "default" (nothing asked, not allowed, not Linux).
 */
export function raiseThread(p: { rt?: number; nice?: number }): string {
  const rt = p.rt ?? 0;
  const nice = p.nice ?? 0;
  if (!(rt > 0) && !(nice < 0)) return "default";
  const t = thisThread();
  if (t === undefined) return "default";
  if (rt > 0) {
    const param = new Int32Array([Math.max(1, Math.min(99, Math.trunc(rt)))]);
    return t.libc.sched_setscheduler(t.tid, SCHED_RR | SCHED_RESET_ON_FORK, ptr(param)) === 0
      ? `SCHED_RR ${param[0]}`
      : "default";
  }
  const param = new Int32Array([0]);
  if (t.libc.sched_setscheduler(t.tid, SCHED_OTHER | SCHED_RESET_ON_FORK, ptr(param)) !== 0) return "default";
  const n = Math.max(-20, Math.trunc(nice));
  return t.libc.setpriority(PRIO_PROCESS, t.tid, n) === 0 ? `nice ${n}` : "default";
}
