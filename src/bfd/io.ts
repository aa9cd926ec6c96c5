/**
 * BFD sockets: the thin driver under the manager (RFC 5881 single-hop, RFC 5883 multihop).
 *
 * - Receive: one dual-stack UDP socket per port (3784 single-hop, 4784 multihop) bound to `::`.
 *   A classic-BPF socket filter (SO_ATTACH_FILTER through bun:ffi) enforces the TTL rule in the
 *   kernel: single-hop delivers only TTL/hop limit 255 (RFC 5881 §5, GTSM); multihop delivers a
 *   peer's packets only when their TTL is at least that peer's `minimumTtl` (RFC 5883 §5).
 *   IP_MINTTL does not filter UDP on Linux, hence the filter.
 * - Transmit: one UDP socket per session, bound to the session's local address (or the
 *   wildcard) and a source port in 49152–65535 (RFC 5881 §4), TTL/hop limit 255, optionally bound
 *   to an interface (SO_BINDTODEVICE).
 */

import { dlopen, FFIType, ptr } from "bun:ffi";
import { parseIp } from "../util/ip.ts";

export const PORT_SINGLE_HOP = 3784;
export const PORT_MULTIHOP = 4784;

const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_BINDTODEVICE = 25;
const SO_RCVBUFFORCE = 33;
/** Receive buffer for the shared receive sockets: a 100 ms stall at 10k packets/s fits. */
const RX_BUFFER_BYTES = 4 << 20;
const SO_ATTACH_FILTER = 26;
const IPPROTO_IPV6 = 41;
const IPV6_UNICAST_HOPS = 16;
/** Linux SKF_NET_OFF: BPF loads relative to the network header. */
const SKF_NET_OFF = -0x100000;

let libc: ReturnType<typeof openLibc> | null = null;
function openLibc() {
  return dlopen("libc.so.6", {
    setsockopt: {
      args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32],
      returns: FFIType.i32,
    },
  });
}
function trySetsockopt(fd: number, level: number, opt: number, value: Uint8Array): boolean {
  libc ??= openLibc();
  return libc.symbols.setsockopt(fd, level, opt, ptr(value), value.length) === 0;
}
function setsockopt(fd: number, level: number, opt: number, value: Uint8Array): void {
  if (!trySetsockopt(fd, level, opt, value)) {
    throw new Error(`setsockopt(level ${level}, option ${opt}) failed on fd ${fd}`);
  }
}
function int32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
}

function socketFd(s: object): number {
  const fd = (s as { fd?: unknown }).fd;
  if (typeof fd !== "number" || fd < 0) throw new Error("Bun UDP socket exposes no file descriptor");
  return fd;
}

/** One classic-BPF instruction (struct sock_filter). */
interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}
const LD_B_ABS = 0x30;
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const AND_K = 0x54;
const RET_K = 0x06;
const ACCEPT = 0x40000;

const ins = (code: number, k: number, jt = 0, jf = 0): Insn => ({ code, jt, jf, k: k >>> 0 });

/** A source-address rule for the multihop filter. */
export interface TtlRule {
  peer: string;
  minTtl: number;
}

/**
 * The filter program: for single-hop (`rules === null`) accept only TTL/hop limit 255; for
 * multihop accept a packet only when its source matches a rule and its TTL is ≥ the rule's minimum.
 * Handles IPv4 and IPv6 (the socket is dual-stack). Exported for tests.
 */
export function ttlFilter(rules: TtlRule[] | null): Insn[] {
  // Branch on the IP version nibble.
  const v4: Insn[] = [];
  const v6: Insn[] = [];
  if (rules === null) {
    v4.push(ins(LD_B_ABS, SKF_NET_OFF + 8), ins(JEQ_K, 255, 0, 1), ins(RET_K, ACCEPT), ins(RET_K, 0));
    v6.push(ins(LD_B_ABS, SKF_NET_OFF + 7), ins(JEQ_K, 255, 0, 1), ins(RET_K, ACCEPT), ins(RET_K, 0));
  } else {
    for (const r of rules) {
      const ip = parseIp(r.peer.replace(/^::ffff:(?=\d+\.)/i, ""));
      if (!ip) throw new Error(`bad peer address ${r.peer}`);
      const words = ip.family === 4 ? 1 : 4;
      const target = ip.family === 4 ? v4 : v6;
      const srcOff = ip.family === 4 ? 12 : 8;
      const block: Insn[] = [];
      for (let i = 0; i < words; i++) {
        const w = Number((ip.value >> BigInt(32 * (words - 1 - i))) & 0xffffffffn);
        const jf = 2 * words + 2 - 2 * i;
        block.push(ins(LD_W_ABS, SKF_NET_OFF + srcOff + 4 * i), ins(JEQ_K, w, 0, jf));
      }
      block.push(
        ins(LD_B_ABS, SKF_NET_OFF + (ip.family === 4 ? 8 : 7)),
        ins(JGE_K, r.minTtl, 0, 1),
        ins(RET_K, ACCEPT),
        ins(RET_K, 0),
      );
      target.push(...block);
    }
    v4.push(ins(RET_K, 0));
    v6.push(ins(RET_K, 0));
  }
  // ldb [net+0]; and #0xf0; jeq #0x40 → v4 block, else v6 block.
  const head = [ins(LD_B_ABS, SKF_NET_OFF), ins(AND_K, 0xf0), ins(JEQ_K, 0x40, 0, v4.length)];
  const prog = [...head, ...v4, ...v6];
  if (prog.length > 4096) throw new Error("too many multihop peers for one socket filter");
  for (const i of prog) if (i.jf > 255 || i.jt > 255) throw new Error("filter jump out of range");
  return prog;
}

function attachFilter(fd: number, prog: Insn[]): void {
  const insns = new Uint8Array(prog.length * 8);
  const dv = new DataView(insns.buffer);
  prog.forEach((p, i) => {
    dv.setUint16(i * 8, p.code, true);
    dv.setUint8(i * 8 + 2, p.jt);
    dv.setUint8(i * 8 + 3, p.jf);
    dv.setUint32(i * 8 + 4, p.k, true);
  });
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; } (x86_64: 16 bytes).
  const fprog = new Uint8Array(16);
  const fv = new DataView(fprog.buffer);
  fv.setUint16(0, prog.length, true);
  fv.setBigUint64(8, BigInt(ptr(insns)), true);
  setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog);
}

/**
 * Bun 1.4.5 calls a UDP socket's `error` handler with the error as the FIRST argument (its
 * typings say `(socket, error)`); accept either order.
 */
function pickError(a: unknown, b: unknown): Error {
  if (a instanceof Error) return a;
  if (b instanceof Error) return b;
  return new Error(String(a ?? b));
}

export type RxHandler = (payload: Uint8Array, from: string, fromPort: number) => void;

/** Strips the IPv4-mapped prefix a dual-stack socket reports. */
export function plainAddress(a: string): string {
  return a.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "");
}

export class RxSocket {
  private constructor(
    private readonly sock: Bun.udp.Socket<"uint8array">,
    readonly port: number,
  ) {}

  /** Binds `[::]:port` (dual-stack) with the TTL filter in place before any packet is read. */
  static async open(
    port: number,
    rules: TtlRule[] | null,
    onPacket: RxHandler,
    onError: (err: Error) => void,
  ): Promise<RxSocket> {
    const sock = await Bun.udpSocket({
      hostname: "::",
      port,
      binaryType: "uint8array",
      socket: {
        data: (_s, data, fromPort, from) => onPacket(data, plainAddress(from), fromPort),
        // Errors queued on the socket (ICMP) must not escape as uncaught exceptions.
        error: (a: unknown, b: unknown) => onError(pickError(a, b)),
      },
    });
    try {
      const fd = socketFd(sock);
      attachFilter(fd, ttlFilter(rules));
      // Many sessions share this socket: a big buffer rides out a stalled event loop. FORCE
      // needs CAP_NET_ADMIN; without it the kernel's rmem_max caps the plain option.
      if (!trySetsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, int32(RX_BUFFER_BYTES))) {
        trySetsockopt(fd, SOL_SOCKET, SO_RCVBUF, int32(RX_BUFFER_BYTES));
      }
    } catch (e) {
      sock.close();
      throw e;
    }
    return new RxSocket(sock, port);
  }

  /** Replaces the multihop rules (SO_ATTACH_FILTER swaps the program atomically). */
  setRules(rules: TtlRule[] | null): void {
    attachFilter(socketFd(this.sock), ttlFilter(rules));
  }

  close(): void {
    this.sock.close();
  }
}

export class TxSocket {
  private constructor(
    private readonly sock: Bun.udp.Socket<"uint8array">,
    readonly srcPort: number,
  ) {}

  /**
   * Opens the per-session transmit socket: source port drawn from 49152–65535 (retrying when
   * taken), TTL/hop limit 255 (another `ttl` only for tests that forge packets).
   */
  static async open(
    family: 4 | 6,
    local: string | undefined,
    ifname: string | undefined,
    onError: (err: Error) => void,
    ttl = 255,
  ): Promise<TxSocket> {
    const hostname = local ?? (family === 4 ? "0.0.0.0" : "::");
    let lastErr: unknown;
    for (let attempt = 0; attempt < 64; attempt++) {
      const port = 49152 + Math.floor(Math.random() * 16384);
      let sock: Bun.udp.Socket<"uint8array">;
      try {
        // ICMP port unreachable (the peer is not listening yet) arrives as ECONNREFUSED on the
        // socket's error queue: normal for BFD, reported to onError, never thrown.
        sock = await Bun.udpSocket({
          hostname,
          port,
          binaryType: "uint8array",
          socket: { error: (a: unknown, b: unknown) => onError(pickError(a, b)) },
        });
      } catch (e) {
        // Only a taken port is worth another draw; anything else (address not configured) is final.
        if ((e as { code?: string }).code !== "EADDRINUSE") {
          throw new Error(`cannot open a BFD socket on ${hostname}: ${String(e)}`);
        }
        lastErr = e;
        continue;
      }
      try {
        sock.setTTL(ttl);
        const fd = socketFd(sock);
        if (family === 6) setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, int32(ttl));
        if (ifname) setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, new TextEncoder().encode(`${ifname}\0`));
      } catch (e) {
        sock.close();
        throw e;
      }
      return new TxSocket(sock, port);
    }
    throw new Error(`no free BFD source port on ${hostname}: ${String(lastErr)}`);
  }

  send(bytes: Uint8Array, port: number, peer: string): boolean {
    return this.sock.send(bytes, port, peer);
  }

  close(): void {
    this.sock.close();
  }
}
