/**
 * The XDP driver's timing-critical parts in the timing worker (src/node/timing-worker.ts): the
 * liveness refresh (the responder stops answering when the stamp is older than its window) and
 * the takeover announcements (GARP / unsolicited NA repeated on a schedule). From the worker,
 * neither waits for the main thread's work: a long plan or a flood of API requests can no longer
 * let the stamp go stale (the data path falls silent) or delay a repeat.
 *
 * The worker opens its own map descriptors (by the pinned paths) and AF_PACKET sockets. Where
 * that fails (checked once when opening), the caller keeps the same work on the main thread.
 */

import { openTimingChannel } from "../timing/host.ts";
import { formatIp, type Ip } from "../util/ip.ts";
import type { AnnounceSink } from "./announce.ts";

/** The liveness refresh, every `periodMs`, from the worker. Null when the worker cannot do it. */
export async function remoteLiveness(
  pinDir: string,
  windowMs: number,
  periodMs: number,
): Promise<{ close(): Promise<void> } | null> {
  const ch = openTimingChannel("xdp-liveness", { pinDir, windowMs, periodMs }, () => {});
  try {
    await ch.call("refresh");
    return { close: () => ch.close() };
  } catch {
    await ch.close();
    return null;
  }
}

interface Stats {
  sent: number;
  failed: number;
  lastError: string | null;
  pending: number;
}

/**
 * Announcements sent by the worker. Calls are batched per turn of the event loop (a takeover of
 * 5,000 VIPs is one message); counters come back with each batch's answer.
 */
export class RemoteAnnouncer implements AnnounceSink {
  private stats: Stats = { sent: 0, failed: 0, lastError: null, pending: 0 };
  private batch: { announce: [number, string, Uint8Array][]; cancel: [number, string][] } | undefined;

  private constructor(private readonly ch: ReturnType<typeof openTimingChannel>) {}

  /** Null when the worker cannot send (the caller then announces from this thread). */
  static async open(scheduleMs?: readonly number[]): Promise<RemoteAnnouncer | null> {
    const ch = openTimingChannel("announcer", scheduleMs ? { scheduleMs: [...scheduleMs] } : {}, () => {});
    try {
      await ch.call("stats");
      return new RemoteAnnouncer(ch);
    } catch {
      await ch.close();
      return null;
    }
  }

  get sent(): number {
    return this.stats.sent;
  }
  get failed(): number {
    return this.stats.failed;
  }
  get lastError(): string | null {
    return this.stats.lastError;
  }

  private queue(): NonNullable<RemoteAnnouncer["batch"]> {
    if (this.batch === undefined) {
      const b = { announce: [], cancel: [] } as NonNullable<RemoteAnnouncer["batch"]>;
      this.batch = b;
      queueMicrotask(() => this.flush());
    }
    return this.batch;
  }

  private flush(): void {
    const b = this.batch;
    this.batch = undefined;
    if (b === undefined) return;
    // Cancels first: an announce in the same batch (a VIP removed and added again) wins.
    if (b.cancel.length > 0)
      this.ch.call<Stats>("cancel", b.cancel).then(
        (s) => this.take(s),
        () => {},
      );
    if (b.announce.length > 0)
      this.ch.call<Stats>("announce", b.announce).then(
        (s) => this.take(s),
        () => {},
      );
  }

  private take(s: Stats): void {
    this.stats = s;
  }

  announce(ifindex: number, ip: Ip, mac: Uint8Array): void {
    const b = this.queue();
    const text = formatIp(ip);
    // A cancel queued earlier in this batch is overridden by this announce.
    b.cancel = b.cancel.filter(([i, t]) => i !== ifindex || t !== text);
    b.announce.push([ifindex, text, mac]);
  }

  cancel(ifindex: number, ip: Ip): void {
    const b = this.queue();
    const text = formatIp(ip);
    b.announce = b.announce.filter(([i, t]) => i !== ifindex || t !== text);
    b.cancel.push([ifindex, text]);
  }

  pending(): number {
    return this.stats.pending;
  }

  stop(): void {
    this.flush();
    void this.ch.close();
  }
}
