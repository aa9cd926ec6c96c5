/**
 * The membership heartbeat: a small authenticated UDP datagram each vipd node sends to every
 * other member of its site, many times a second. Pure codec: bytes in, a value or a named drop
 * reason out.
 *
 * Wire format (big-endian):
 *   0  "VIPH"            magic
 *   4  u8  version (1)
 *   5  u8  flags         bit 0: leaving (a clean shutdown: drop me at once)
 *   6  u16 interval      the sender's transmit interval, ms
 *   8  u64 seq           strictly increasing per sender, across restarts (µs wall clock based)
 *  16  u8  nameLen, name (UTF-8, 1..253 bytes)
 *   …  32 bytes HMAC-SHA256(key, everything before it)
 *
 * Authentication: without the site's shared key nobody can join or forge liveness; replay is
 * refused by the receiver, which accepts only a seq greater than the last one it took from that
 * sender (see membership.ts).
 */

import { createHmac, timingSafeEqual } from "node:crypto";

export const MAGIC = 0x56495048; // "VIPH"
export const VERSION = 1;
const MAC_LEN = 32;

export interface Heartbeat {
  node: string;
  seq: bigint;
  intervalMs: number;
  leaving: boolean;
}

export type HeartbeatDrop = "TooShort" | "BadMagic" | "BadVersion" | "BadName" | "BadLength" | "BadMac";

export type Decoded = { ok: true; hb: Heartbeat } | { ok: false; reason: HeartbeatDrop };

function mac(key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", key).update(data).digest());
}

export function encodeHeartbeat(hb: Heartbeat, key: Uint8Array): Uint8Array {
  const name = new TextEncoder().encode(hb.node);
  if (name.length < 1 || name.length > 253) throw new RangeError("node name must be 1..253 bytes");
  const body = new Uint8Array(17 + name.length);
  const v = new DataView(body.buffer);
  v.setUint32(0, MAGIC);
  v.setUint8(4, VERSION);
  v.setUint8(5, hb.leaving ? 1 : 0);
  v.setUint16(6, Math.min(0xffff, Math.max(1, Math.round(hb.intervalMs))));
  v.setBigUint64(8, hb.seq);
  v.setUint8(16, name.length);
  body.set(name, 17);
  const out = new Uint8Array(body.length + MAC_LEN);
  out.set(body, 0);
  out.set(mac(key, body), body.length);
  return out;
}

/** Checks in order: length, magic, version, name, total length, MAC. */
export function decodeHeartbeat(buf: Uint8Array, key: Uint8Array): Decoded {
  if (buf.length < 17 + 1 + MAC_LEN) return { ok: false, reason: "TooShort" };
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (v.getUint32(0) !== MAGIC) return { ok: false, reason: "BadMagic" };
  if (v.getUint8(4) !== VERSION) return { ok: false, reason: "BadVersion" };
  const nameLen = v.getUint8(16);
  if (nameLen < 1 || nameLen > 253) return { ok: false, reason: "BadName" };
  if (buf.length !== 17 + nameLen + MAC_LEN) return { ok: false, reason: "BadLength" };
  const body = buf.subarray(0, 17 + nameLen);
  const want = mac(key, body);
  if (!timingSafeEqual(want, buf.subarray(17 + nameLen))) return { ok: false, reason: "BadMac" };
  let node: string;
  try {
    node = new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(17, 17 + nameLen));
  } catch {
    return { ok: false, reason: "BadName" };
  }
  return {
    ok: true,
    hb: { node, seq: v.getBigUint64(8), intervalMs: v.getUint16(6), leaving: (v.getUint8(5) & 1) === 1 },
  };
}
