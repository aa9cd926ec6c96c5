/**
 * IP addresses as (family, bigint) values: parsing, formatting and ranges.
 *
 * Pure. Every address in vipd passes through here, so pools of any size (a /48, a /64) are
 * handled exactly, without enumerating addresses.
 *
 * @example
 * const r = parseRange("192.168.1.200-192.168.1.250");
 * // r.ok && r.value.last - r.value.first + 1n === 51n
 */

export type Family = 4 | 6;

export interface Ip {
  readonly family: Family;
  readonly value: bigint;
}

/** An inclusive range of addresses of one family. */
export interface IpRange {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const MAX: Record<Family, bigint> = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n };
export const BITS: Record<Family, number> = { 4: 32, 6: 128 };

function parseV4(s: string): bigint | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(s: string): bigint | null {
  if (s.length === 0 || s.length > 45) return null;
  let head = s;
  let tailV4: bigint | null = null;
  const lastColon = s.lastIndexOf(":");
  if (lastColon >= 0 && s.indexOf(".", lastColon) >= 0) {
    tailV4 = parseV4(s.slice(lastColon + 1));
    if (tailV4 === null) return null;
    head = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const dbl = head.indexOf("::");
  if (dbl !== head.lastIndexOf("::")) return null;
  const groupsOf = (t: string): string[] | null => (t === "" ? [] : t.split(":"));
  let groups: string[];
  if (dbl >= 0) {
    const left = groupsOf(head.slice(0, dbl));
    const right = groupsOf(head.slice(dbl + 2));
    if (left === null || right === null) return null;
    const fill = 8 - left.length - right.length;
    if (fill < 1) return null;
    groups = [...left, ...Array<string>(fill).fill("0"), ...right];
  } else {
    groups = head.split(":");
  }
  if (groups.length !== 8) return null;
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    v = (v << 16n) | BigInt(Number.parseInt(g, 16));
  }
  if (tailV4 !== null) v = (v & ~0xffffffffn) | tailV4;
  return v;
}

/** Parses a textual IPv4 or IPv6 address (no zone, no brackets). */
export function parseIp(s: string): Ip | null {
  if (s.includes(":")) {
    const v = parseV6(s);
    return v === null ? null : { family: 6, value: v };
  }
  const v = parseV4(s);
  return v === null ? null : { family: 4, value: v };
}

/** Formats an address: dotted quad, or RFC 5952 canonical IPv6. */
export function formatIp(ip: Ip): string {
  if (ip.family === 4) {
    const v = ip.value;
    return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join(".");
  }
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // Longest run (length >= 2) of zero groups becomes "::"; first one wins a tie.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** Canonical text of an address string, or null if it is not one. */
export function canonicalIp(s: string): string | null {
  const ip = parseIp(s);
  return ip === null ? null : formatIp(ip);
}

export function maskOf(family: Family, prefixLen: number): bigint {
  const bits = BigInt(BITS[family]);
  return MAX[family] ^ ((1n << (bits - BigInt(prefixLen))) - 1n);
}

/** Parses `a.b.c.d/n` or `x::/n`. */
export function parseCidr(s: string): Parsed<IpRange & { prefixLen: number }> {
  const slash = s.indexOf("/");
  if (slash < 0) return { ok: false, error: `"${s}" is not a CIDR (missing /length)` };
  const ip = parseIp(s.slice(0, slash));
  if (ip === null) return { ok: false, error: `"${s.slice(0, slash)}" is not an IP address` };
  const lenText = s.slice(slash + 1);
  const len = /^[0-9]{1,3}$/.test(lenText) ? Number(lenText) : Number.NaN;
  if (!(len >= 0 && len <= BITS[ip.family]))
    return { ok: false, error: `"/${lenText}" is not a valid prefix length for IPv${ip.family}` };
  // Host bits are masked off, as MetalLB (Go net.ParseCIDR) does: "10.0.0.5/24" means 10.0.0.0/24.
  const mask = maskOf(ip.family, len);
  return {
    ok: true,
    value: {
      family: ip.family,
      first: ip.value & mask,
      last: (ip.value & mask) | (MAX[ip.family] ^ mask),
      prefixLen: len,
    },
  };
}

/**
 * Parses one entry of an IPAddressPool's `addresses`: a CIDR, an `a-b` range (both ends the same
 * family, start not after end) or a single address.
 */
export function parseRange(s: string): Parsed<IpRange> {
  const t = s.trim();
  if (t.includes("/")) return parseCidr(t);
  const dash = t.indexOf("-");
  if (dash >= 0) {
    const a = parseIp(t.slice(0, dash).trim());
    const b = parseIp(t.slice(dash + 1).trim());
    if (a === null) return { ok: false, error: `"${t.slice(0, dash).trim()}" is not an IP address` };
    if (b === null) return { ok: false, error: `"${t.slice(dash + 1).trim()}" is not an IP address` };
    if (a.family !== b.family) return { ok: false, error: `range "${t}" mixes IPv4 and IPv6` };
    if (a.value > b.value) return { ok: false, error: `range "${t}" starts after it ends` };
    return { ok: true, value: { family: a.family, first: a.value, last: b.value } };
  }
  const ip = parseIp(t);
  if (ip === null) return { ok: false, error: `"${t}" is not an IP address, CIDR or range` };
  return { ok: true, value: { family: ip.family, first: ip.value, last: ip.value } };
}

export function rangeSize(r: IpRange): bigint {
  return r.last - r.first + 1n;
}

export function rangesOverlap(a: IpRange, b: IpRange): boolean {
  return a.family === b.family && a.first <= b.last && b.first <= a.last;
}

export function rangeContains(r: IpRange, ip: Ip): boolean {
  return r.family === ip.family && r.first <= ip.value && ip.value <= r.last;
}

export function formatRange(r: IpRange): string {
  const a = formatIp({ family: r.family, value: r.first });
  return r.first === r.last ? a : `${a}-${formatIp({ family: r.family, value: r.last })}`;
}

/** The smallest list of CIDR blocks that exactly covers a range (at most 2 × address bits). */
export function rangeToCidrs(r: IpRange): { family: Family; base: bigint; prefixLen: number }[] {
  const out: { family: Family; base: bigint; prefixLen: number }[] = [];
  const bits = BITS[r.family];
  let cur = r.first;
  while (cur <= r.last) {
    // Largest block aligned at cur that does not pass r.last.
    let size = 0;
    while (size < bits) {
      const next = size + 1;
      const blk = 1n << BigInt(next);
      if ((cur & (blk - 1n)) !== 0n || cur + blk - 1n > r.last) break;
      size = next;
    }
    out.push({ family: r.family, base: cur, prefixLen: bits - size });
    cur += 1n << BigInt(size);
  }
  return out;
}

/** Network-order bytes of an address: 4 for IPv4, 16 for IPv6. */
export function ipToBytes(ip: Ip): Uint8Array {
  const out = new Uint8Array(ip.family === 4 ? 4 : 16);
  const dv = new DataView(out.buffer);
  if (ip.family === 4) {
    dv.setUint32(0, Number(ip.value));
  } else {
    dv.setBigUint64(0, ip.value >> 64n);
    dv.setBigUint64(8, ip.value & 0xffffffffffffffffn);
  }
  return out;
}

/** The address held in 4 (IPv4) or 16 (IPv6) network-order bytes. */
export function ipFromBytes(bytes: Uint8Array): Ip {
  if (bytes.length !== 4 && bytes.length !== 16) {
    throw new RangeError(`an IP address is 4 or 16 bytes, not ${bytes.length}`);
  }
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return { family: bytes.length === 4 ? 4 : 6, value: v };
}
