/**
 * Packs outgoing routes into as few UPDATEs as possible: all prefixes that share one attribute set
 * go into messages filled up to the 4096-byte limit (RFC 4271 §4; ~810 IPv4 /32s per message).
 * IPv4 unicast uses the classic NLRI and withdrawn fields; IPv6 (and IPv4 with an IPv6 next hop,
 * RFC 8950) go in MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760). End-of-RIB markers per RFC 4724 §2.
 */
import type { AttrContext, PathAttributes } from "./attributes.ts";
import { encodeAttributes } from "./attrlist.ts";
import { Writer } from "./buf.ts";
import { Afi, AttrFlag, AttrType, HEADER_LEN, MAX_MESSAGE_LEN, MsgType, Safi } from "./constants.ts";
import { BgpEncodeError } from "./errors.ts";
import { encodedPrefixLen, type Prefix, parseAddr } from "./prefix.ts";

function startMessage(w: Writer): void {
  w.pos = 0;
  for (let i = 0; i < 16; i++) w.u8(0xff);
  w.u16(0).u8(MsgType.UPDATE);
}

function endMessage(w: Writer, out: Uint8Array[]): void {
  w.patchU16(16, w.pos);
  out.push(w.buf.slice(0, w.pos));
}

/** Prefixes encoded back to back as NLRI (RFC 4271 §4.3: length octet, significant octets). */
export function encodeNlri(prefixes: readonly Prefix[]): Uint8Array {
  let n = 0;
  for (const p of prefixes) n += encodedPrefixLen(p);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of prefixes) {
    const k = (p.len + 7) >> 3;
    out[at++] = p.len;
    for (let i = 0; i < k; i++) out[at++] = p.addr[i] ?? 0;
  }
  return out;
}

/** The end of the whole prefixes from `at` that fit in `room` bytes of encoded NLRI. */
function fill(nlri: Uint8Array, at: number, room: number): number {
  let e = at;
  while (e < nlri.length) {
    const n = 1 + ((nlri[e]! + 7) >> 3);
    if (e + n - at > room) break;
    e += n;
  }
  if (e === at) throw new BgpEncodeError("prefix does not fit");
  return e;
}

export interface ReachSpec {
  /** Attributes shared by every prefix (no NEXT_HOP / MP_* here; they are added per family). */
  attributes: PathAttributes;
  /** Address family of the prefixes. */
  family: 4 | 6;
  /** Next hop(s): one address, or IPv6 global + link-local. */
  nextHops: string[];
  prefixes: readonly Prefix[];
}

/** UPDATEs announcing `spec.prefixes` with one attribute set, each message at most `maxLen`. */
export function packReach(spec: ReachSpec, ctx: AttrContext, maxLen = MAX_MESSAGE_LEN): Uint8Array[] {
  const { prefixes, ...rest } = spec;
  return packReachNlri({ ...rest, nlri: encodeNlri(prefixes) }, ctx, maxLen);
}

/** packReach with the prefixes already encoded back to back (encodeNlri, or a packed RIB). */
export function packReachNlri(
  spec: Omit<ReachSpec, "prefixes"> & { nlri: Uint8Array },
  ctx: AttrContext,
  maxLen = MAX_MESSAGE_LEN,
): Uint8Array[] {
  const nh = spec.nextHops.map((s) => {
    const b = parseAddr(s);
    if (b === null) throw new BgpEncodeError(`bad next hop "${s}"`);
    return b;
  });
  if (nh.length === 0) throw new BgpEncodeError("no next hop");
  const classic = spec.family === 4 && nh.length === 1 && nh[0]?.length === 4;
  const aw = new Writer(256);
  encodeAttributes(aw, classic ? { ...spec.attributes, nextHop: spec.nextHops[0] } : spec.attributes, ctx);
  const attrBytes = aw.buf.subarray(0, aw.pos);
  const nhLen = nh.reduce((n, b) => n + b.length, 0);
  // MP_REACH_NLRI fixed part: flags, type, 2-byte length, AFI, SAFI, NH len, NH, reserved.
  const mpFixed = classic ? 0 : 4 + 2 + 1 + 1 + nhLen + 1;
  const base = HEADER_LEN + 2 + 2 + attrBytes.length + mpFixed;
  if (base + 17 > maxLen) throw new BgpEncodeError("attributes leave no room for NLRI");
  const out: Uint8Array[] = [];
  const w = new Writer(maxLen);
  const nlri = spec.nlri;
  let at = 0;
  while (at < nlri.length) {
    const end = fill(nlri, at, maxLen - base);
    startMessage(w);
    w.u16(0); // withdrawn routes length
    const attrLenAt = w.pos;
    w.u16(0);
    if (classic) {
      w.bytes(attrBytes);
      w.patchU16(attrLenAt, attrBytes.length);
      w.bytes(nlri.subarray(at, end));
    } else {
      // MP_REACH_NLRI goes first (RFC 4760 does not require it; BIRD and FRR both do this).
      w.u8(AttrFlag.OPTIONAL | AttrFlag.EXTENDED_LENGTH).u8(AttrType.MP_REACH_NLRI);
      const mpLenAt = w.pos;
      w.u16(0);
      w.u16(spec.family === 4 ? Afi.IPV4 : Afi.IPV6)
        .u8(Safi.UNICAST)
        .u8(nhLen);
      for (const b of nh) w.bytes(b);
      w.u8(0);
      w.bytes(nlri.subarray(at, end));
      w.patchU16(mpLenAt, w.pos - mpLenAt - 2);
      w.bytes(attrBytes);
      w.patchU16(attrLenAt, w.pos - attrLenAt - 2);
    }
    endMessage(w, out);
    at = end;
  }
  return out;
}

/** UPDATEs withdrawing `prefixes` of one family (mp: use MP_UNREACH_NLRI for IPv4 too). */
export function packWithdraw(
  family: 4 | 6,
  prefixes: readonly Prefix[],
  mp = family === 6,
  maxLen = MAX_MESSAGE_LEN,
): Uint8Array[] {
  return packWithdrawNlri(family, encodeNlri(prefixes), mp, maxLen);
}

/** packWithdraw with the prefixes already encoded back to back. */
export function packWithdrawNlri(
  family: 4 | 6,
  nlri: Uint8Array,
  mp = family === 6,
  maxLen = MAX_MESSAGE_LEN,
): Uint8Array[] {
  const out: Uint8Array[] = [];
  const w = new Writer(maxLen);
  let at = 0;
  while (at < nlri.length) {
    startMessage(w);
    if (!mp) {
      const end = fill(nlri, at, maxLen - HEADER_LEN - 4);
      w.u16(end - at);
      w.bytes(nlri.subarray(at, end));
      w.u16(0);
      at = end;
    } else {
      w.u16(0);
      const aAt = w.pos;
      w.u16(0);
      w.u8(AttrFlag.OPTIONAL | AttrFlag.EXTENDED_LENGTH).u8(AttrType.MP_UNREACH_NLRI);
      const lAt = w.pos;
      w.u16(0);
      w.u16(family === 4 ? Afi.IPV4 : Afi.IPV6).u8(Safi.UNICAST);
      const end = fill(nlri, at, maxLen - w.pos);
      w.bytes(nlri.subarray(at, end));
      w.patchU16(lAt, w.pos - lAt - 2);
      w.patchU16(aAt, w.pos - aAt - 2);
      at = end;
    }
    endMessage(w, out);
  }
  return out;
}

/** RFC 4724 §2: End-of-RIB is an empty UPDATE (IPv4) or an empty MP_UNREACH_NLRI (others). */
export function endOfRib(family: 4 | 6): Uint8Array {
  const w = new Writer(32);
  startMessage(w);
  if (family === 4) {
    w.u16(0).u16(0);
  } else {
    w.u16(0).u16(6);
    w.u8(AttrFlag.OPTIONAL).u8(AttrType.MP_UNREACH_NLRI).u8(3).u16(Afi.IPV6).u8(Safi.UNICAST);
  }
  const out: Uint8Array[] = [];
  endMessage(w, out);
  return out[0]!;
}
