/**
 * The timing worker: a Bun Worker with its own event loop and heap that runs the loops whose
 * timers must never wait for the main thread — membership heartbeats (src/cluster/engine.ts),
 * BFD sessions (src/bfd/engine.ts), the XDP liveness refresh and takeover announcements
 * (src/xdp/announce.ts). Each is a service opened by a proxy on the main thread (host.ts) under a
 * channel id; sockets and map file descriptors are opened here, by the service, never passed in.
 *
 * The watchdog: the main thread pings every second; when no ping came for the stall limit the
 * services are suspended (no heartbeat, no liveness refresh) until one does.
 *
 * The announcer runs in a second worker from this module (host.ts): its bursts (two frames per
 * VIP per step) must not sit between two heartbeats.
 *
 * Priority: the worker's own thread runs at nice -10 (`VIPD_TIMING_NICE=N`, -20..-1; 0 keeps the
 * process's priority), which needs root or CAP_SYS_NICE; without them it keeps the default. On a
 * loaded machine the scheduler then wakes it ahead of the main thread's and the other processes'
 * work: in bench/stall.ts at a load average of 4.3-4.9 on 2 cores (five runs each, alternated) the
 * heartbeats' lateness p99 had a median of 7.1 ms at nice -10 against 12.6 ms at nice 0, and the
 * max 17 against 29 ms (docs/architecture.md). `VIPD_TIMING_RT_PRIORITY=N` (1..99) asks for
 * SCHED_RR N instead, as corosync does for its heartbeats; it did not remove the late heartbeats
 * bench/stall.ts measured on a loaded machine, and is not the default. Measured on a loaded 2-core
 * machine (a bare worker's 50 ms timer, 10 s runs, load average 7-14): SCHED_RR brings the timer's
 * p99 from 7-240 ms to 1-6 ms while the main thread is idle or only computes, but not while the
 * main thread allocates many small objects (as a reload's planning does): p99 90-230 ms, and the
 * RT thread then burned 0.4-1.8 s of CPU in 10 s (spinning on a lock the preempted main thread
 * holds, in the allocator or the engine, as far as could be seen) — the worker shares the
 * process's memory allocator; a nice value only weighs the thread, it never shuts the main thread
 * out. Either is asked for with SCHED_RESET_ON_FORK, so the threads this one starts (the engine's
 * JIT and GC helper threads, shared with the main thread's heap) begin at the default policy and
 * nice 0 instead of running the main thread's compilation and marking at the raised priority.
 */

import { BfdEngine } from "../bfd/engine.ts";
import type { DesiredSession } from "../bfd/sessions.ts";
import { callMembership, MembershipEngine } from "../cluster/engine.ts";
import { type FromWorker, type ServiceKind, type ToWorker, toWireError } from "../timing/protocol.ts";
import { parseIp } from "../util/ip.ts";
import { raiseThread } from "../util/thread.ts";
import { Announcer, packetSender } from "../xdp/announce.ts";
import { monotonicNs } from "../xdp/libbpf.ts";
import { XdpMaps } from "../xdp/maps.ts";

declare const self: Worker;

const STALL_LIMIT_MS = Number(process.env.VIPD_MAIN_STALL_LIMIT_MS ?? 60_000);
const SNAPSHOT_MS = 250;

interface Service {
  call(method: string, args: unknown[]): unknown;
  /** The watchdog's verdict changed. */
  suspend?(suspended: boolean): void;
  close(): Promise<void> | void;
}

/** The timing thread's nice value unless VIPD_TIMING_NICE says otherwise (0: the default). */
const DEFAULT_NICE = -10;

/** Raises this thread's scheduling priority (see the header); says what it got. */
const raisePriority = (): string =>
  raiseThread({
    rt: Number(process.env.VIPD_TIMING_RT_PRIORITY ?? 0),
    nice: Number(process.env.VIPD_TIMING_NICE ?? DEFAULT_NICE),
  });
let priority: string | undefined;

const emit = (ch: number, ev: string, data: unknown) =>
  postMessage({ op: "event", ch, ev, data } satisfies FromWorker);

function membershipService(ch: number, init: Record<string, unknown>): Service {
  const snap = () => emit(ch, "snapshot", engine.snapshot());
  const engine: MembershipEngine = new MembershipEngine({
    ...(init as unknown as ConstructorParameters<typeof MembershipEngine>[0]),
    onChange: (why) => emit(ch, "change", { why, snapshot: engine.snapshot() }),
    // A peer's site generation or table digest changed (heartbeat version 3): publish it now.
    onPeerSite: snap,
  });
  // Counters and "last heard" between changes.
  const timer = setInterval(snap, SNAPSHOT_MS);
  return {
    call(method, args) {
      if (method === "stop") clearInterval(timer);
      return callMembership(engine, method, args, snap);
    },
    suspend: (s) => engine.setSuspended(s),
    close() {
      clearInterval(timer);
      engine.stop(false);
    },
  };
}

function bfdService(ch: number, init: { singleHopPort?: number; multihopPort?: number }): Service {
  const engine = new BfdEngine({ ...init, log: (msg, fields) => emit(ch, "log", { msg, fields }) });
  engine.on("up", (key, diag) => emit(ch, "up", { key, diag, status: engine.status() }));
  engine.on("down", (key, diag) => emit(ch, "down", { key, diag, status: engine.status() }));
  const timer = setInterval(() => emit(ch, "status", engine.status()), SNAPSHOT_MS);
  return {
    call(method, args) {
      switch (method) {
        case "setSessions":
          return engine.setSessions(args[0] as DesiredSession[]).then(() => engine.status());
        case "status":
          return engine.status();
      }
      throw new Error(`bfd: no method ${method}`);
    },
    async close() {
      clearInterval(timer);
      await engine.close();
    },
  };
}

/** Refreshes the responder's liveness stamp (CLOCK_MONOTONIC) every `periodMs`, from this thread. */
function livenessService(init: { pinDir: string; windowMs: number; periodMs: number }): Service {
  const maps = XdpMaps.open(init.pinDir);
  const windowNs = BigInt(Math.round(init.windowMs)) * 1_000_000n;
  let suspended = false;
  const refresh = () => {
    if (suspended) return;
    try {
      maps.setLiveness(monotonicNs(), windowNs);
    } catch {
      // Maps gone (detached under us): the main thread's next apply() reports it.
    }
  };
  refresh();
  const timer = setInterval(refresh, init.periodMs);
  return {
    call(method) {
      if (method === "refresh") return refresh();
      throw new Error(`xdp-liveness: no method ${method}`);
    },
    suspend(s) {
      suspended = s;
      if (!s) refresh();
    },
    close() {
      clearInterval(timer);
      maps.close();
    },
  };
}

/** Takeover announcements (GARP / unsolicited NA) on their schedule, sent from this thread. */
function announcerService(init: { scheduleMs?: number[] }): Service {
  const sender = packetSender();
  const a = new Announcer(sender.send, init.scheduleMs);
  const stats = () => ({ sent: a.sent, failed: a.failed, lastError: a.lastError, pending: a.pending() });
  return {
    call(method, args) {
      switch (method) {
        case "announce": {
          for (const [ifindex, ip, mac] of args[0] as [number, string, Uint8Array][]) {
            const p = parseIp(ip);
            if (p !== null) a.announce(ifindex, p, mac);
          }
          return stats();
        }
        case "cancel": {
          for (const [ifindex, ip] of args[0] as [number, string][]) {
            const p = parseIp(ip);
            if (p !== null) a.cancel(ifindex, p);
          }
          return stats();
        }
        case "stats":
          return stats();
      }
      throw new Error(`announcer: no method ${method}`);
    },
    close() {
      a.stop();
      sender.close();
    },
  };
}

const services = new Map<number, Service>();
const failed = new Map<number, unknown>();
let lastPing = performance.now();
let suspended = false;

function open(ch: number, kind: ServiceKind, init: unknown): Service {
  switch (kind) {
    case "membership":
      return membershipService(ch, init as Record<string, unknown>);
    case "bfd":
      return bfdService(ch, init as { singleHopPort?: number; multihopPort?: number });
    case "xdp-liveness":
      return livenessService(init as { pinDir: string; windowMs: number; periodMs: number });
    case "announcer":
      return announcerService(init as { scheduleMs?: number[] });
  }
}

const reply = (ch: number, seq: number, run: () => unknown): void => {
  let v: unknown;
  try {
    v = run();
  } catch (e) {
    postMessage({ op: "reply", ch, seq, ok: false, error: toWireError(e) } satisfies FromWorker);
    return;
  }
  Promise.resolve(v).then(
    (value) => postMessage({ op: "reply", ch, seq, ok: true, value } satisfies FromWorker),
    (e) => postMessage({ op: "reply", ch, seq, ok: false, error: toWireError(e) } satisfies FromWorker),
  );
};

function service(ch: number): Service {
  const s = services.get(ch);
  if (s) return s;
  const why = failed.get(ch);
  throw why instanceof Error ? why : new Error(`no timing service on channel ${ch}`);
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  switch (m.op) {
    case "ping":
      lastPing = performance.now();
      return;
    case "open":
      // Only a worker running a timing-critical service asks for priority (not the announcer's).
      if (priority === undefined && m.kind !== "announcer") {
        priority = raisePriority();
        postMessage({ op: "priority", priority } satisfies FromWorker);
      }
      try {
        const s = open(m.ch, m.kind, m.init);
        services.set(m.ch, s);
        if (suspended) s.suspend?.(true);
      } catch (e) {
        failed.set(m.ch, e);
      }
      return;
    case "call":
      reply(m.ch, m.seq, () => service(m.ch).call(m.method, m.args));
      return;
    case "post":
      try {
        const v = service(m.ch).call(m.method, m.args);
        if (v instanceof Promise) v.catch(() => {});
      } catch {
        // Fire and forget: a failing post is the service's to count.
      }
      return;
    case "close": {
      const s = services.get(m.ch);
      services.delete(m.ch);
      failed.delete(m.ch);
      reply(m.ch, m.seq, () => s?.close());
      return;
    }
  }
};

// The watchdog (see host.ts).
setInterval(() => {
  const stalled = performance.now() - lastPing > STALL_LIMIT_MS;
  if (stalled === suspended) return;
  suspended = stalled;
  for (const s of services.values()) s.suspend?.(stalled);
}, 500);

postMessage({ op: "ready" } satisfies FromWorker);
