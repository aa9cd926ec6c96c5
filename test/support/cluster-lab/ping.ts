/**
 * Lab helper (tests, benchmark, demo): clients that trust their neighbour cache, and a capture
 * of the announcements they receive.
 *
 * - `Pinger`: the real `ping` (iputils) of a client namespace, IPv4 or IPv6, every 10 ms, with
 *   the arrival time of every reply (`-D`, wall clock in ms). Unlike arping or a probe that asks
 *   afresh, ping sends to whatever MAC the kernel's neighbour entry holds: a node that takes a
 *   VIP without announcing it is not found until that entry times out (LAB.md).
 * - `Announcements`: tcpdump in a namespace, recording every gratuitous ARP (sender IP = target
 *   IP) and every Neighbor Advertisement with the sender's MAC, so a test can say which node
 *   announced which VIP, and when.
 *
 * Both are bounded in time by their own arguments and stopped by the Lab (by PID) at the latest.
 */

import type { Subprocess } from "bun";
import type { Lab } from "../netns.ts";

/** Reads a stream line by line into `onLine`, until it ends. */
async function lines(stream: unknown, onLine: (l: string) => void): Promise<void> {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of stream as ReadableStream<Uint8Array>) {
    buf += dec.decode(chunk, { stream: true });
    let i = buf.indexOf("\n");
    while (i >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
      i = buf.indexOf("\n");
    }
  }
}

/** One `ping -D -i 0.01` to `ip` from namespace `ns`, for at most `seconds`. */
export class Pinger {
  /** Arrival times of the replies (ms since the epoch, from ping's own -D stamps). */
  readonly replies: number[] = [];
  readonly proc: Subprocess;
  readonly done: Promise<void>;
  readonly startedAt = Date.now();

  constructor(
    readonly lab: Lab,
    readonly ns: string,
    readonly ip: string,
    seconds: number,
    intervalS = 0.01,
  ) {
    const v6 = ip.includes(":");
    this.proc = lab.spawn(
      ns,
      ["ping", ...(v6 ? ["-6"] : ["-4"]), "-D", "-n", "-i", String(intervalS), "-w", String(seconds), ip],
      { stdout: "pipe", stderr: "ignore" },
    );
    this.done = lines(this.proc.stdout, (l) => {
      const m = /^\[(\d+\.\d+)\] \d+ bytes from/.exec(l);
      if (m) this.replies.push(Number(m[1]) * 1000);
    }).catch(() => {});
  }

  get label(): string {
    return `${this.ns} → ${this.ip}`;
  }

  /** Replies that arrived at or after `t` (ms since the epoch). */
  since(t: number): number[] {
    return this.replies.filter((x) => x >= t);
  }

  /** The longest silence between replies within [from, to] (the edges count as replies). */
  maxGap(from: number, to: number): number {
    const xs = [from, ...this.replies.filter((x) => x > from && x < to), to];
    let gap = 0;
    for (let i = 1; i < xs.length; i++) gap = Math.max(gap, (xs[i] as number) - (xs[i - 1] as number));
    return gap;
  }

  /** The longest silence between replies, from the last reply before `t` to the first one after. */
  gapAround(t: number): number {
    const before = this.replies.filter((x) => x < t).at(-1) ?? t;
    const after = this.replies.find((x) => x >= t);
    if (after === undefined) return Number.POSITIVE_INFINITY;
    return this.maxGap(before, after);
  }

  async stop(): Promise<void> {
    await this.lab.stop(this.proc, "SIGINT", 1000);
    await this.done;
  }
}

export interface Announcement {
  /** Capture time, ms since the epoch. */
  t: number;
  /** Sender MAC (lower case). */
  mac: string;
  /** The announced address. */
  ip: string;
  kind: "garp-request" | "garp-reply" | "na";
}

/**
 * Gratuitous ARP (request or reply with sender IP = target IP) and Neighbor Advertisements seen
 * on `ifname` in namespace `ns` (tcpdump, line-buffered, bounded by `seconds`).
 */
export class Announcements {
  readonly seen: Announcement[] = [];
  readonly proc: Subprocess;
  readonly done: Promise<void>;
  private readyResolve: (() => void) | undefined;
  /** Resolves once tcpdump listens. */
  readonly ready: Promise<void>;

  constructor(
    readonly lab: Lab,
    readonly ns: string,
    seconds: number,
    ifname = "eth0",
  ) {
    this.ready = new Promise((r) => {
      this.readyResolve = r;
    });
    this.proc = lab.spawn(
      ns,
      [
        "timeout",
        "-s",
        "INT",
        String(seconds),
        "tcpdump",
        "-i",
        ifname,
        "-n",
        "-l",
        "-e",
        "-tt",
        "--immediate-mode",
        "arp or (icmp6 and ip6[40] == 136)",
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    void lines(this.proc.stderr, (l) => {
      if (l.includes("listening on")) this.readyResolve?.();
    }).catch(() => {});
    this.done = lines(this.proc.stdout, (l) => this.parse(l)).catch(() => {});
  }

  private parse(l: string): void {
    const head = /^(\d+\.\d+) ([0-9a-f:]{17}) > /i.exec(l);
    if (!head) return;
    const t = Number(head[1]) * 1000;
    const mac = (head[2] as string).toLowerCase();
    const req = /Request who-has (\S+) tell (\S+),/.exec(l);
    if (req && req[1] === req[2]) {
      this.seen.push({ t, mac, ip: req[1] as string, kind: "garp-request" });
      return;
    }
    const rep = /Reply (\S+) is-at [0-9a-f:]{17},/i.exec(l);
    if (rep && / > ff:ff:ff:ff:ff:ff,/i.test(l)) {
      this.seen.push({ t, mac, ip: rep[1] as string, kind: "garp-reply" });
      return;
    }
    const na = /neighbor advertisement, tgt is (\S+?),/.exec(l);
    if (na) this.seen.push({ t, mac, ip: na[1] as string, kind: "na" });
  }

  /** Announcements of `ip` by `mac` at or after `t`. */
  by(mac: string, ip: string, t = 0): Announcement[] {
    return this.seen.filter((a) => a.mac === mac.toLowerCase() && a.ip === ip && a.t >= t);
  }

  async stop(): Promise<void> {
    await this.lab.stop(this.proc, "SIGINT", 1000);
    await this.done;
  }
}
