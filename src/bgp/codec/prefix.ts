/**
 * IP prefixes as they travel in NLRI: `{ family, len, addr }` with `addr` the full-width address
 * bytes (4 or 16), host bits zero. Encoding is RFC 4271 §4.3 (length octet + ceil(len/8) octets),
 * shared by plain NLRI, withdrawn routes and MP_REACH/MP_UNREACH (RFC 4760 §5).
 */
import { type Family, formatIp, parseCidr, parseIp } from "../../util/ip.ts";
import type { Reader, Writer } from "./buf.ts";
import { BgpDecodeError } from "./errors.ts";

export interface Prefix {
  readonly family: Family;
  readonly len: number;
  readonly addr: Uint8Array;
}

export function addrBytes(family: Family, value: bigint): Uint8Array {
  const n = family === 4 ? 4 : 16;
  const out = new Uint8Array(n);
  let v = value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

export function bytesToBigint(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

/** Textual address of 4 or 16 bytes. */
export function formatAddr(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  return formatIp({ family: 6, value: bytesToBigint(b) });
}

/** Address bytes of a textual IP, or null. */
export function parseAddr(s: string): Uint8Array | null {
  const ip = parseIp(s);
  return ip === null ? null : addrBytes(ip.family, ip.value);
}

/** Parses "10.0.0.1/32", "2001:db8::/64", or a bare address (a host prefix). */
export function parsePrefix(s: string): Prefix | null {
  const fast = parseV4PrefixFast(s);
  if (fast !== null) return fast;
  if (!s.includes("/")) {
    const ip = parseIp(s);
    if (ip === null) return null;
    return { family: ip.family, len: ip.family === 4 ? 32 : 128, addr: addrBytes(ip.family, ip.value) };
  }
  const c = parseCidr(s);
  if (!c.ok) return null;
  return { family: c.value.family, len: c.value.prefixLen, addr: addrBytes(c.value.family, c.value.first) };
}

/**
 * IPv4 "a.b.c.d/n" or "a.b.c.d" without bigint arithmetic (the speaker parses 100k of these at
 * once). Returns null for anything it does not fully accept; parsePrefix then takes the slow path,
 * which gives the same answer for valid input and rejects the rest.
 */
function parseV4PrefixFast(s: string): Prefix | null {
  const addr = new Uint8Array(4);
  const len = parseV4Into(s, addr);
  return len < 0 ? null : { family: 4, len, addr };
}

/**
 * parseV4PrefixFast writing the address into `addr` (4 bytes, host bits zeroed) and returning the
 * length, or -1: no allocation, for hot loops.
 */
export function parseV4Into(s: string, addr: Uint8Array): number {
  let part = 0;
  let val = 0;
  let digits = 0;
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits > 0 && val === 0) return -1; // leading zero
      val = val * 10 + (c - 48);
      if (++digits > 3 || val > 255) return -1;
    } else if (c === 46 /* . */ || c === 47 /* / */) {
      if (digits === 0 || part > 3) return -1;
      addr[part++] = val;
      val = 0;
      digits = 0;
      if (c === 47) break;
    } else return -1;
  }
  let len = 32;
  if (i === s.length) {
    if (digits === 0 || part !== 3) return -1;
    addr[part++] = val;
  } else {
    if (part !== 4) return -1;
    // "0" or 1..32 without a leading zero.
    const n = s.length - i - 1;
    const d0 = s.charCodeAt(i + 1) - 48;
    const d1 = n === 2 ? s.charCodeAt(i + 2) - 48 : 0;
    if (n < 1 || n > 2 || d0 < 0 || d0 > 9 || d1 < 0 || d1 > 9 || (n === 2 && d0 === 0)) return -1;
    len = n === 2 ? d0 * 10 + d1 : d0;
    if (len > 32) return -1;
  }
  if (part !== 4) return -1;
  if (len === 32) return 32;
  for (let b = 0; b < 4; b++) {
    const keep = Math.max(0, Math.min(8, len - b * 8));
    addr[b] = (addr[b] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  return len;
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddr(p.addr)}/${p.len}`;
}

export function encodedPrefixLen(p: Prefix): number {
  return 1 + ((p.len + 7) >> 3);
}

export function writePrefix(w: Writer, p: Prefix): void {
  w.u8(p.len);
  w.bytes(p.addr.subarray(0, (p.len + 7) >> 3));
}

/**
 * Reads prefixes until the reader is exhausted. A bad length is RFC 7606 §5.3: the NLRI cannot be
 * parsed, so the whole session must be reset (we cannot know which prefixes were meant).
 */
export function readPrefixes(r: Reader, family: Family): Prefix[] {
  const max = family === 4 ? 32 : 128;
  const width = family === 4 ? 4 : 16;
  const out: Prefix[] = [];
  while (r.remaining > 0) {
    const len = r.u8();
    if (len > max) throw new BgpDecodeError(3, 10, `prefix length ${len} exceeds ${max}`);
    const n = (len + 7) >> 3;
    if (n > r.remaining) throw new BgpDecodeError(3, 10, `prefix of length ${len} truncated`);
    const addr = new Uint8Array(width);
    addr.set(r.bytes(n));
    // Host bits beyond len are ignored (RFC 4271 §4.3 "trailing bits are irrelevant"); zero them.
    if (len % 8 !== 0 && n > 0) addr[n - 1] = (addr[n - 1] ?? 0) & ((0xff << (8 - (len % 8))) & 0xff);
    out.push({ family, len, addr });
  }
  return out;
}

export function prefixKey(p: Prefix): string {
  return formatPrefix(p);
}
