/**
 * The calling thread's CPU priority (its nice value; Linux priorities are per thread, so a Bun
 * Worker can lower its own without touching the main thread's timers). Best effort: off
 * Linux/x86_64 glibc, or where the call fails, the thread keeps its priority.
 *
 * @example
 * const nice = threadNice(); // once, on the thread it is for
 * nice(10); // a large parse: let the main thread's timers run first
 * nice(0); // back up (needs privileges: without them the thread stays at 10)
 */

import { dlopen, FFIType } from "bun:ffi";

export function threadNice(): (nice: number) => void {
  if (process.platform !== "linux" || process.arch !== "x64") return () => {};
  try {
    const SYS_gettid = 186n; // x86_64
    const libc = dlopen("libc.so.6", {
      syscall: { args: [FFIType.i64], returns: FFIType.i64 },
      setpriority: { args: [FFIType.i32, FFIType.u32, FFIType.i32], returns: FFIType.i32 },
    });
    const tid = Number(libc.symbols.syscall(SYS_gettid));
    if (tid <= 0) return () => {};
    let now = 0;
    return (nice: number) => {
      if (nice !== now && libc.symbols.setpriority(0 /* PRIO_PROCESS */, tid, nice) === 0) now = nice;
    };
  } catch {
    // Not Linux/glibc: keep the default priority.
    return () => {};
  }
}
