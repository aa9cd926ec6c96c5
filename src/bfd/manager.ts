/**
 * BfdManager: the declarative owner of every BFD session of this node (RFC 5880 asynchronous
 * mode over RFC 5881 single-hop / RFC 5883 multihop UDP), as its callers see it.
 *
 * The sessions themselves — sockets, the single timer of all sessions, the state machines —
 * run in BfdEngine (engine.ts) inside the timing worker (src/node/timing-worker.ts), where the main
 * thread's work (parsing, planning, API requests) cannot delay a transmission or a detection.
 * This class is its proxy: `setSessions` is validated here (BfdConfigError, nothing changed)
 * and applied there; "up"/"down" events come back as they happen, each with the engine's status,
 * so `isUp` and `status()` stay synchronous (status is refreshed every 250 ms between events).
 *
 * With `now` or `random` given (tests with a fake clock), the engine runs on the calling thread.
 *
 * @example
 * const bfd = new BfdManager({});
 * bfd.on("down", (key, diag) => bgp.setPeerEnabled(key, false));
 * bfd.on("up", (key) => bgp.setPeerEnabled(key, true));
 * await bfd.setSessions([{ key: "r1", peer: "10.0.0.1", multihop: false, profile: DEFAULT_PROFILE }]);
 */

import { type Channel, openTimingChannel, TimingCallError } from "../timing/host.ts";
import { DROP_REASONS, type DropReason } from "./codec.ts";
import { BfdEngine } from "./engine.ts";
import {
  BfdConfigError,
  type BfdEvent,
  type BfdListener,
  type BfdLog,
  type BfdManagerOptions,
  type BfdStatus,
  type DesiredSession,
  validateSessions,
} from "./sessions.ts";

export {
  BfdConfigError,
  type BfdEvent,
  type BfdListener,
  type BfdLog,
  type BfdManagerOptions,
  type BfdStatus,
  type DesiredSession,
  type SessionStatus,
  validateSessions,
} from "./sessions.ts";

function emptyStatus(): BfdStatus {
  return {
    sessions: [],
    drops: Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>,
    timer: {
      fires: 0,
      latenessP50Ms: 0,
      latenessP99Ms: 0,
      latenessMaxMs: 0,
      latenessMaxEverMs: 0,
      stalls: 0,
    },
    socketErrors: {},
  };
}

export class BfdManager {
  private readonly listeners: Record<BfdEvent, BfdListener[]> = { up: [], down: [] };
  private readonly log: BfdLog;
  /** The engine on this thread (a clock was given), or the worker's channel (opened on first use). */
  private readonly local: BfdEngine | undefined;
  private channel: Channel | undefined;
  private mirror: BfdStatus = emptyStatus();
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: BfdManagerOptions = {}) {
    this.log = opts.log ?? (() => {});
    if (opts.now !== undefined || opts.random !== undefined) {
      const e = new BfdEngine(opts);
      e.on("up", (k, d) => this.emit("up", k, d));
      e.on("down", (k, d) => this.emit("down", k, d));
      this.local = e;
    }
  }

  on(event: BfdEvent, cb: BfdListener): void {
    this.listeners[event].push(cb);
  }

  private emit(event: BfdEvent, key: string, diag: string): void {
    for (const cb of this.listeners[event]) cb(key, diag);
  }

  private open(): Channel {
    this.channel ??= openTimingChannel(
      "bfd",
      {
        ...(this.opts.singleHopPort !== undefined ? { singleHopPort: this.opts.singleHopPort } : {}),
        ...(this.opts.multihopPort !== undefined ? { multihopPort: this.opts.multihopPort } : {}),
      },
      (ev, data) => {
        if (this.closed && ev !== "log") return;
        if (ev === "status") this.mirror = data as BfdStatus;
        else if (ev === "log") {
          const d = data as { msg: string; fields?: Record<string, unknown> };
          this.log(d.msg, d.fields);
        } else if (ev === "up" || ev === "down") {
          const d = data as { key: string; diag: string; status: BfdStatus };
          this.mirror = d.status;
          this.emit(ev, d.key, d.diag);
        }
      },
    );
    return this.channel;
  }

  /** Whether the session `key` exists and is Up (for gating BGP on BFD). */
  isUp(key: string): boolean {
    return this.status().sessions.find((s) => s.key === key)?.state === "Up";
  }

  /**
   * Declares the whole set of sessions. Invalid input throws BfdConfigError and changes nothing.
   * Calls are serialized.
   */
  setSessions(desired: DesiredSession[]): Promise<void> {
    const problems = validateSessions(desired);
    if (problems.length > 0) return Promise.reject(new BfdConfigError(problems));
    if (this.local) return this.local.setSessions(desired);
    const run = this.chain.then(async () => {
      if (this.closed) throw new Error("BfdManager is closed");
      if (desired.length === 0 && this.channel === undefined) return;
      try {
        this.mirror = await this.open().call<BfdStatus>("setSessions", desired);
      } catch (e) {
        if (e instanceof TimingCallError && e.problems !== undefined)
          throw new BfdConfigError(e.problems ?? [e.message]);
        throw e instanceof TimingCallError ? new Error(e.message) : e;
      }
    });
    this.chain = run.catch(() => {});
    return run;
  }

  status(): BfdStatus {
    return this.local ? this.local.status() : this.mirror;
  }

  /** Announces AdminDown on every session, closes every socket. Idempotent. */
  async close(): Promise<void> {
    if (this.local) return this.local.close();
    if (this.closed) return;
    await this.chain;
    this.closed = true;
    await this.channel?.close();
    this.mirror = { ...this.mirror, sessions: [] };
  }
}
