/**
 * The thin native layer under the XDP driver: libbpf.so.1 (map access, BPF_PROG_RUN, XDP
 * attach queries) and a few libc calls (AF_PACKET sockets, CLOCK_MONOTONIC), via `bun:ffi`.
 *
 * Every failing call throws a `BpfError` carrying the operation and the errno, so callers can
 * tell ENOENT (not pinned) from EPERM (not root) without parsing text. Nothing here keeps state
 * except the lazily opened libraries.
 */

import { dlopen, FFIType, ptr, toArrayBuffer } from "bun:ffi";

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  7: "E2BIG",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  22: "EINVAL",
  24: "EMFILE",
  28: "ENOSPC",
  38: "ENOSYS",
  95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT",
  100: "ENETDOWN",
  524: "ENOTSUPP",
};

/** A failed native call: `op` names the call (and its object), `errno` the reason. */
export class BpfError extends Error {
  readonly op: string;
  readonly errno: number;
  readonly code: string;
  constructor(op: string, errno: number, detail?: string) {
    const code = ERRNO_NAMES[errno] ?? `errno ${errno}`;
    super(`${op} failed: ${code}${detail ? ` (${detail})` : ""}`);
    this.name = "BpfError";
    this.op = op;
    this.errno = errno;
    this.code = code;
  }
}

const u32 = FFIType.u32;
const i32 = FFIType.i32;
const P = FFIType.ptr;
const u64 = FFIType.u64;
const usize = FFIType.u64;

function openBpf() {
  return dlopen("libbpf.so.1", {
    bpf_obj_get: { args: [P], returns: i32 },
    bpf_obj_pin: { args: [i32, P], returns: i32 },
    bpf_map_update_elem: { args: [i32, P, P, u64], returns: i32 },
    bpf_map_delete_elem: { args: [i32, P], returns: i32 },
    bpf_map_update_batch: { args: [i32, P, P, P, P], returns: i32 },
    bpf_map_delete_batch: { args: [i32, P, P, P], returns: i32 },
    bpf_map_lookup_batch: { args: [i32, P, P, P, P, P, P], returns: i32 },
    bpf_map_lookup_elem: { args: [i32, P, P], returns: i32 },
    bpf_map_get_next_key: { args: [i32, P, P], returns: i32 },
    bpf_map_get_fd_by_id: { args: [u32], returns: i32 },
    bpf_prog_get_fd_by_id: { args: [u32], returns: i32 },
    bpf_obj_get_info_by_fd: { args: [i32, P, P], returns: i32 },
    bpf_prog_test_run_opts: { args: [i32, P], returns: i32 },
    bpf_xdp_query: { args: [i32, i32, P], returns: i32 },
    libbpf_num_possible_cpus: { args: [], returns: i32 },
  });
}

function openLibc() {
  return dlopen("libc.so.6", {
    socket: { args: [i32, i32, i32], returns: i32 },
    sendto: { args: [i32, P, usize, i32, P, u32], returns: FFIType.i64 },
    close: { args: [i32], returns: i32 },
    if_nametoindex: { args: [P], returns: u32 },
    clock_gettime: { args: [i32, P], returns: i32 },
    __errno_location: { args: [], returns: P },
  });
}

let bpfLib: ReturnType<typeof openBpf> | null = null;
let libcLib: ReturnType<typeof openLibc> | null = null;

function bpf() {
  bpfLib ??= openBpf();
  return bpfLib.symbols;
}

function libc() {
  libcLib ??= openLibc();
  return libcLib.symbols;
}

function lastErrno(): number {
  const loc = libc().__errno_location();
  if (loc === null) return 0;
  return new Int32Array(toArrayBuffer(loc, 0, 4))[0] ?? 0;
}

export function cstr(s: string): Uint8Array {
  return new TextEncoder().encode(`${s}\0`);
}

/** libbpf returns -errno on failure (libbpf 1.x strict mode). */
function check(op: string, rc: number): number {
  if (rc < 0) throw new BpfError(op, -rc);
  return rc;
}

export function objGet(path: string): number {
  return check(`bpf_obj_get ${path}`, bpf().bpf_obj_get(cstr(path)));
}

export function objPin(fd: number, path: string): void {
  check(`bpf_obj_pin ${path}`, bpf().bpf_obj_pin(fd, cstr(path)));
}

export function mapUpdate(fd: number, key: Uint8Array, value: Uint8Array, op = "map update"): void {
  check(op, bpf().bpf_map_update_elem(fd, key, value, 0));
}

/** Updates `count` consecutive keys and values in one syscall (BPF_MAP_UPDATE_BATCH). */
export function mapUpdateBatch(
  fd: number,
  keys: Uint8Array,
  values: Uint8Array,
  count: number,
  op = "map update batch",
): void {
  const n = Uint32Array.of(count);
  check(op, bpf().bpf_map_update_batch(fd, keys, values, n, null));
}

/**
 * Every entry of a hash map, `chunk` at a time (BPF_MAP_LOOKUP_BATCH): calls `each` with the
 * keys and values buffers and the number of entries in them.
 */
export function mapLookupAll(
  fd: number,
  keySize: number,
  valueSize: number,
  each: (keys: Uint8Array, values: Uint8Array, count: number) => void,
  chunk = 4096,
  op = "map lookup batch",
): void {
  const keys = new Uint8Array(chunk * keySize);
  const values = new Uint8Array(chunk * valueSize);
  const inTok = new Uint8Array(Math.max(8, keySize));
  const outTok = new Uint8Array(Math.max(8, keySize));
  const n = new Uint32Array(1);
  let first = true;
  for (;;) {
    n[0] = chunk;
    const rc = bpf().bpf_map_lookup_batch(fd, first ? null : inTok, outTok, keys, values, n, null);
    if (rc < 0 && rc !== -2) check(op, rc);
    if (n[0]! > 0) each(keys, values, n[0]!);
    if (rc === -2) return; // ENOENT: that was the last batch
    inTok.set(outTok);
    first = false;
  }
}

/** Deletes `count` consecutive keys in one syscall; every key must exist (ENOENT otherwise). */
export function mapDeleteBatch(fd: number, keys: Uint8Array, count: number, op = "map delete batch"): void {
  const n = Uint32Array.of(count);
  check(op, bpf().bpf_map_delete_batch(fd, keys, n, null));
}

/** Deletes a key; returns false when it was not there. */
export function mapDelete(fd: number, key: Uint8Array, op = "map delete"): boolean {
  const rc = bpf().bpf_map_delete_elem(fd, key);
  if (rc === -2) return false;
  check(op, rc);
  return true;
}

/** Looks a key up into `value`; returns false when absent. */
export function mapLookup(fd: number, key: Uint8Array, value: Uint8Array, op = "map lookup"): boolean {
  const rc = bpf().bpf_map_lookup_elem(fd, key, value);
  if (rc === -2) return false;
  check(op, rc);
  return true;
}

/** Every key of a map (keys of `keySize` bytes), via get_next_key. */
export function mapKeys(fd: number, keySize: number, op = "map iterate"): Uint8Array[] {
  const keys: Uint8Array[] = [];
  let cur: Uint8Array | null = null;
  for (;;) {
    const next = new Uint8Array(keySize);
    const rc = bpf().bpf_map_get_next_key(fd, cur, next);
    if (rc === -2) return keys;
    check(op, rc);
    keys.push(next);
    cur = next;
  }
}

export function mapFdById(id: number): number {
  return check(`bpf_map_get_fd_by_id ${id}`, bpf().bpf_map_get_fd_by_id(id));
}

export function progFdById(id: number): number {
  return check(`bpf_prog_get_fd_by_id ${id}`, bpf().bpf_prog_get_fd_by_id(id));
}

/** id, name and map ids of a loaded program (struct bpf_prog_info, the fields we need). */
export function progInfo(fd: number): { id: number; name: string; mapIds: number[] } {
  const mapIds = new Uint32Array(16);
  const info = new Uint8Array(232); // sizeof(struct bpf_prog_info) in 6.x uapi is 232
  const dv = new DataView(info.buffer);
  dv.setUint32(52, mapIds.length, true); // nr_map_ids
  dv.setBigUint64(56, BigInt(ptr(mapIds)), true); // map_ids
  const len = new Uint32Array([info.length]);
  check("bpf_obj_get_info_by_fd", bpf().bpf_obj_get_info_by_fd(fd, info, len));
  const nameBytes = info.subarray(64, 80);
  const end = nameBytes.indexOf(0);
  const name = new TextDecoder().decode(nameBytes.subarray(0, end < 0 ? 16 : end));
  const n = Math.min(dv.getUint32(52, true), mapIds.length);
  return { id: dv.getUint32(4, true), name, mapIds: [...mapIds.subarray(0, n)] };
}

/** id and name of a loaded map (struct bpf_map_info: id at 4, name[16] at 24). */
export function mapInfo(fd: number): { id: number; name: string } {
  const info = new Uint8Array(96);
  const len = new Uint32Array([info.length]);
  check("bpf_obj_get_info_by_fd", bpf().bpf_obj_get_info_by_fd(fd, info, len));
  const nameBytes = info.subarray(24, 40);
  const end = nameBytes.indexOf(0);
  return {
    id: new DataView(info.buffer).getUint32(4, true),
    name: new TextDecoder().decode(nameBytes.subarray(0, end < 0 ? 16 : end)),
  };
}

export function possibleCpus(): number {
  return check("libbpf_num_possible_cpus", bpf().libbpf_num_possible_cpus());
}

export interface TestRun {
  retval: number;
  data: Uint8Array;
  durationNs: number;
}

/**
 * BPF_PROG_RUN: runs the program on `frame` (no attachment). `ingressIfindex` sets
 * xdp_md.ingress_ifindex (the device must exist in the caller's namespace; 0 = loopback).
 */
export function progTestRun(
  progFd: number,
  frame: Uint8Array,
  opts: { repeat?: number; ingressIfindex?: number } = {},
): TestRun {
  const out = new Uint8Array(Math.max(256, frame.length + 64));
  const ctx = new Uint32Array(6); // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
  const o = new Uint8Array(80);
  const dv = new DataView(o.buffer);
  dv.setBigUint64(0, 80n, true);
  dv.setBigUint64(8, BigInt(ptr(frame)), true);
  dv.setBigUint64(16, BigInt(ptr(out)), true);
  dv.setUint32(24, frame.length, true);
  dv.setUint32(28, out.length, true);
  if (opts.ingressIfindex) {
    ctx[1] = frame.length; // data_end
    ctx[3] = opts.ingressIfindex;
    dv.setBigUint64(32, BigInt(ptr(ctx)), true);
    dv.setUint32(48, ctx.byteLength, true);
  }
  dv.setInt32(60, opts.repeat ?? 1, true);
  check("bpf_prog_test_run", bpf().bpf_prog_test_run_opts(progFd, o));
  return {
    retval: dv.getUint32(56, true),
    data: out.slice(0, dv.getUint32(28, true)),
    durationNs: dv.getUint32(64, true),
  };
}

export type XdpAttachMode = "none" | "native" | "generic" | "offload" | "multi";

/** The XDP program attached to an interface (bpf_xdp_query). */
export function xdpQuery(ifindex: number): { progId: number; mode: XdpAttachMode } {
  const o = new Uint8Array(32);
  const dv = new DataView(o.buffer);
  dv.setBigUint64(0, 32n, true);
  check(`bpf_xdp_query ifindex ${ifindex}`, bpf().bpf_xdp_query(ifindex, 0, o));
  const modes: XdpAttachMode[] = ["none", "native", "generic", "offload", "multi"];
  return { progId: dv.getUint32(8, true), mode: modes[o[24] ?? 0] ?? "none" };
}

export function ifNameToIndex(name: string): number {
  const idx = libc().if_nametoindex(cstr(name));
  if (idx === 0) throw new BpfError(`if_nametoindex ${name}`, lastErrno() || 19);
  return idx;
}

/** CLOCK_MONOTONIC in nanoseconds: the clock of bpf_ktime_get_ns(). */
export function monotonicNs(): bigint {
  const ts = new BigInt64Array(2);
  if (libc().clock_gettime(1, ts) !== 0) throw new BpfError("clock_gettime", lastErrno());
  return ts[0]! * 1_000_000_000n + ts[1]!;
}

export function closeFd(fd: number): void {
  if (fd >= 0) libc().close(fd);
}

const AF_PACKET = 17;
const SOCK_RAW = 3;
const ETH_P_ALL_BE = 0x0300; // htons(0x0003)

/** A raw AF_PACKET socket that sends whole Ethernet frames out of one interface. */
export class PacketSocket {
  private fd: number;
  private readonly addr: Uint8Array;

  constructor(ifindex: number) {
    // Protocol 0: send-only, receives nothing.
    const fd = libc().socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) throw new BpfError("socket(AF_PACKET)", lastErrno());
    this.fd = fd;
    // struct sockaddr_ll: family u16, protocol be16, ifindex i32, hatype u16, pkttype u8, halen u8, addr[8]
    this.addr = new Uint8Array(20);
    const dv = new DataView(this.addr.buffer);
    dv.setUint16(0, AF_PACKET, true);
    dv.setUint16(2, ETH_P_ALL_BE, true);
    dv.setInt32(4, ifindex, true);
    this.addr[11] = 6;
  }

  send(frame: Uint8Array): void {
    if (this.fd < 0) throw new BpfError("sendto", 9, "socket closed");
    const n = libc().sendto(this.fd, frame, frame.length, 0, this.addr, this.addr.length);
    if (Number(n) < 0) throw new BpfError("sendto(AF_PACKET)", lastErrno());
  }

  close(): void {
    closeFd(this.fd);
    this.fd = -1;
  }
}
