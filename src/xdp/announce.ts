/**
 * Takeover announcements: gratuitous ARP (request and reply, RFC 5227 §3) for IPv4 VIPs and
 * unsolicited Neighbor Advertisements with Override set (RFC 4861 §7.2.6) for IPv6 VIPs, sent at
 * once and repeated on a short schedule, so neighbours move their caches to the new owner even
 * if the first frames are lost. Losing a VIP cancels its pending repeats at once.
 *
 * The sending and the clock are injected (`send(ifindex, frame)`, `clock`), so the schedule is
 * tested without sockets and without sleeping; `packetSender()` is the real sender (AF_PACKET via
 * bun:ffi). In `vipd run` the Announcer lives in the timing worker (src/xdp/remote.ts).
 */

import type { Ip } from "../util/ip.ts";
import { announcementFrames } from "./frames.ts";
import { PacketSocket } from "./libbpf.ts";

/** Milliseconds after takeover at which the announcement is sent. */
export const ANNOUNCE_SCHEDULE_MS: readonly number[] = [0, 500, 1000, 2000, 4000];

export type SendFrame = (ifindex: number, frame: Uint8Array) => void;

/** The Announcer's clock: monotonic milliseconds and one-shot timers (default: the real ones). */
export interface AnnounceClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const REAL_CLOCK: AnnounceClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** What the XDP driver needs of an announcer (this one, or RemoteAnnouncer in src/xdp/remote.ts). */
export interface AnnounceSink {
  readonly sent: number;
  readonly failed: number;
  readonly lastError: string | null;
  announce(ifindex: number, ip: Ip, mac: Uint8Array): void;
  cancel(ifindex: number, ip: Ip): void;
  pending(): number;
  stop(): void;
}

interface Job {
  ifindex: number;
  frames: Uint8Array[];
  /** When the takeover happened (ms, performance.now()). */
  t0: number;
  /** Index of the next schedule step to send. */
  next: number;
}

/**
 * Announces VIPs on a schedule with one timer for all of them, so taking over 10,000 VIPs at
 * once costs 10,000 entries, not 40,000 timers.
 */
export class Announcer implements AnnounceSink {
  private readonly jobs = new Map<string, Job>();
  private timer: unknown = null;
  private timerAt = Number.POSITIVE_INFINITY;
  /** Frames sent, and sends that failed (with the last error). */
  sent = 0;
  failed = 0;
  lastError: string | null = null;

  constructor(
    private readonly send: SendFrame,
    private readonly scheduleMs: readonly number[] = ANNOUNCE_SCHEDULE_MS,
    private readonly clock: AnnounceClock = REAL_CLOCK,
  ) {}

  private key(ifindex: number, ip: Ip): string {
    return `${ifindex}/${ip.family}/${ip.value.toString(16)}`;
  }

  private fire(job: Job): void {
    for (const f of job.frames) {
      try {
        this.send(job.ifindex, f);
        this.sent++;
      } catch (e) {
        this.failed++;
        this.lastError = e instanceof Error ? e.message : String(e);
      }
    }
  }

  /** Sends every step that is due, drops finished jobs, and re-arms the timer for the next one. */
  private tick = (): void => {
    this.timer = null;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = this.clock.now();
    let nextDue = Number.POSITIVE_INFINITY;
    for (const [key, job] of this.jobs) {
      while (job.next < this.scheduleMs.length && job.t0 + this.scheduleMs[job.next]! <= now + 1) {
        this.fire(job);
        job.next++;
      }
      if (job.next >= this.scheduleMs.length) this.jobs.delete(key);
      else nextDue = Math.min(nextDue, job.t0 + this.scheduleMs[job.next]!);
    }
    this.arm(nextDue);
  };

  private arm(due: number): void {
    if (due === Number.POSITIVE_INFINITY || due >= this.timerAt) return;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timerAt = due;
    this.timer = this.clock.setTimeout(this.tick, Math.max(0, due - this.clock.now()));
  }

  /** Announces `ip` at `mac` on `ifindex` now and on the schedule (restarting it if pending). */
  announce(ifindex: number, ip: Ip, mac: Uint8Array): void {
    const key = this.key(ifindex, ip);
    this.jobs.delete(key);
    const job: Job = { ifindex, frames: announcementFrames(mac, ip), t0: this.clock.now(), next: 0 };
    while (job.next < this.scheduleMs.length && this.scheduleMs[job.next]! <= 0) {
      this.fire(job);
      job.next++;
    }
    if (job.next < this.scheduleMs.length) {
      this.jobs.set(key, job);
      this.arm(job.t0 + this.scheduleMs[job.next]!);
    }
  }

  /** Stops the pending repeats for one VIP. */
  cancel(ifindex: number, ip: Ip): void {
    this.jobs.delete(this.key(ifindex, ip));
  }

  /** VIPs with repeats still pending. */
  pending(): number {
    return this.jobs.size;
  }

  stop(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Number.POSITIVE_INFINITY;
    this.jobs.clear();
  }
}

/** A sender over AF_PACKET sockets, one per interface, opened on first use. */
export function packetSender(): { send: SendFrame; close(): void } {
  const sockets = new Map<number, PacketSocket>();
  return {
    send(ifindex, frame) {
      let s = sockets.get(ifindex);
      if (s === undefined) {
        s = new PacketSocket(ifindex);
        sockets.set(ifindex, s);
      }
      s.send(frame);
    },
    close() {
      for (const s of sockets.values()) s.close();
      sockets.clear();
    },
  };
}
