/**
 * Typed access to the responder's pinned program and maps: owned VIPs, the liveness record and
 * the per-CPU counters (layout in src/xdp/layout.ts), plus BPF_PROG_RUN on the program.
 *
 * Opens pins under a directory on bpffs (default /sys/fs/bpf/vipd). Every failure is a
 * `BpfError` naming the operation and the errno.
 */

import type { Ip } from "../util/ip.ts";
import {
  COUNTERS,
  type CounterName,
  decodeLiveness,
  encodeLiveness,
  LIVENESS_SIZE,
  readVipKey,
  VIP_KEY_SIZE,
  VIP_VAL_SIZE,
  type VipEntry,
  writeVipKey,
} from "./layout.ts";
import {
  closeFd,
  mapDelete,
  mapLookup,
  mapLookupAll,
  mapUpdate,
  mapUpdateBatch,
  objGet,
  possibleCpus,
  progTestRun,
  type TestRun,
} from "./libbpf.ts";

export const DEFAULT_PIN_DIR = "/sys/fs/bpf/vipd";
export const MAP_NAMES = ["vips", "liveness", "counters"] as const;
export const PROG_PIN = "prog";

export class XdpMaps {
  private closed = false;
  private readonly ncpus: number;
  private readonly key = new Uint8Array(VIP_KEY_SIZE);
  private readonly keyView = new DataView(this.key.buffer);
  private readonly val = new Uint8Array(VIP_VAL_SIZE);

  private constructor(
    readonly pinDir: string,
    readonly progFd: number,
    readonly vipsFd: number,
    readonly livenessFd: number,
    readonly countersFd: number,
  ) {
    this.ncpus = possibleCpus();
  }

  /** Opens the pinned program and maps under `pinDir`; throws BpfError (ENOENT) when absent. */
  static open(pinDir = DEFAULT_PIN_DIR): XdpMaps {
    const fds: number[] = [];
    try {
      for (const name of [PROG_PIN, ...MAP_NAMES]) fds.push(objGet(`${pinDir}/${name}`));
      const [prog, vips, liveness, counters] = fds as [number, number, number, number];
      return new XdpMaps(pinDir, prog, vips, liveness, counters);
    } catch (e) {
      for (const fd of fds) closeFd(fd);
      throw e;
    }
  }

  setVip(ifindex: number, ip: Ip, mac: Uint8Array): void {
    writeVipKey(this.keyView, 0, ifindex, ip);
    this.val.set(mac.subarray(0, 6));
    mapUpdate(this.vipsFd, this.key, this.val, "update vips");
  }

  /** Adds or updates many VIPs with one BPF_MAP_UPDATE_BATCH syscall per 4096 entries. */
  setVips(entries: readonly VipEntry[]): void {
    const CHUNK = 4096;
    for (let at = 0; at < entries.length; at += CHUNK) {
      const part = entries.slice(at, at + CHUNK);
      const keys = new Uint8Array(part.length * VIP_KEY_SIZE);
      const vals = new Uint8Array(part.length * VIP_VAL_SIZE);
      const kv = new DataView(keys.buffer);
      part.forEach((e, i) => {
        writeVipKey(kv, i * VIP_KEY_SIZE, e.ifindex, e.ip);
        vals.set(e.mac.subarray(0, 6), i * VIP_VAL_SIZE);
      });
      mapUpdateBatch(this.vipsFd, keys, vals, part.length, "update vips (batch)");
    }
  }

  /** Removes one VIP; false when it was not there. */
  deleteVip(ifindex: number, ip: Ip): boolean {
    writeVipKey(this.keyView, 0, ifindex, ip);
    return mapDelete(this.vipsFd, this.key, "delete vips");
  }

  /** Every VIP in the map. */
  listVips(): VipEntry[] {
    const out: VipEntry[] = [];
    mapLookupAll(this.vipsFd, VIP_KEY_SIZE, VIP_VAL_SIZE, (keys, vals, count) => {
      const dv = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
      for (let i = 0; i < count; i++) {
        const { ifindex, ip } = readVipKey(dv, i * VIP_KEY_SIZE);
        out.push({ ifindex, ip, mac: vals.slice(i * VIP_VAL_SIZE, i * VIP_VAL_SIZE + 6) });
      }
    });
    return out;
  }

  /** Writes the heartbeat (CLOCK_MONOTONIC ns) and the window after which replies stop (0: never). */
  setLiveness(heartbeatNs: bigint, windowNs: bigint): void {
    mapUpdate(this.livenessFd, new Uint8Array(4), encodeLiveness(heartbeatNs, windowNs), "update liveness");
  }

  liveness(): { heartbeatNs: bigint; windowNs: bigint } {
    const v = new Uint8Array(LIVENESS_SIZE);
    mapLookup(this.livenessFd, new Uint8Array(4), v, "lookup liveness");
    return decodeLiveness(v);
  }

  /** Counters summed over CPUs. */
  counters(): Record<CounterName, bigint> {
    const out = {} as Record<CounterName, bigint>;
    const val = new BigUint64Array(this.ncpus);
    const valBytes = new Uint8Array(val.buffer);
    const key = new Uint32Array(1);
    COUNTERS.forEach((name, i) => {
      key[0] = i;
      val.fill(0n);
      mapLookup(this.countersFd, new Uint8Array(key.buffer), valBytes, "lookup counters");
      out[name] = val.reduce((a, b) => a + b, 0n);
    });
    return out;
  }

  /** Zeroes every counter (tests and benchmarks). */
  resetCounters(): void {
    const zero = new Uint8Array(8 * this.ncpus);
    for (let i = 0; i < COUNTERS.length; i++) {
      mapUpdate(this.countersFd, new Uint8Array(Uint32Array.of(i).buffer), zero, "reset counters");
    }
  }

  /** Runs the program on one frame through BPF_PROG_RUN (nothing attached). */
  testRun(frame: Uint8Array, opts: { repeat?: number; ingressIfindex?: number } = {}): TestRun {
    return progTestRun(this.progFd, frame, opts);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of [this.progFd, this.vipsFd, this.livenessFd, this.countersFd]) closeFd(fd);
  }
}
