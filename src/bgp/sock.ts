/**
 * The few socket options Bun does not expose, through bun:ffi → libc: creating an outgoing TCP
 * socket we can configure *before* the SYN (source address, TTL for eBGP multihop, TCP-MD5 key
 * per RFC 2385, GTSM minimum TTL per RFC 5082), then handing the fd to `Bun.connect({ fd })`;
 * and adding MD5 keys to a listener's fd. LAB.md: `Bun.connect` exposes its fd only after the SYN
 * has left, so the key must be set on a socket we made ourselves.
 */
import { dlopen, FFIType, type Pointer, ptr, read } from "bun:ffi";
import { parseIp } from "../util/ip.ts";
import { addrBytes } from "./codec/prefix.ts";

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const IPPROTO_IP = 0;
const IPPROTO_TCP = 6;
const IPPROTO_IPV6 = 41;
const IP_TTL = 2;
const IP_MINTTL = 21;
const IPV6_UNICAST_HOPS = 16;
const IPV6_MINHOPCOUNT = 73;
const TCP_MD5SIG = 14;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const EINPROGRESS = 115;
const TCP_MD5SIG_MAXKEYLEN = 80;

let lib: ReturnType<typeof open> | null = null;
function open() {
  return dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    setsockopt: {
      args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32],
      returns: FFIType.i32,
    },
    bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
    getsockopt: {
      args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr],
      returns: FFIType.i32,
    },
    __errno_location: { args: [], returns: FFIType.ptr },
    strerror: { args: [FFIType.i32], returns: FFIType.cstring },
  });
}
function libc() {
  lib ??= open();
  return lib.symbols;
}

function errno(): number {
  const p = libc().__errno_location() as Pointer | null;
  return p === null ? 0 : read.i32(p, 0);
}

function fail(what: string): Error {
  const e = errno();
  return new Error(`${what}: ${String(libc().strerror(e))} (errno ${e})`);
}

/** A sockaddr_in / sockaddr_in6 for `ip` and `port`; v4 addresses on a v6 socket become v4-mapped. */
export function sockaddr(ip: string, port: number, v6Socket: boolean): Uint8Array {
  const a = parseIp(ip);
  if (a === null) throw new Error(`"${ip}" is not an IP address`);
  if (a.family === 4 && !v6Socket) {
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setUint16(0, AF_INET, true);
    v.setUint16(2, port);
    b.set(addrBytes(4, a.value), 4);
    return b;
  }
  const b = new Uint8Array(28);
  const v = new DataView(b.buffer);
  v.setUint16(0, AF_INET6, true);
  v.setUint16(2, port);
  b.set(a.family === 4 ? addrBytes(6, 0xffff00000000n | a.value) : addrBytes(6, a.value), 8);
  return b;
}

function setInt(fd: number, level: number, opt: number, value: number, what: string): void {
  const b = new Int32Array([value]);
  if (libc().setsockopt(fd, level, opt, ptr(b), 4) !== 0) throw fail(what);
}

/**
 * Installs (or, with an empty key, removes) the RFC 2385 key for `peer` on socket `fd`.
 * `v6Socket` says whether `fd` is an AF_INET6 socket (then a v4 peer is given v4-mapped).
 */
export function setMd5Key(fd: number, peer: string, key: string, v6Socket: boolean): void {
  const k = new TextEncoder().encode(key);
  if (k.length > TCP_MD5SIG_MAXKEYLEN)
    throw new Error(`TCP-MD5 key longer than ${TCP_MD5SIG_MAXKEYLEN} bytes`);
  // struct tcp_md5sig: sockaddr_storage (128), flags u8, prefixlen u8, keylen u16, ifindex i32, key[80].
  const s = new Uint8Array(216);
  s.set(sockaddr(peer, 0, v6Socket), 0);
  new DataView(s.buffer).setUint16(130, k.length, true);
  s.set(k, 136);
  if (libc().setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, ptr(s), s.length) !== 0)
    throw fail("setsockopt(TCP_MD5SIG)");
}

/** Sets the outgoing TTL / hop limit (eBGP multihop, or 255 for GTSM). */
export function setTtl(fd: number, ttl: number, v6: boolean): void {
  if (v6) setInt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, ttl, "setsockopt(IPV6_UNICAST_HOPS)");
  else setInt(fd, IPPROTO_IP, IP_TTL, ttl, "setsockopt(IP_TTL)");
}

/** RFC 5082 GTSM: drop segments whose TTL is below `minTtl`. */
export function setMinTtl(fd: number, minTtl: number, v6: boolean): void {
  if (v6) setInt(fd, IPPROTO_IPV6, IPV6_MINHOPCOUNT, minTtl, "setsockopt(IPV6_MINHOPCOUNT)");
  else setInt(fd, IPPROTO_IP, IP_MINTTL, minTtl, "setsockopt(IP_MINTTL)");
}

export interface ConnectSpec {
  peer: string;
  port: number;
  sourceAddress?: string;
  md5Key?: string;
  ttl?: number;
  minTtl?: number;
}

/**
 * Creates a non-blocking TCP socket, applies the options, binds and starts connecting. Returns the
 * fd (connection in progress); the caller hands it to `Bun.connect({ fd })` and owns it.
 */
export function startConnect(spec: ConnectSpec): number {
  const peer = parseIp(spec.peer);
  if (peer === null) throw new Error(`"${spec.peer}" is not an IP address`);
  const v6 = peer.family === 6;
  const fd = libc().socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw fail("socket");
  try {
    if (spec.md5Key) setMd5Key(fd, spec.peer, spec.md5Key, v6);
    if (spec.ttl !== undefined) setTtl(fd, spec.ttl, v6);
    if (spec.minTtl !== undefined) setMinTtl(fd, spec.minTtl, v6);
    if (spec.sourceAddress) {
      setInt(fd, SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)");
      const sa = sockaddr(spec.sourceAddress, 0, v6);
      if (libc().bind(fd, ptr(sa), sa.length) !== 0) throw fail(`bind(${spec.sourceAddress})`);
    }
    const sa = sockaddr(spec.peer, spec.port, v6);
    if (libc().connect(fd, ptr(sa), sa.length) !== 0 && errno() !== EINPROGRESS)
      throw fail(`connect(${spec.peer})`);
    return fd;
  } catch (e) {
    libc().close(fd);
    throw e;
  }
}

/**
 * Non-blocking check of an in-progress connect: "pending", "connected", or the error text.
 * (Bun.connect({ fd }) reports "open" at once even for a connect that will fail, so the driver
 * polls this every few milliseconds before handing the fd over.)
 */
export function connectStatus(fd: number): "pending" | "connected" | { error: string } {
  const pfd = new Int32Array([fd, 4 /* POLLOUT */]);
  const n = libc().poll(ptr(pfd), 1, 0);
  if (n < 0) return { error: fail("poll").message };
  if (n === 0) return "pending";
  const v = new Int32Array(1);
  const len = new Uint32Array([4]);
  if (libc().getsockopt(fd, SOL_SOCKET, 4 /* SO_ERROR */, ptr(v), ptr(len)) !== 0)
    return { error: fail("getsockopt").message };
  const err = v[0] ?? 0;
  if (err === 0) return "connected";
  return { error: `${String(libc().strerror(err))} (errno ${err})` };
}

export function closeFd(fd: number): void {
  libc().close(fd);
}
