/**
 * Takeover announcements: gratuitous ARP (request and reply, RFC 5227 §3) for IPv4 VIPs and
 * unsolicited Neighbor Advertisements with Override set (RFC 4861 §7.2.6) for IPv6 VIPs, sent at
 * once and repeated on a short schedule, so neighbours move their caches to the new owner even
 * if the first frames are lost. Losing a VIP cancels its pending repeats at once.
 *
 * The sending is injected (`send(ifindex, frame)`), so the schedule is tested without sockets;
 * `packetSender()` is the real one (AF_PACKET via bun:ffi).
 */

import { formatIp, type Ip } from "../util/ip.ts";
import { announcementFrames } from "./frames.ts";
import { PacketSocket } from "./libbpf.ts";

/** Milliseconds after takeover at which the announcement is sent. */
export const ANNOUNCE_SCHEDULE_MS: readonly number[] = [0, 500, 1000, 2000, 4000];

export type SendFrame = (ifindex: number, frame: Uint8Array) => void;

export class Announcer {
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>[]>();
  /** Frames sent, and sends that failed (with the last error). */
  sent = 0;
  failed = 0;
  lastError: string | null = null;

  constructor(
    private readonly send: SendFrame,
    private readonly scheduleMs: readonly number[] = ANNOUNCE_SCHEDULE_MS,
  ) {}

  private key(ifindex: number, ip: Ip): string {
    return `${ifindex}/${formatIp(ip)}`;
  }

  /** Announces `ip` at `mac` on `ifindex` now and on the schedule (restarting it if pending). */
  announce(ifindex: number, ip: Ip, mac: Uint8Array): void {
    this.cancel(ifindex, ip);
    const frames = announcementFrames(mac, ip);
    const key = this.key(ifindex, ip);
    const fire = () => {
      for (const f of frames) {
        try {
          this.send(ifindex, f);
          this.sent++;
        } catch (e) {
          this.failed++;
          this.lastError = e instanceof Error ? e.message : String(e);
        }
      }
    };
    const timers: ReturnType<typeof setTimeout>[] = [];
    for (const ms of this.scheduleMs) {
      if (ms <= 0) {
        fire();
        continue;
      }
      const t = setTimeout(() => {
        fire();
        const list = this.timers.get(key);
        if (list !== undefined) {
          list.splice(list.indexOf(t), 1);
          if (list.length === 0) this.timers.delete(key);
        }
      }, ms);
      t.unref?.();
      timers.push(t);
    }
    if (timers.length > 0) this.timers.set(key, timers);
  }

  /** Stops the pending repeats for one VIP. */
  cancel(ifindex: number, ip: Ip): void {
    const key = this.key(ifindex, ip);
    for (const t of this.timers.get(key) ?? []) clearTimeout(t);
    this.timers.delete(key);
  }

  /** VIPs with repeats still pending. */
  pending(): number {
    return this.timers.size;
  }

  stop(): void {
    for (const list of this.timers.values()) for (const t of list) clearTimeout(t);
    this.timers.clear();
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
