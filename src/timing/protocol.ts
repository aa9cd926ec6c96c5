/**
 * The messages between the main thread (host.ts) and the timing worker (worker.ts). The worker
 * runs the loops whose timers must not wait for the main thread's work — membership heartbeats,
 * BFD sessions, the XDP liveness refresh, takeover announcements — as *services*, each opened
 * by a proxy on the main thread under a channel id. Plain data only (structured clone).
 */

export type ServiceKind = "membership" | "bfd" | "xdp-liveness" | "announcer";

export type ToWorker =
  | { op: "open"; ch: number; kind: ServiceKind; init: unknown }
  | { op: "call"; ch: number; seq: number; method: string; args: unknown[] }
  /** Fire and forget (no answer), in order with calls. */
  | { op: "post"; ch: number; method: string; args: unknown[] }
  | { op: "close"; ch: number; seq: number }
  /** The main thread is alive (see host.ts: the worker's watchdog). */
  | { op: "ping" };

export interface WireError {
  name: string;
  message: string;
  /** BfdConfigError's problems. */
  problems?: string[];
}

export type FromWorker =
  | { op: "ready" }
  /** The scheduling the worker got ("SCHED_RR 10", "nice -10", "default") for its first timing-critical service. */
  | { op: "priority"; priority: string }
  | { op: "reply"; ch: number; seq: number; ok: true; value: unknown }
  | { op: "reply"; ch: number; seq: number; ok: false; error: WireError }
  | { op: "event"; ch: number; ev: string; data: unknown };

export function toWireError(e: unknown): WireError {
  if (e instanceof Error) {
    const problems = (e as { problems?: unknown }).problems;
    return {
      name: e.name === "Error" ? e.constructor.name : e.name,
      message: e.message,
      ...(Array.isArray(problems) ? { problems: problems.map(String) } : {}),
    };
  }
  return { name: "Error", message: String(e) };
}
