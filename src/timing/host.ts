/**
 * The main thread's side of the timing worker: one Bun Worker per process, shared by every
 * proxy (MembershipService, BfdManager, XdpDriver's liveness refresh and announcements), started
 * with the first channel and terminated when the last one closes.
 *
 * Why a worker (measured by bench/stall.ts, see docs/architecture.md "Timing isolation"): the
 * worker has its own event loop and heap, so parsing, planning and API handlers on the main thread
 * cannot delay a heartbeat, a BFD packet or a liveness refresh; the proxies stay synchronous for
 * their callers by mirroring the state the worker pushes with every event.
 *
 * Watchdog: the main thread pings the worker every second. A worker that has not heard a ping for
 * `VIPD_MAIN_STALL_LIMIT_MS` (default 60 s) treats the process as hung: it stops sending
 * heartbeats and refreshing the XDP liveness stamp (so the others take over and the data path
 * stops answering, as when the process dies) until the main thread is back; membership then
 * holds like after a pause.
 */

import type { FromWorker, ServiceKind, ToWorker, WireError } from "./protocol.ts";

/**
 * The worker's module: src/node/timing-worker.ts, which composes the engines (membership, BFD,
 * XDP liveness and announcements) for the worker thread — so it sits beside the node's other
 * composition, and this host imports nothing above it. A `bun build --compile` executable holds
 * it only when it is built as an extra entry point (`bun build --compile src/main.ts ...
 * src/node/timing-worker.ts`, as image/build.sh does); Bun then names it after its path below the
 * entry points' common folder (src/).
 */
const WORKER_URL = import.meta.url.includes("/$bunfs/")
  ? new URL("./node/timing-worker.js", import.meta.url).href
  : new URL("../node/timing-worker.ts", import.meta.url).href;

const PING_MS = 1000;

export class TimingCallError extends Error {
  constructor(
    readonly remoteName: string,
    message: string,
    readonly problems?: string[],
  ) {
    super(message);
    this.name = remoteName;
  }
}

/** A proxy's line to its service in the worker. */
export interface Channel {
  /** Calls a method of the service and waits for its answer (rejects with the service's error). */
  call<T = unknown>(method: string, ...args: unknown[]): Promise<T>;
  /** Calls a method without waiting (in order with calls). */
  post(method: string, ...args: unknown[]): void;
  /** Closes the service (its close() in the worker), then the channel. */
  close(): Promise<void>;
}

type EventHandler = (ev: string, data: unknown) => void;

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

class Host {
  private worker: Worker | undefined;
  private readonly handlers = new Map<number, EventHandler>();
  private readonly pending = new Map<string, Pending>();
  private nextCh = 1;
  private nextSeq = 1;
  private ping: ReturnType<typeof setInterval> | undefined;

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_URL);
    w.addEventListener("message", (ev: MessageEvent<FromWorker>) => this.onMessage(ev.data));
    w.addEventListener("error", (ev: ErrorEvent) => {
      // The worker died: every waiting call fails; proxies see their channel as gone.
      for (const [k, p] of this.pending) {
        this.pending.delete(k);
        p.reject(new Error(`the timing worker failed: ${ev.message}`));
      }
    });
    w.unref();
    this.worker = w;
    this.ping = setInterval(() => this.send({ op: "ping" }), PING_MS);
    this.ping.unref?.();
    return w;
  }

  private send(m: ToWorker): void {
    this.worker?.postMessage(m);
  }

  private onMessage(m: FromWorker): void {
    if (m.op === "ready") return;
    if (m.op === "priority") {
      workerPriority = m.priority;
      return;
    }
    if (m.op === "event") {
      this.handlers.get(m.ch)?.(m.ev, m.data);
      return;
    }
    if (m.op !== "reply") return;
    const key = `${m.ch}/${m.seq}`;
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    if (m.ok) p.resolve(m.value);
    else p.reject(fromWire(m.error));
  }

  open(kind: ServiceKind, init: unknown, onEvent: EventHandler): Channel {
    const w = this.ensure();
    const ch = this.nextCh++;
    this.handlers.set(ch, onEvent);
    w.postMessage({ op: "open", ch, kind, init } satisfies ToWorker);
    let closed = false;
    const call = <T>(method: string, ...args: unknown[]): Promise<T> => {
      if (closed) return Promise.reject(new Error(`${kind}: closed`));
      const seq = this.nextSeq++;
      return new Promise<T>((resolve, reject) => {
        this.pending.set(`${ch}/${seq}`, { resolve: resolve as (v: unknown) => void, reject });
        this.send({ op: "call", ch, seq, method, args });
      });
    };
    return {
      call,
      post: (method, ...args) => {
        if (!closed) this.send({ op: "post", ch, method, args });
      },
      close: async () => {
        if (closed) return;
        const seq = this.nextSeq++;
        const done = new Promise<unknown>((resolve, reject) => {
          this.pending.set(`${ch}/${seq}`, { resolve, reject });
        });
        this.send({ op: "close", ch, seq });
        closed = true;
        await done.catch(() => {});
        this.handlers.delete(ch);
        if (this.handlers.size === 0) this.stop();
      },
    };
  }

  private stop(): void {
    clearInterval(this.ping);
    this.ping = undefined;
    this.worker?.terminate();
    this.worker = undefined;
  }
}

function fromWire(e: WireError): Error {
  return new TimingCallError(e.name, e.message, e.problems);
}

/**
 * One worker ("timing") for every service by default. With VIPD_ANNOUNCE_WORKER=1 the announcer
 * gets a second one ("announce"): a takeover of 5,000 VIPs sends 10,000 frames per step, which
 * then does not sit between two heartbeats (not the default until a lab run shows the gain).
 */
const hosts = new Map<"timing" | "announce", Host>();
let workerPriority: string | undefined;

/** The scheduling the timing worker got ("SCHED_RR 10", "nice -10", "default"); undefined before its first critical service. */
export function timingWorkerPriority(): string | undefined {
  return workerPriority;
}

/** Opens a service of `kind` in the process's timing worker (started on first use). */
export function openTimingChannel(kind: ServiceKind, init: unknown, onEvent: EventHandler): Channel {
  const group = process.env.VIPD_ANNOUNCE_WORKER === "1" && kind === "announcer" ? "announce" : "timing";
  let h = hosts.get(group);
  if (h === undefined) {
    h = new Host();
    hosts.set(group, h);
  }
  return h.open(kind, init, onEvent);
}
