/**
 * The XDP driver `vipd run` calls: hand it the whole desired set of (interface, VIP, MAC) and it
 * converges the data path to it — attaches the responder where needed, programs the `vips` map
 * with the difference, announces new owners (GARP / unsolicited NA) and withdraws lost VIPs at
 * once. It refreshes the liveness heartbeat on a timer, so the program stops answering when
 * this process stops. The refresh and the announcement schedule run in the timing worker
 * (src/xdp/remote.ts), where the main thread's work cannot delay them; where the worker cannot
 * open the maps or sockets, they run on this thread as before. Program, maps and attachments are pinned and outlive the process: a
 * restarted vipd finds them and carries on without a gap.
 *
 * Every gain is announced, whatever happened meanwhile: an entry added or changed is announced;
 * the first apply after a restart (or after the program went stale) announces every entry;
 * `reannounce()` announces entries that were already in the map (a VIP regained during its
 * hand-over hold, or a member audible again); and the driver watches the carrier of every
 * interface it is attached to (sysfs `carrier` + `operstate`, polled every 100 ms): when a link
 * comes back, every VIP still owned on it `carrierSettleMs` later is announced again on the
 * takeover schedule, because the frames sent while it was down were lost (sends on a down link
 * fail and are counted as announcements_failed). The short wait lets a cluster node hear its
 * members first: if it steps back (a healed partition), it must not pull clients to a VIP it is
 * about to drop; if it keeps the VIP, the daemon announces at once anyway (a member audible
 * again, see src/appliance/daemon.ts).
 *
 * @example
 * const xdp = await XdpDriver.open({ livenessWindowMs: 30_000 });
 * await xdp.apply([{ ifname: "eth0", ip: "192.0.2.10" }, { ifname: "eth0", ip: "2001:db8::10" }]);
 * xdp.status(); // { attachments: [{ ifname: "eth0", mode: "native", ... }], entries: 2, counters }
 * await xdp.close(); // on SIGTERM; `await detachAll()` for `vipd detach`
 */

import { readFileSync } from "node:fs";
import { formatIp, type Ip, parseIp } from "../util/ip.ts";
import { Announcer, type AnnounceSink, packetSender } from "./announce.ts";
import { type CounterName, formatMac, parseMac } from "./layout.ts";
import { monotonicNs, xdpQuery } from "./libbpf.ts";
import {
  type AttachModeOption,
  adoptAttached,
  attach,
  defaultObjPath,
  detach,
  detachAll as detachAllPins,
  ensureBpffs,
  LoaderError,
  loadPinned,
  pinnedProgId,
} from "./loader.ts";
import { DEFAULT_PIN_DIR, XdpMaps } from "./maps.ts";
import { type DesiredEntry, diffEntries, type InterfaceInfo, resolveDesired } from "./plan.ts";
import { RemoteAnnouncer, remoteLiveness } from "./remote.ts";

export { BpfError } from "./libbpf.ts";
export { LoaderError } from "./loader.ts";
export type { DesiredEntry } from "./plan.ts";

/** Long enough to cover a restart of vipd; short enough that a hung vipd stops attracting traffic. */
export const DEFAULT_LIVENESS_WINDOW_MS = 30_000;

export interface XdpDriverOptions {
  /** Where program and maps are pinned (default /sys/fs/bpf/vipd). */
  pinDir?: string;
  /** The compiled responder (default: $VIPD_XDP_OBJECT, next to the executable, /usr/lib/vipd, build/xdp). */
  objPath?: string;
  /** Replies stop when the heartbeat is older than this (default 30 s; 0 disables the gate). */
  livenessWindowMs?: number;
  /** Attach mode: native, generic, or native with generic fallback (default). */
  mode?: AttachModeOption;
  /** Heartbeat period (default min(1 s, window / 4)). */
  heartbeatMs?: number;
  /** Announcement schedule in ms after takeover (default 0, 500, 1000, 2000, 4000). */
  announceScheduleMs?: readonly number[];
  /** How often the carrier of attached interfaces is read (default 100 ms; 0: not watched). */
  carrierPollMs?: number;
  /** How long after a link came back its VIPs are announced again (default 500 ms). */
  carrierSettleMs?: number;
}

/** The link can carry frames: carrier present and operstate up (or unknown, as on some drivers). */
export function linkUp(ifname: string): boolean {
  try {
    const carrier = readFileSync(`/sys/class/net/${ifname}/carrier`, "utf8").trim();
    const oper = readFileSync(`/sys/class/net/${ifname}/operstate`, "utf8").trim();
    return carrier === "1" && (oper === "up" || oper === "unknown");
  } catch {
    // Reading carrier of an interface that is administratively down fails (EINVAL); gone: ENOENT.
    return false;
  }
}

/** Bad desired state: nothing was changed. */
export class XdpInputError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid XDP entries: ${problems.join("; ")}`);
    this.name = "XdpInputError";
  }
}

export interface EntryView {
  ifname: string;
  ip: string;
  mac: string;
}

export interface ApplyResult {
  added: EntryView[];
  changed: EntryView[];
  removed: { ifindex: number; ifname?: string; ip: string }[];
  unchanged: number;
  /** Interfaces the program could not be attached to (their entries are still in the map). */
  errors: { ifname: string; error: string }[];
}

/** One interface the driver attached to (or failed to: `mode` "none" and `error`). */
export interface AttachmentStatus {
  ifname: string;
  ifindex: number;
  mode: "native" | "generic" | "none";
  /** Why generic mode was used, or how an existing attachment was found. */
  reason?: string;
  /** Why attaching failed. */
  error?: string;
}

export interface XdpStatus {
  pinDir: string;
  /** Kernel id of the pinned responder program. */
  programId: number;
  /** True when this process found the program already pinned (a restart). */
  reused: boolean;
  /** Set when the pins were lost and the program was re-pinned from this interface. */
  adoptedFrom: string | null;
  attachments: AttachmentStatus[];
  entries: number;
  livenessWindowMs: number;
  counters: Record<CounterName | "announcements_sent" | "announcements_failed", bigint>;
}

interface LinkJson {
  ifindex: number;
  ifname: string;
  address?: string;
}

async function interfaces(): Promise<Map<string, InterfaceInfo>> {
  const p = Bun.spawn(["ip", "-j", "link", "show"], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  if ((await p.exited) !== 0) throw new LoaderError("ip -j link show", err);
  const m = new Map<string, InterfaceInfo>();
  for (const l of JSON.parse(out) as LinkJson[]) {
    m.set(l.ifname, { ifindex: l.ifindex, mac: parseMac(l.address ?? "") ?? new Uint8Array(6) });
  }
  return m;
}

export class XdpDriver {
  private readonly attachments = new Map<string, AttachmentStatus>();
  private queue: Promise<unknown> = Promise.resolve();
  private announcer: AnnounceSink;
  private readonly sender = packetSender();
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  /** The liveness refresh in the timing worker (null: it runs here, on heartbeatTimer). */
  private remoteLive: { close(): Promise<void> } | null = null;
  private readonly windowNs: bigint;
  private readonly names = new Map<number, string>();
  private parsed = new Map<string, Ip | null>();
  private adoptedFrom: string | null = null;
  private programId = 0;
  private announceAll = false;
  private closed = false;
  private carrierTimer: ReturnType<typeof setInterval> | null = null;
  /** Per attached interface, whether its link was up at the last look. */
  private readonly carrier = new Map<string, boolean>();
  /** Times a link came back and its VIPs were announced again. */
  carrierReturns = 0;
  /** Times entries already in the map were announced again (reannounce()). */
  reannounced = 0;
  private carrierSettleMs = 500;
  private readonly carrierTimers = new Set<ReturnType<typeof setTimeout>>();
  /**
   * Which entries a returning link announces (default all): the layer-2 driver passes the VIPs
   * this node owns, so one it is handing over is not announced.
   */
  carrierFilter: ((ip: string) => boolean) | undefined;

  private constructor(
    private readonly maps: XdpMaps,
    private readonly pinDir: string,
    private readonly mode: AttachModeOption,
    private readonly livenessWindowMs: number,
    private readonly reused: boolean,
    scheduleMs: readonly number[] | undefined,
  ) {
    this.windowNs = BigInt(Math.round(livenessWindowMs)) * 1_000_000n;
    this.announcer = new Announcer(this.sender.send, scheduleMs);
  }

  /**
   * Loads (or finds) the pinned program and maps, refreshes the heartbeat and starts its timer.
   * Finds the interfaces where a previous run attached the program, and keeps them.
   */
  static async open(opts: XdpDriverOptions = {}): Promise<XdpDriver> {
    const pinDir = opts.pinDir ?? DEFAULT_PIN_DIR;
    const window = opts.livenessWindowMs ?? DEFAULT_LIVENESS_WINDOW_MS;
    if (!(window >= 0)) throw new XdpInputError([`livenessWindowMs must be >= 0, not ${window}`]);
    await ensureBpffs(pinDir);
    const adoptedFrom = await adoptAttached(pinDir);
    const { reused } = await loadPinned(opts.objPath ?? defaultObjPath(), pinDir);
    const maps = XdpMaps.open(pinDir);
    const d = new XdpDriver(maps, pinDir, opts.mode ?? "auto", window, reused, opts.announceScheduleMs);
    d.adoptedFrom = adoptedFrom;
    // Replies stopped while no vipd was alive (or never started): neighbours may have moved to
    // another node meanwhile, so the first apply announces every entry, not only new ones.
    const prev = maps.liveness();
    d.announceAll =
      prev.heartbeatNs === 0n || (prev.windowNs > 0n && monotonicNs() - prev.heartbeatNs > prev.windowNs);
    d.programId = pinnedProgId(pinDir);
    d.heartbeat();
    const period = opts.heartbeatMs ?? Math.max(10, Math.min(1000, window > 0 ? window / 4 : 1000));
    d.remoteLive = await remoteLiveness(pinDir, window, period);
    if (d.remoteLive === null) {
      d.heartbeatTimer = setInterval(() => {
        try {
          d.heartbeat();
        } catch {
          // Maps gone (detached under us): the next apply() reports it.
        }
      }, period);
      d.heartbeatTimer.unref?.();
    }
    const remote = await RemoteAnnouncer.open(opts.announceScheduleMs);
    if (remote !== null) {
      d.announcer.stop();
      d.announcer = remote;
    }
    d.carrierSettleMs = opts.carrierSettleMs ?? 500;
    const poll = opts.carrierPollMs ?? 100;
    if (poll > 0) {
      d.carrierTimer = setInterval(() => d.watchCarrier(), poll);
      d.carrierTimer.unref?.();
    }
    if (reused) {
      const ours = pinnedProgId(pinDir);
      for (const [ifname, info] of await interfaces()) {
        d.names.set(info.ifindex, ifname);
        const q = xdpQuery(info.ifindex);
        if (q.progId === ours && (q.mode === "native" || q.mode === "generic")) {
          d.attachments.set(ifname, {
            ifname,
            ifindex: info.ifindex,
            mode: q.mode,
            reason: "attached by a previous run",
          });
        }
      }
    }
    return d;
  }

  /**
   * One look at the carrier of every attached interface: a link that came back gets every VIP
   * on it announced again (restarting the schedule). Two small sysfs reads per interface.
   */
  private watchCarrier(): void {
    if (this.closed) return;
    for (const [ifname, a] of this.attachments) {
      if (a.error !== undefined) continue;
      const up = linkUp(ifname);
      const was = this.carrier.get(ifname);
      this.carrier.set(ifname, up);
      if (up && was === false) {
        this.carrierReturns++;
        const ifindex = a.ifindex;
        const timer = setTimeout(() => {
          this.carrierTimers.delete(timer);
          if (this.closed || !linkUp(ifname)) return;
          const keep = this.carrierFilter;
          this.announceWhere((e) => e.ifindex === ifindex && (keep === undefined || keep(formatIp(e.ip))));
        }, this.carrierSettleMs);
        timer.unref?.();
        this.carrierTimers.add(timer);
      }
    }
  }

  /** Announces the map's entries that `pick` selects, now and on the schedule. */
  private announceWhere(pick: (e: { ifindex: number; ip: Ip }) => boolean): number {
    let n = 0;
    for (const e of this.maps.listVips()) {
      if (!pick(e)) continue;
      this.announcer.announce(e.ifindex, e.ip, e.mac);
      n++;
    }
    return n;
  }

  /**
   * Announces again entries already in the map (all of them, or those whose address is in
   * `ips`), on the takeover schedule. Returns how many. Serialised with apply().
   */
  async reannounce(ips?: readonly string[]): Promise<number> {
    const run = this.queue.then(() => {
      if (this.closed) return 0;
      const want =
        ips === undefined
          ? undefined
          : new Set(
              ips.map((t) => parseIp(t)).flatMap((ip) => (ip === null ? [] : [`${ip.family}/${ip.value}`])),
            );
      const n = this.announceWhere((e) => want === undefined || want.has(`${e.ip.family}/${e.ip.value}`));
      if (n > 0) this.reannounced++;
      return n;
    });
    this.queue = run.catch(() => {});
    return run;
  }

  /** Refreshes the liveness timestamp (CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns). */
  heartbeat(nowNs: bigint = monotonicNs()): void {
    this.maps.setLiveness(nowNs, this.windowNs);
  }

  /**
   * Converges to exactly `desired`: validates everything first (XdpInputError, nothing changed),
   * attaches to new interfaces, adds/changes/removes map entries, announces added and changed
   * VIPs, cancels announcements of removed ones, and detaches from interfaces left without VIPs.
   */
  async apply(desired: readonly DesiredEntry[]): Promise<ApplyResult> {
    // Calls are serialised: each one converges from the state the previous one left.
    const run = this.queue.then(() => this.applyNow(desired));
    this.queue = run.catch(() => {});
    return run;
  }

  private async applyNow(desired: readonly DesiredEntry[]): Promise<ApplyResult> {
    if (this.closed) throw new Error("XdpDriver is closed");
    const ifs = await interfaces();
    for (const [name, info] of ifs) this.names.set(info.ifindex, name);
    // Parsed addresses are kept from one apply to the next: the desired set rarely changes much.
    const cache = new Map<string, Ip | null>();
    const parse = (text: string) => {
      let ip = cache.get(text);
      if (ip === undefined) {
        ip = this.parsed.get(text) ?? parseIp(text);
        cache.set(text, ip);
      }
      return ip;
    };
    const resolved = resolveDesired(desired, (n) => ifs.get(n) ?? null, parse);
    this.parsed = cache;
    if (!resolved.ok) throw new XdpInputError(resolved.problems);
    const entries = resolved.entries;
    const diff = diffEntries(this.maps.listVips(), entries);

    // Attach before programming, so the first entry is answered as soon as it is in the map.
    const errors: ApplyResult["errors"] = [];
    const ours = pinnedProgId(this.pinDir);
    for (const ifname of new Set(entries.map((e) => e.ifname))) {
      const have = this.attachments.get(ifname);
      const modeOk = have !== undefined && (this.mode === "auto" || have.mode === this.mode);
      if (
        have !== undefined &&
        have.error === undefined &&
        modeOk &&
        xdpQuery(have.ifindex).progId === ours
      ) {
        continue;
      }
      try {
        this.attachments.set(ifname, await attach(this.pinDir, ifname, this.mode));
        if (!this.carrier.has(ifname)) this.carrier.set(ifname, linkUp(ifname));
      } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        errors.push({ ifname, error });
        const ifindex = ifs.get(ifname)?.ifindex ?? 0;
        this.attachments.set(ifname, { ifname, ifindex, mode: "none", error });
      }
    }

    for (const e of diff.remove) {
      this.maps.deleteVip(e.ifindex, e.ip);
      this.announcer.cancel(e.ifindex, e.ip);
    }
    this.maps.setVips([...diff.add, ...diff.change]);
    const announce = this.announceAll ? entries : [...diff.add, ...diff.change];
    this.announceAll = false;
    for (const e of announce) this.announcer.announce(e.ifindex, e.ip, e.mac);

    // Interfaces with no VIP left get the program removed.
    const wanted = new Set(entries.map((e) => e.ifname));
    for (const [ifname, a] of this.attachments) {
      if (wanted.has(ifname)) continue;
      if (a.error === undefined && ifs.has(ifname)) await detach(ifname, ours);
      this.attachments.delete(ifname);
      this.carrier.delete(ifname);
    }

    const view = (e: { ifname: string; ip: Parameters<typeof formatIp>[0]; mac: Uint8Array }) => ({
      ifname: e.ifname,
      ip: formatIp(e.ip),
      mac: formatMac(e.mac),
    });
    return {
      added: diff.add.map(view),
      changed: diff.change.map(view),
      removed: diff.remove.map((e) => ({
        ifindex: e.ifindex,
        ifname: this.names.get(e.ifindex),
        ip: formatIp(e.ip),
      })),
      unchanged: diff.unchanged,
      errors,
    };
  }

  /** What the data path is doing: where it is attached (and how), entries, counters. */
  status(): XdpStatus {
    const counters = {
      ...this.maps.counters(),
      announcements_sent: BigInt(this.announcer.sent),
      announcements_failed: BigInt(this.announcer.failed),
    };
    return {
      pinDir: this.pinDir,
      programId: this.programId,
      reused: this.reused,
      adoptedFrom: this.adoptedFrom,
      attachments: [...this.attachments.values()],
      entries: this.maps.listVips().length,
      livenessWindowMs: this.livenessWindowMs,
      counters,
    };
  }

  /** The entries in the map, as text. */
  entries(): { ifindex: number; ifname?: string; ip: string; mac: string }[] {
    return this.maps.listVips().map((e) => ({
      ifindex: e.ifindex,
      ifname: this.names.get(e.ifindex),
      ip: formatIp(e.ip),
      mac: formatMac(e.mac),
    }));
  }

  /** Stops timers and sockets; leaves the pinned program, maps and attachments in place. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue;
    this.closed = true;
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    await this.remoteLive?.close();
    if (this.carrierTimer !== null) clearInterval(this.carrierTimer);
    for (const t of this.carrierTimers) clearTimeout(t);
    this.carrierTimers.clear();
    this.announcer.stop();
    this.sender.close();
    this.maps.close();
  }
}

/** `vipd detach`: detaches the program from every interface of this namespace, removes pins and maps. */
export async function detachAll(pinDir: string = DEFAULT_PIN_DIR): Promise<{ detached: string[] }> {
  return detachAllPins(pinDir);
}
