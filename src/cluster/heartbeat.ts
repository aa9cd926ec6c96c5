/**
 * The membership heartbeat: a small authenticated UDP datagram each vipd node sends to every
 * other member of its site, many times a second. Pure codec: bytes in, a value or a named drop
 * reason out.
 *
 * Wire format (big-endian):
 *   0  "VIPH"            magic
 *   4  u8  version       1; 2 when the sender declines VIPs (forced failover); 3 (the site's
 *                        generation and table digest) only to a member whose own heartbeats say
 *                        it reads version 3 (flag bit 3)
 *   5  u8  flags         bit 0: leaving (a clean shutdown: drop me at once)
 *                        bit 1: ready (the sender takes part in elections and owns VIPs; a
 *                               receiver ignores bits it does not know)
 *                        bit 2: settled (the sender's data path matches its latest plan: every
 *                               VIP it gained is programmed and announced; the old owner of a
 *                               VIP handed over to it stops answering on seeing this, make
 *                               before break — src/plan/handover.ts)
 *                        bit 3: reads version 3 (the sender understands the site fields; a member
 *                               sends version 3 only to members that set this bit)
 *   6  u16 interval      the sender's transmit interval, ms
 *   8  u64 seq           strictly increasing per sender, across restarts (µs wall clock based)
 *  16  u8  nameLen, name (UTF-8, 1..253 bytes)
 *   version 2 only:
 *   …  u8  count (0..MAX_DECLINES), then per declined VIP:
 *        u8 family (4 | 6), 4 or 16 address bytes, u8 toLen (0: no preferred node), to (UTF-8)
 *   version 3 only:
 *   …  u8  count (0..MAX_DECLINES), the declines as in version 2 (none is allowed here)
 *   …  u32 generation    the site configuration generation the sender holds (0: none yet)
 *      u8  allocLen, allocator (UTF-8, 0..253 bytes; the member that made that generation)
 *      8 bytes digest    the digest of its assignment table (src/site/table.ts tableDigest, as
 *                        binary; zeros when generation is 0)
 *   …  32 bytes HMAC-SHA256(key, everything before it)
 *
 * Compatibility: a node with nothing declined sends version 1, so members still running the first
 * format keep understanding it; a version-2 datagram is sent only while a decline is in force.
 * The site fields (version 3) go only to members that said, with flag bit 3, that they read them;
 * the others keep getting version 1 or 2 from the same node (the engine encodes both), and their
 * own heartbeats (without bit 3 and the site fields) are taken as before.
 *
 * Authentication: without the site's shared key nobody can join or forge liveness; replay is
 * refused by the receiver, which accepts only a seq greater than the last one it took from that
 * sender (see membership.ts).
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { formatIp, ipFromBytes, ipToBytes, parseIp } from "../util/ip.ts";

export const MAGIC = 0x56495048; // "VIPH"
export const VERSION = 1;
export const VERSION_DECLINES = 2;
export const VERSION_SITE = 3;
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
  /** The sender reads version 3 (flag bit 3): send it the site fields. */
  readsSite?: boolean | undefined;
  /** The site fields (version 3): the sender's configuration generation and table digest. */
  site?: HeartbeatSite | undefined;
}

/** What a version-3 heartbeat says of the sender's site snapshot. */
export interface HeartbeatSite {
  /** 0: the sender holds no site snapshot yet. */
  generation: number;
  /** The member that made that generation ("" when none). */
  allocator: string;
  /** The table digest, 16 hex digits ("" when none). */
  digest: string;
}

export type HeartbeatDrop =
  | "TooShort"
  | "BadMagic"
  | "BadVersion"
  | "BadName"
  | "BadLength"
  | "BadDecline"
  | "BadSite"
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
  const site = hb.site === undefined ? undefined : siteBytes(hb.site);
  const v2 = declines.length > 0;
  const listed = v2 || site !== undefined;
  const tail = (listed ? 1 + parts.reduce((n, p) => n + p.length, 0) : 0) + (site?.length ?? 0);
  const body = new Uint8Array(17 + name.length + tail);
  const v = new DataView(body.buffer);
  v.setUint32(0, MAGIC);
  v.setUint8(4, site !== undefined ? VERSION_SITE : v2 ? VERSION_DECLINES : VERSION);
  v.setUint8(5, (hb.leaving ? 1 : 0) | (hb.ready ? 2 : 0) | (hb.settled ? 4 : 0) | (hb.readsSite ? 8 : 0));
  v.setUint16(6, Math.min(0xffff, Math.max(1, Math.round(hb.intervalMs))));
  v.setBigUint64(8, hb.seq);
  v.setUint8(16, name.length);
  body.set(name, 17);
  if (listed) {
    let off = 17 + name.length;
    body[off++] = parts.length;
    for (const p of parts) {
      body.set(p, off);
      off += p.length;
    }
    if (site !== undefined) body.set(site, off);
  }
  const out = new Uint8Array(body.length + MAC_LEN);
  out.set(body, 0);
  out.set(mac(key, body), body.length);
  return out;
}

const HEX16 = /^[0-9a-f]{16}$/;

/** The version-3 site block: u32 generation, u8 allocLen, allocator, 8 bytes digest. */
function siteBytes(site: HeartbeatSite): Uint8Array {
  if (!Number.isInteger(site.generation) || site.generation < 0 || site.generation > 0xffffffff)
    throw new RangeError("site generation must be 0..2^32-1");
  const none = site.generation === 0;
  const alloc = none ? new Uint8Array(0) : enc.encode(site.allocator);
  if (alloc.length > 253) throw new RangeError("allocator name must be at most 253 bytes");
  if (!none && !HEX16.test(site.digest)) throw new RangeError("site digest must be 16 hex digits");
  const out = new Uint8Array(4 + 1 + alloc.length + 8);
  const v = new DataView(out.buffer);
  v.setUint32(0, site.generation);
  out[4] = alloc.length;
  out.set(alloc, 5);
  if (!none)
    for (let i = 0; i < 8; i++)
      out[5 + alloc.length + i] = Number.parseInt(site.digest.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function parseSite(b: Uint8Array): HeartbeatSite | null {
  if (b.length < 4 + 1 + 8) return null;
  const generation = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0);
  const allocLen = b[4] as number;
  if (b.length !== 4 + 1 + allocLen + 8) return null;
  if (generation === 0) return allocLen === 0 ? { generation: 0, allocator: "", digest: "" } : null;
  const allocator = utf8(b.subarray(5, 5 + allocLen));
  if (allocator === null || allocator.length === 0) return null;
  const digest = [...b.subarray(5 + allocLen)].map((x) => x.toString(16).padStart(2, "0")).join("");
  return { generation, allocator, digest };
}

function utf8(b: Uint8Array): string | null {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(b);
  } catch {
    return null;
  }
}

/**
 * The declines at the start of `b` (after the name) and where they end; null when malformed. A
 * version-2 list holds at least one; a version-3 list may be empty.
 */
function parseDeclines(b: Uint8Array, minCount: number): { declines: Decline[]; end: number } | null {
  if (b.length < 1) return null;
  const count = b[0] as number;
  if (count < minCount || count > MAX_DECLINES) return null;
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
  return { declines: out, end: off };
}

/** Checks in order: length, magic, version, name, total length, MAC, then the body's contents. */
export function decodeHeartbeat(buf: Uint8Array, key: Uint8Array): Decoded {
  if (buf.length < 17 + 1 + MAC_LEN) return { ok: false, reason: "TooShort" };
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (v.getUint32(0) !== MAGIC) return { ok: false, reason: "BadMagic" };
  const version = v.getUint8(4);
  if (version !== VERSION && version !== VERSION_DECLINES && version !== VERSION_SITE)
    return { ok: false, reason: "BadVersion" };
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
  if ((v.getUint8(5) & 8) === 8) hb.readsSite = true;
  if (version === VERSION) return { ok: true, hb };
  const rest = body.subarray(17 + nameLen);
  const d = parseDeclines(rest, version === VERSION_DECLINES ? 1 : 0);
  if (d === null || (version === VERSION_DECLINES && d.end !== rest.length))
    return { ok: false, reason: "BadDecline" };
  if (version === VERSION_DECLINES) return { ok: true, hb: { ...hb, declines: d.declines } };
  const site = parseSite(rest.subarray(d.end));
  if (site === null) return { ok: false, reason: "BadSite" };
  return { ok: true, hb: { ...hb, ...(d.declines.length > 0 ? { declines: d.declines } : {}), site } };
}
