/**
 * The byte layout shared with src/xdp/arp_responder.c: map keys and values, the liveness
 * record and the counter indexes. Pure: values in, bytes out (and back).
 *
 * Keep in step with the C side: `struct vip_key` (24 bytes: ifindex u32 host order, family u8,
 * 3 zero bytes, 16 address bytes, IPv4 in the first 4), `struct vip_val` (MAC + 2 zero bytes),
 * `struct liveness` (two u64, host order), `enum counter`.
 */

import { formatIp, type Ip, parseIp } from "../util/ip.ts";

/** Counter names in `enum counter` order (index = array position). */
export const COUNTERS = [
  "seen",
  "arp_requests",
  "arp_replies",
  "ns_requests",
  "na_replies",
  "pass_not_arp_or_nd",
  "pass_truncated",
  "pass_vlan_stacked",
  "pass_arp_bad_hw",
  "pass_arp_bad_proto",
  "pass_arp_not_request",
  "pass_arp_gratuitous",
  "pass_ns_bad_hoplimit",
  "pass_ns_bad_code",
  "pass_ns_bad_length",
  "pass_ns_bad_checksum",
  "pass_ns_bad_target",
  "pass_ns_bad_option",
  "pass_ns_bad_dad",
  "pass_ns_bad_dest",
  "pass_ns_bad_source",
  "pass_not_owned",
  "pass_stale",
  "pass_adjust_failed",
] as const;

export type CounterName = (typeof COUNTERS)[number];

/** A pass reason: every counter whose name starts with `pass_`, without the prefix. */
export type PassReason = StripPass<CounterName>;
type StripPass<T> = T extends `pass_${infer R}` ? R : never;

export const VIP_KEY_SIZE = 24;
export const VIP_VAL_SIZE = 8;
export const LIVENESS_SIZE = 16;

/** One owned VIP as the program sees it. */
export interface VipEntry {
  ifindex: number;
  ip: Ip;
  mac: Uint8Array; // 6 bytes
}

export function encodeVipKey(ifindex: number, ip: Ip): Uint8Array {
  const key = new Uint8Array(VIP_KEY_SIZE);
  writeVipKey(new DataView(key.buffer), 0, ifindex, ip);
  return key;
}

/** Writes a key at `off` of `dv` (all 24 bytes: padding and unused address bytes zeroed). */
export function writeVipKey(dv: DataView, off: number, ifindex: number, ip: Ip): void {
  dv.setUint32(off, ifindex, true);
  dv.setUint32(off + 4, ip.family, true); // family, then three zero bytes
  if (ip.family === 4) {
    dv.setUint32(off + 8, Number(ip.value), false);
    for (let i = 12; i < 24; i += 4) dv.setUint32(off + i, 0);
    return;
  }
  dv.setBigUint64(off + 8, ip.value >> 64n, false);
  dv.setBigUint64(off + 16, ip.value & 0xffffffffffffffffn, false);
}

export function decodeVipKey(key: Uint8Array): { ifindex: number; ip: Ip } {
  return readVipKey(new DataView(key.buffer, key.byteOffset, key.byteLength), 0);
}

/** Reads the key at `off` of `dv` (the inverse of writeVipKey). */
export function readVipKey(dv: DataView, off: number): { ifindex: number; ip: Ip } {
  const family = dv.getUint8(off + 4);
  const ifindex = dv.getUint32(off, true);
  if (family === 4) return { ifindex, ip: { family: 4, value: BigInt(dv.getUint32(off + 8, false)) } };
  if (family === 6) {
    const value = (dv.getBigUint64(off + 8, false) << 64n) | dv.getBigUint64(off + 16, false);
    return { ifindex, ip: { family: 6, value } };
  }
  throw new RangeError(`vip key has family ${family}`);
}

export function encodeVipVal(mac: Uint8Array): Uint8Array {
  const v = new Uint8Array(VIP_VAL_SIZE);
  v.set(mac.subarray(0, 6));
  return v;
}

export function encodeLiveness(heartbeatNs: bigint, windowNs: bigint): Uint8Array {
  const v = new Uint8Array(LIVENESS_SIZE);
  const dv = new DataView(v.buffer);
  dv.setBigUint64(0, heartbeatNs, true);
  dv.setBigUint64(8, windowNs, true);
  return v;
}

export function decodeLiveness(v: Uint8Array): { heartbeatNs: bigint; windowNs: bigint } {
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  return { heartbeatNs: dv.getBigUint64(0, true), windowNs: dv.getBigUint64(8, true) };
}

/** Parses `aa:bb:cc:dd:ee:ff` (or `-` separated); null when it is not a MAC. */
export function parseMac(s: string): Uint8Array | null {
  const parts = s.trim().split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) return null;
  return Uint8Array.from(parts.map((p) => Number.parseInt(p, 16)));
}

export function formatMac(mac: Uint8Array): string {
  return [...mac.subarray(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** Stable text identity of an entry's key, for diffs: `ifindex/ip`. */
export function entryId(ifindex: number, ip: Ip): string {
  return `${ifindex}/${formatIp(ip)}`;
}

/** Parses an address for the map; throws a clear error when it is not one. */
export function vipAddress(s: string): Ip {
  const ip = parseIp(s);
  if (ip === null) throw new RangeError(`"${s}" is not an IP address`);
  return ip;
}
