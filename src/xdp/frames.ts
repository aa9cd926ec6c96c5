/**
 * Ethernet frames for address resolution, built as bytes: ARP (RFC 826, gratuitous ARP per
 * RFC 5227 §3), IPv6 Neighbor Solicitation / Advertisement (RFC 4861 §4.3, §4.4, §7.2.6) with
 * the ICMPv6 checksum (RFC 4443 §2.3 over the RFC 8200 §8.1 pseudo-header), optionally with
 * one 802.1Q tag.
 *
 * Pure: the announcer sends these, and the program tests use them to declare requests and the
 * exact replies expected from the XDP program. Builders take every field the tests need to
 * craft malformed frames; defaults give the well-formed frame.
 */

import { type Ip, ipToBytes, parseIp } from "../util/ip.ts";

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_8021Q = 0x8100;
export const IPPROTO_ICMPV6 = 58;
export const ND_NS = 135;
export const ND_NA = 136;
export const NA_FLAG_S = 0x40;
export const NA_FLAG_O = 0x20;

export const BROADCAST_MAC = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
export const ZERO_MAC = new Uint8Array(6);
export const ALL_NODES: Ip = parseIp("ff02::1")!;
export const UNSPECIFIED6: Ip = { family: 6, value: 0n };

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Ethernet header, with one 802.1Q tag (VLAN id, priority 0) when `vlan` is given. */
export function ethHeader(dst: Uint8Array, src: Uint8Array, ethertype: number, vlan?: number): Uint8Array {
  const h = new Uint8Array(vlan === undefined ? 14 : 18);
  writeEth(h, dst, src, ethertype, vlan);
  return h;
}

/** Writes the Ethernet header at the start of `frame`; returns its length. */
function writeEth(
  frame: Uint8Array,
  dst: Uint8Array,
  src: Uint8Array,
  ethertype: number,
  vlan?: number,
): number {
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  frame.set(dst.subarray(0, 6), 0);
  frame.set(src.subarray(0, 6), 6);
  if (vlan === undefined) {
    dv.setUint16(12, ethertype);
    return 14;
  }
  dv.setUint16(12, ETH_P_8021Q);
  dv.setUint16(14, vlan & 0x0fff);
  dv.setUint16(16, ethertype);
  return 18;
}

export interface ArpFields {
  ethDst: Uint8Array;
  ethSrc: Uint8Array;
  vlan?: number;
  op: number;
  sha: Uint8Array;
  spa: Ip;
  tha: Uint8Array;
  tpa: Ip;
  htype?: number;
  ptype?: number;
  hlen?: number;
  plen?: number;
  /** Pads the frame with zeros to this length (60: the Ethernet minimum without FCS). */
  padTo?: number;
}

export function arpFrame(f: ArpFields): Uint8Array {
  const l2 = f.vlan === undefined ? 14 : 18;
  const frame = new Uint8Array(Math.max(l2 + 28, f.padTo ?? 0));
  writeEth(frame, f.ethDst, f.ethSrc, ETH_P_ARP, f.vlan);
  const dv = new DataView(frame.buffer);
  dv.setUint16(l2, f.htype ?? 1);
  dv.setUint16(l2 + 2, f.ptype ?? ETH_P_IP);
  frame[l2 + 4] = f.hlen ?? 6;
  frame[l2 + 5] = f.plen ?? 4;
  dv.setUint16(l2 + 6, f.op);
  frame.set(f.sha.subarray(0, 6), l2 + 8);
  frame.set(f.tha.subarray(0, 6), l2 + 18);
  if (f.spa.family === 4 && f.tpa.family === 4) {
    dv.setUint32(l2 + 14, Number(f.spa.value));
    dv.setUint32(l2 + 24, Number(f.tpa.value));
  } else {
    frame.set(ipToBytes(f.spa).subarray(0, 4), l2 + 14);
    frame.set(ipToBytes(f.tpa).subarray(0, 4), l2 + 24);
  }
  return frame;
}

/** A broadcast ARP request: who has `target`? tell `ip` (at `mac`). */
export function arpRequest(o: {
  mac: Uint8Array;
  ip: Ip;
  target: Ip;
  vlan?: number;
  padTo?: number;
}): Uint8Array {
  return arpFrame({
    ethDst: BROADCAST_MAC,
    ethSrc: o.mac,
    vlan: o.vlan,
    op: 1,
    sha: o.mac,
    spa: o.ip,
    tha: ZERO_MAC,
    tpa: o.target,
    padTo: o.padTo,
  });
}

/** The reply the owner of `vip` sends to a requester (`peerMac`, `peerIp`). */
export function arpReply(o: {
  ownerMac: Uint8Array;
  vip: Ip;
  peerMac: Uint8Array;
  peerIp: Ip;
  vlan?: number;
  padTo?: number;
}): Uint8Array {
  return arpFrame({
    ethDst: o.peerMac,
    ethSrc: o.ownerMac,
    vlan: o.vlan,
    op: 2,
    sha: o.ownerMac,
    spa: o.vip,
    tha: o.peerMac,
    tpa: o.peerIp,
    padTo: o.padTo,
  });
}

/**
 * Gratuitous ARP announcing `ip` at `mac`, broadcast: the request form (RFC 5227 ARP
 * Announcement: sender and target IP both `ip`) or the reply form (older stacks only learn from
 * replies).
 */
export function gratuitousArp(mac: Uint8Array, ip: Ip, op: "request" | "reply", vlan?: number): Uint8Array {
  return arpFrame({
    ethDst: BROADCAST_MAC,
    ethSrc: mac,
    vlan,
    op: op === "request" ? 1 : 2,
    sha: mac,
    spa: ip,
    tha: op === "request" ? ZERO_MAC : BROADCAST_MAC,
    tpa: ip,
    padTo: 60,
  });
}

/** ff02::1:ffXX:XXXX for an IPv6 address (RFC 4291 §2.7.1). */
export function solicitedNode(ip: Ip): Ip {
  return { family: 6, value: parseIp("ff02::1:ff00:0")!.value | (ip.value & 0xffffffn) };
}

/** The Ethernet address of an IPv6 multicast group (RFC 2464 §7). */
export function multicastMac(group: Ip): Uint8Array {
  const b = ipToBytes(group);
  return Uint8Array.of(0x33, 0x33, b[12]!, b[13]!, b[14]!, b[15]!);
}

/** One's-complement sum of 16-bit words (RFC 1071), not folded or inverted. */
function sum16(bytes: Uint8Array, acc = 0): number {
  let s = acc;
  for (let i = 0; i + 1 < bytes.length; i += 2) s += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length % 2 === 1) s += bytes[bytes.length - 1]! << 8;
  return s;
}

function fold(s: number): number {
  let x = s;
  while (x > 0xffff) x = (x & 0xffff) + Math.floor(x / 0x10000);
  return x;
}

/** ICMPv6 checksum of `icmp` (its checksum field taken as it is) between `src` and `dst`. */
export function icmp6Checksum(src: Ip, dst: Ip, icmp: Uint8Array): number {
  const pseudo = new Uint8Array(40);
  pseudo.set(ipToBytes(src), 0);
  pseudo.set(ipToBytes(dst), 16);
  new DataView(pseudo.buffer).setUint32(32, icmp.length);
  pseudo[39] = IPPROTO_ICMPV6;
  return ~fold(sum16(icmp, sum16(pseudo))) & 0xffff;
}

export interface NdOption {
  type: number;
  /** Length in 8-octet units as written on the wire; defaults to the real length. */
  len?: number;
  data: Uint8Array; // the bytes after type and length
}

export function llaOption(type: 1 | 2, mac: Uint8Array): NdOption {
  return { type, data: mac.subarray(0, 6) };
}

export interface NdFields {
  ethDst?: Uint8Array; // default: the multicast MAC of a multicast dst, else required
  ethSrc: Uint8Array;
  vlan?: number;
  src: Ip;
  dst: Ip;
  hopLimit?: number;
  type: number;
  code?: number;
  flags?: number;
  target: Ip;
  options?: NdOption[];
  /** Overrides the computed checksum. */
  checksum?: number;
  /** Overrides the IPv6 payload length. */
  payloadLength?: number;
  /** Next header of the IPv6 header (58 unless testing). */
  nextHeader?: number;
}

/** An IPv6 Neighbor Discovery message (NS or NA) in an Ethernet frame. */
export function ndFrame(f: NdFields): Uint8Array {
  const opts = (f.options ?? []).map((o) => {
    const b = new Uint8Array(Math.ceil((o.data.length + 2) / 8) * 8);
    b[0] = o.type;
    b[1] = o.len ?? b.length / 8;
    b.set(o.data, 2);
    return b;
  });
  const body = new Uint8Array(24);
  body[0] = f.type;
  body[1] = f.code ?? 0;
  body[4] = f.flags ?? 0;
  body.set(ipToBytes(f.target), 8);
  const icmp = concat(body, ...opts);
  const csum = f.checksum ?? icmp6Checksum(f.src, f.dst, icmp);
  new DataView(icmp.buffer).setUint16(2, csum);
  const ip6 = new Uint8Array(40);
  const dv = new DataView(ip6.buffer);
  dv.setUint32(0, 0x60000000);
  dv.setUint16(4, f.payloadLength ?? icmp.length);
  ip6[6] = f.nextHeader ?? IPPROTO_ICMPV6;
  ip6[7] = f.hopLimit ?? 255;
  ip6.set(ipToBytes(f.src), 8);
  ip6.set(ipToBytes(f.dst), 24);
  const ethDst = f.ethDst ?? multicastMac(f.dst);
  return concat(ethHeader(ethDst, f.ethSrc, ETH_P_IPV6, f.vlan), ip6, icmp);
}

/**
 * A Neighbor Solicitation from `mac`/`src` for `target`, to its solicited-node group unless
 * `dst` is given. With `src` unspecified (::) it is a DAD probe and carries no source
 * link-layer option (RFC 4862 §5.4.2); otherwise it carries one unless `sll` is false.
 */
export function neighborSolicitation(o: {
  mac: Uint8Array;
  src: Ip;
  target: Ip;
  dst?: Ip;
  ethDst?: Uint8Array;
  sll?: boolean;
  hopLimit?: number;
  vlan?: number;
  options?: NdOption[];
}): Uint8Array {
  const dad = o.src.value === 0n;
  const sll = o.sll ?? !dad;
  return ndFrame({
    ethSrc: o.mac,
    ethDst: o.ethDst,
    vlan: o.vlan,
    src: o.src,
    dst: o.dst ?? solicitedNode(o.target),
    hopLimit: o.hopLimit,
    type: ND_NS,
    target: o.target,
    options: o.options ?? (sll ? [llaOption(1, o.mac)] : []),
  });
}

/** A Neighbor Advertisement from the owner of `target`, with its target link-layer option. */
export function neighborAdvertisement(o: {
  ownerMac: Uint8Array;
  target: Ip;
  dstMac: Uint8Array;
  dst: Ip;
  flags: number;
  vlan?: number;
}): Uint8Array {
  return ndFrame({
    ethDst: o.dstMac,
    ethSrc: o.ownerMac,
    vlan: o.vlan,
    src: o.target,
    dst: o.dst,
    type: ND_NA,
    flags: o.flags,
    target: o.target,
    options: [llaOption(2, o.ownerMac)],
  });
}

/** An unsolicited NA to all-nodes with Override set (RFC 4861 §7.2.6): "`ip` is at `mac` now". */
export function unsolicitedNa(mac: Uint8Array, ip: Ip, vlan?: number): Uint8Array {
  return neighborAdvertisement({
    ownerMac: mac,
    target: ip,
    dstMac: multicastMac(ALL_NODES),
    dst: ALL_NODES,
    flags: NA_FLAG_O,
    vlan,
  });
}

/** The announcement frames for one VIP: GARP request + reply for IPv4, one NA for IPv6. */
export function announcementFrames(mac: Uint8Array, ip: Ip): Uint8Array[] {
  if (ip.family === 4) return [gratuitousArp(mac, ip, "request"), gratuitousArp(mac, ip, "reply")];
  return [unsolicitedNa(mac, ip)];
}
