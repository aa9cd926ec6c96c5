/**
 * The heartbeat codec of the previous vipd release (src/cluster/heartbeat.ts as of 8721987, versions
 * 1 and 2 only), frozen: what a member not yet upgraded runs. Tests check that what a new member
 * sends it still decodes, and that what it sends the new member is taken. Do not update it.
 */
/**
 * The membership heartbeat: a small authenticated UDP datagram each vipd node sends to every
 * other member of its site, many times a second. Pure codec: bytes in, a value or a named drop
 * reason out.
 *
 * Wire format (big-endian):
 *   0  "VIPH"            magic
 *   4  u8  version       1, or 2 when the sender declines VIPs (forced failover)
 *   5  u8  flags         bit 0: leaving (a clean shutdown: drop me at once)
 *                        bit 1: ready (the sender takes part in elections and owns VIPs; a
 *                               receiver ignores bits it does not know)
 *                        bit 2: settled (the sender's data path matches its latest plan: every
 *                               VIP it gained is programmed and announced; the old owner of a
 *                               VIP handed over to it stops answering on seeing this, make
 *                               before break — src/plan/handover.ts)
 *   6  u16 interval      the sender's transmit interval, ms
 *   8  u64 seq           strictly increasing per sender, across restarts (µs wall clock based)
 *  16  u8  nameLen, name (UTF-8, 1..253 bytes)
 *   version 2 only:
 *   …  u8  count (0..MAX_DECLINES), then per declined VIP:
 *        u8 family (4 | 6), 4 or 16 address bytes, u8 toLen (0: no preferred node), to (UTF-8)
 *   …  32 bytes HMAC-SHA256(key, everything before it)
 *
 * A node with nothing declined sends version 1, so members still running the first format keep
 * understanding it; a version-2 datagram is sent only while a decline is in force.
 *
 * Authentication: without the site's shared key nobody can join or forge liveness; replay is
 * refused by the receiver, which accepts only a seq greater than the last one it took from that
 * sender (see membership.ts).
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { formatIp, ipFromBytes, ipToBytes, parseIp } from "../../src/util/ip.ts";

export const MAGIC = 0x56495048; // "VIPH"
export const VERSION = 1;
export const VERSION_DECLINES = 2;
/** At most this many declined VIPs travel in one heartbeat (the datagram stays well under 1500 bytes). */
export const MAX_DECLINES = 16;
const MAC_LEN = 32;

/** "I step back from the VIP `ip`" (forced failover), optionally in favour of node `to`. */
export interface Decline {
  ip: string;
  to?: string | undefined;
}

export interface Heartbeat {
  node: string;
  seq: bigint;
  intervalMs: number;
  leaving: boolean;
  /** The sender is ready: it owns the VIPs it wins (not holding back after a start or pause). */
  ready?: boolean | undefined;
  /** The sender has applied its latest plan: every VIP it gained is programmed and announced. */
  settled?: boolean | undefined;
  /** VIPs the sender declines; absent or empty in a version-1 heartbeat. */
  declines?: readonly Decline[] | undefined;
}

export type HeartbeatDrop =
  | "TooShort"
  | "BadMagic"
  | "BadVersion"
  | "BadName"
  | "BadLength"
  | "BadDecline"
  | "BadMac";

export type Decoded = { ok: true; hb: Heartbeat } | { ok: false; reason: HeartbeatDrop };

const enc = new TextEncoder();

function mac(key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", key).update(data).digest());
}

function nameBytes(s: string, what: string): Uint8Array {
  const b = enc.encode(s);
  if (b.length < 1 || b.length > 253) throw new RangeError(`${what} must be 1..253 bytes`);
  return b;
}

export function encodeHeartbeat(hb: Heartbeat, key: Uint8Array): Uint8Array {
  const name = nameBytes(hb.node, "node name");
  const declines = hb.declines ?? [];
  if (declines.length > MAX_DECLINES) throw new RangeError(`at most ${MAX_DECLINES} declined VIPs`);
  const parts: Uint8Array[] = [];
  for (const d of declines) {
    const ip = parseIp(d.ip);
    if (ip === null) throw new RangeError(`declined VIP ${JSON.stringify(d.ip)} is not an IP address`);
    const to = d.to === undefined ? new Uint8Array(0) : nameBytes(d.to, "preferred node name");
    const addr = ipToBytes(ip);
    const p = new Uint8Array(2 + addr.length + to.length);
    p[0] = ip.family;
    p.set(addr, 1);
    p[1 + addr.length] = to.length;
    p.set(to, 2 + addr.length);
    parts.push(p);
  }
  const v2 = declines.length > 0;
  const tail = v2 ? 1 + parts.reduce((n, p) => n + p.length, 0) : 0;
  const body = new Uint8Array(17 + name.length + tail);
  const v = new DataView(body.buffer);
  v.setUint32(0, MAGIC);
  v.setUint8(4, v2 ? VERSION_DECLINES : VERSION);
  v.setUint8(5, (hb.leaving ? 1 : 0) | (hb.ready ? 2 : 0) | (hb.settled ? 4 : 0));
  v.setUint16(6, Math.min(0xffff, Math.max(1, Math.round(hb.intervalMs))));
  v.setBigUint64(8, hb.seq);
  v.setUint8(16, name.length);
  body.set(name, 17);
  if (v2) {
    let off = 17 + name.length;
    body[off++] = parts.length;
    for (const p of parts) {
      body.set(p, off);
      off += p.length;
    }
  }
  const out = new Uint8Array(body.length + MAC_LEN);
  out.set(body, 0);
  out.set(mac(key, body), body.length);
  return out;
}

function utf8(b: Uint8Array): string | null {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(b);
  } catch {
    return null;
  }
}

/** The declines of a version-2 body (after the name, before the MAC); null when malformed. */
function parseDeclines(b: Uint8Array): Decline[] | null {
  if (b.length < 1) return null;
  const count = b[0] as number;
  if (count < 1 || count > MAX_DECLINES) return null;
  const out: Decline[] = [];
  let off = 1;
  for (let i = 0; i < count; i++) {
    const fam = b[off];
    const alen = fam === 4 ? 4 : fam === 6 ? 16 : 0;
    if (alen === 0 || off + 1 + alen + 1 > b.length) return null;
    const ip = formatIp(ipFromBytes(b.subarray(off + 1, off + 1 + alen)));
    const toLen = b[off + 1 + alen] as number;
    const start = off + 2 + alen;
    if (start + toLen > b.length) return null;
    let to: string | undefined;
    if (toLen > 0) {
      const t = utf8(b.subarray(start, start + toLen));
      if (t === null) return null;
      to = t;
    }
    out.push(to === undefined ? { ip } : { ip, to });
    off = start + toLen;
  }
  return off === b.length ? out : null;
}

/** Checks in order: length, magic, version, name, total length, MAC, then the body's contents. */
export function decodeHeartbeat(buf: Uint8Array, key: Uint8Array): Decoded {
  if (buf.length < 17 + 1 + MAC_LEN) return { ok: false, reason: "TooShort" };
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (v.getUint32(0) !== MAGIC) return { ok: false, reason: "BadMagic" };
  const version = v.getUint8(4);
  if (version !== VERSION && version !== VERSION_DECLINES) return { ok: false, reason: "BadVersion" };
  const nameLen = v.getUint8(16);
  if (nameLen < 1 || nameLen > 253) return { ok: false, reason: "BadName" };
  const bodyLen = buf.length - MAC_LEN;
  if (version === VERSION ? bodyLen !== 17 + nameLen : bodyLen < 17 + nameLen + 1)
    return { ok: false, reason: "BadLength" };
  // The MAC is checked before anything else in the body is interpreted.
  const body = buf.subarray(0, bodyLen);
  if (!timingSafeEqual(mac(key, body), buf.subarray(bodyLen))) return { ok: false, reason: "BadMac" };
  const node = utf8(buf.subarray(17, 17 + nameLen));
  if (node === null) return { ok: false, reason: "BadName" };
  const hb: Heartbeat = {
    node,
    seq: v.getBigUint64(8),
    intervalMs: v.getUint16(6),
    leaving: (v.getUint8(5) & 1) === 1,
  };
  if ((v.getUint8(5) & 2) === 2) hb.ready = true;
  if ((v.getUint8(5) & 4) === 4) hb.settled = true;
  if (version === VERSION) return { ok: true, hb };
  const declines = parseDeclines(body.subarray(17 + nameLen));
  if (declines === null) return { ok: false, reason: "BadDecline" };
  return { ok: true, hb: { ...hb, declines } };
}
