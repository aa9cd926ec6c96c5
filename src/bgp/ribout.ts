/**
 * The routes vipd announces, pure and compact: the caller's desired set for one peer is validated
 * once and packed into a RouteTable — prefixes as packed bytes, sorted, each pointing at a shared
 * attribute set — and the attributes a route carries towards one session are derived from its set.
 * adj-rib-out.ts diffs two tables and packs the difference into UPDATEs.
 *
 * Memory (issue 15): a route costs its packed prefix (5 bytes for IPv4, 17 for IPv6) and a 4-byte
 * set index, about 9 bytes for an IPv4 /32 instead of ~680 with an object and a string per route.
 * Attribute sets are interned by their encoded bytes, as BIRD and GoBGP do: routes with equal
 * attributes share one AttrSet, across tables and peers, and a set lives while a table uses it.
 *
 * Attributes follow RFC 4271 §5.1 for locally originated routes: ORIGIN IGP; AS_PATH empty to
 * internal peers, [myASN] to external ones (AS_TRANS + AS4_PATH to a 2-octet peer, RFC 6793 §4.2.2);
 * LOCAL_PREF only to internal peers (§5.1.5); MED, COMMUNITIES (RFC 1997) and LARGE_COMMUNITIES
 * (RFC 8092) as given.
 */

import { Writer } from "./codec/buf.ts";
import {
  AS_TRANS,
  AsPathSegType,
  encodeAttributes,
  formatPrefix,
  type LargeCommunity,
  Origin,
  type PathAttributes,
  type Prefix,
  parseAddr,
  parseCommunity,
  parseLargeCommunity,
  parsePrefix,
  parseV4Into,
} from "./codec/index.ts";

/** A route as the caller describes it (strings, as in the manifests). */
export interface RouteSpec {
  prefix: string;
  nextHop?: string;
  localPref?: number;
  /** Standard communities "65000:100", well-known names ("no-export"), or "large:A:B:C" (MetalLB's form). */
  communities?: string[];
  /** Large communities "a:b:c". */
  largeCommunities?: string[];
  med?: number;
}

/** Everything about a route but its prefix, validated; communities sorted and deduplicated. */
export interface AttrFields {
  nextHop?: string;
  localPref?: number;
  med?: number;
  communities: readonly number[];
  largeCommunities: readonly LargeCommunity[];
}

/** An interned attribute set: equal attributes are the same object (compare with ===). */
export interface AttrSet extends AttrFields {
  /** The encoded bytes (next hop, then the path attributes) as a binary string: the intern key. */
  readonly key: string;
}

const pool = new Map<string, WeakRef<AttrSet>>();
const reaper = new FinalizationRegistry<string>((key) => {
  if (pool.get(key)?.deref() === undefined) pool.delete(key);
});
const keyWriter = new Writer(256);

/** The shared AttrSet for these attributes (by their encoded bytes). Fields must be valid. */
export function internAttrSet(f: AttrFields): AttrSet {
  const w = keyWriter;
  w.pos = 0;
  const nh = f.nextHop !== undefined ? parseAddr(f.nextHop) : null;
  w.u8(nh?.length ?? 0);
  if (nh) w.bytes(nh);
  const attrs: PathAttributes = {};
  if (f.med !== undefined) attrs.med = f.med;
  if (f.localPref !== undefined) attrs.localPref = f.localPref;
  if (f.communities.length > 0) attrs.communities = [...f.communities];
  if (f.largeCommunities.length > 0) attrs.largeCommunities = [...f.largeCommunities];
  encodeAttributes(w, attrs, { as4: true });
  let key = "";
  for (let i = 0; i < w.pos; i++) key += String.fromCharCode(w.buf[i]!);
  const hit = pool.get(key)?.deref();
  if (hit !== undefined) return hit;
  const set: AttrSet = Object.freeze({
    key,
    communities: Object.freeze([...f.communities]),
    largeCommunities: Object.freeze(f.largeCommunities.map((c) => Object.freeze([...c]) as LargeCommunity)),
    ...(f.nextHop !== undefined ? { nextHop: f.nextHop } : {}),
    ...(f.localPref !== undefined ? { localPref: f.localPref } : {}),
    ...(f.med !== undefined ? { med: f.med } : {}),
  });
  pool.set(key, new WeakRef(set));
  reaper.register(set, key);
  return set;
}

/** Interned attribute sets alive now (for tests and metrics). */
export function attrSetCount(): number {
  return pool.size;
}

/**
 * The prefixes of one family, packed and sorted: entry i is `addr (4 or 16 bytes) | len` at
 * `i * width`, so byte order is (address, length) order; `set[i]` indexes the table's sets.
 */
export class PrefixList {
  readonly width: number;

  constructor(
    readonly family: 4 | 6,
    readonly count: number,
    readonly bytes: Uint8Array,
    readonly set: Uint32Array,
  ) {
    this.width = family === 4 ? 5 : 17;
  }

  static empty(family: 4 | 6): PrefixList {
    return new PrefixList(family, 0, new Uint8Array(0), new Uint32Array(0));
  }

  /** Compares entry i of this list with entry j of `o` (same family): <0, 0, >0. */
  cmp(i: number, o: PrefixList, j: number): number {
    const a = this.bytes;
    const b = o.bytes;
    const w = this.width;
    const ai = i * w;
    const bj = j * w;
    for (let k = 0; k < w; k++) {
      const d = a[ai + k]! - b[bj + k]!;
      if (d !== 0) return d;
    }
    return 0;
  }

  len(i: number): number {
    return this.bytes[i * this.width + this.width - 1]!;
  }

  /** Writes entry i as NLRI (RFC 4271 §4.3: length octet, then the significant address octets). */
  writeNlri(out: Uint8Array, at: number, i: number): number {
    const len = this.len(i);
    const n = (len + 7) >> 3;
    out[at] = len;
    const from = i * this.width;
    for (let k = 0; k < n; k++) out[at + 1 + k] = this.bytes[from + k]!;
    return at + 1 + n;
  }

  prefix(i: number): Prefix {
    const from = i * this.width;
    return { family: this.family, len: this.len(i), addr: this.bytes.slice(from, from + this.width - 1) };
  }

  key(i: number): string {
    return formatPrefix(this.prefix(i));
  }
}

/** A route as a readable view of one table entry (tests, debugging; never stored). */
export interface Route extends AttrFields {
  key: string;
  prefix: Prefix;
  set: AttrSet;
  /** The attribute set's key: routes with equal keys share an UPDATE. */
  akey: string;
}

/** One peer's desired routes, immutable: IPv4 and IPv6 prefix lists over shared attribute sets. */
export class RouteTable {
  constructor(
    readonly sets: readonly AttrSet[],
    readonly v4: PrefixList,
    readonly v6: PrefixList,
  ) {}

  static empty(): RouteTable {
    return new RouteTable([], PrefixList.empty(4), PrefixList.empty(6));
  }

  get size(): number {
    return this.v4.count + this.v6.count;
  }

  list(fam: 4 | 6): PrefixList {
    return fam === 4 ? this.v4 : this.v6;
  }

  /** Every route, IPv4 first, each family in (address, length) order. */
  *values(): IterableIterator<Route> {
    for (const l of [this.v4, this.v6])
      for (let i = 0; i < l.count; i++) {
        const set = this.sets[l.set[i]!]!;
        yield { ...set, set, akey: set.key, key: l.key(i), prefix: l.prefix(i) };
      }
  }
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; errors: string[] };

const u32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
const NONE: number[] = [];
const NONE_LARGE: LargeCommunity[] = [];

/** Validates one route's attributes; problems go to `errors`. */
function parseAttrs(s: RouteSpec, i: number, errors: string[]): AttrFields {
  const where = () => `routes[${i}] (${s.prefix})`;
  if (s.nextHop !== undefined && parseAddr(s.nextHop) === null)
    errors.push(`${where()}: nextHop "${s.nextHop}" is not an IP address`);
  if (s.localPref !== undefined && !u32(s.localPref))
    errors.push(`${where()}: localPref ${s.localPref} is not a 32-bit unsigned integer`);
  if (s.med !== undefined && !u32(s.med))
    errors.push(`${where()}: med ${s.med} is not a 32-bit unsigned integer`);
  let communities: number[] = NONE;
  const extraLarge: LargeCommunity[] = [];
  if (s.communities !== undefined && s.communities.length > 0) {
    const cs: number[] = [];
    for (const c of s.communities) {
      // MetalLB writes large communities among the communities as "large:A:B:C".
      if (c.startsWith("large:")) {
        const v = parseLargeCommunity(c.slice(6));
        if (v === null)
          errors.push(`${where()}: large community "${c}" is not "large:A:B:C" of 32-bit numbers`);
        else extraLarge.push(v);
        continue;
      }
      const v = parseCommunity(c);
      if (v === null) errors.push(`${where()}: community "${c}" is not "A:B" with A, B < 65536`);
      else cs.push(v);
    }
    communities = [...new Set(cs)].sort((x, y) => x - y);
  }
  let large: LargeCommunity[] = NONE_LARGE;
  if ((s.largeCommunities !== undefined && s.largeCommunities.length > 0) || extraLarge.length > 0) {
    large = extraLarge;
    for (const c of s.largeCommunities ?? []) {
      const v = parseLargeCommunity(c);
      if (v === null) errors.push(`${where()}: large community "${c}" is not "A:B:C" of 32-bit numbers`);
      else large.push(v);
    }
    large.sort((x, y) => x[0] - y[0] || x[1] - y[1] || x[2] - y[2]);
  }
  const f: AttrFields = { communities, largeCommunities: large };
  if (s.nextHop !== undefined) f.nextHop = s.nextHop;
  if (s.localPref !== undefined) f.localPref = s.localPref;
  if (s.med !== undefined) f.med = s.med;
  return f;
}

function hasAttrs(s: RouteSpec): boolean {
  return (
    s.nextHop !== undefined ||
    s.localPref !== undefined ||
    s.med !== undefined ||
    (s.communities?.length ?? 0) > 0 ||
    (s.largeCommunities?.length ?? 0) > 0
  );
}

/** The same attributes as the previous spec, by identity (specs built from one template). */
function sameAttrs(a: RouteSpec, b: RouteSpec): boolean {
  return (
    a.nextHop === b.nextHop &&
    a.localPref === b.localPref &&
    a.med === b.med &&
    a.communities === b.communities &&
    a.largeCommunities === b.largeCommunities
  );
}

/** Collects one family's entries while parsing, then sorts and packs them. */
class ListBuilder {
  private bytes = new Uint8Array(0);
  private sets = new Uint32Array(0);
  private order = new Uint32Array(0);
  private n = 0;
  readonly width: number;

  /** `hint`: the most entries expected (all specs), allocated on the first add. */
  constructor(
    readonly family: 4 | 6,
    private readonly hint: number,
  ) {
    this.width = family === 4 ? 5 : 17;
  }

  private grow(): void {
    const cap = Math.max(this.hint, this.sets.length * 2, 16);
    const bytes = new Uint8Array(cap * this.width);
    bytes.set(this.bytes);
    this.bytes = bytes;
    const sets = new Uint32Array(cap);
    sets.set(this.sets);
    this.sets = sets;
    const order = new Uint32Array(cap);
    order.set(this.order);
    this.order = order;
  }

  add(addr: Uint8Array, len: number, set: number, index: number): void {
    if (this.n >= this.sets.length) this.grow();
    const w = this.width;
    const at = this.n * w;
    const bytes = this.bytes;
    for (let k = 0; k < w - 1; k++) bytes[at + k] = addr[k]!;
    bytes[at + w - 1] = len;
    this.sets[this.n] = set;
    this.order[this.n] = index;
    this.n++;
  }

  /** The sorted list; a prefix given twice is reported with the later input index. */
  build(specs: readonly RouteSpec[], errors: string[]): PrefixList {
    const w = this.width;
    const raw = new PrefixList(this.family, this.n, this.bytes, this.sets);
    let sorted = true;
    for (let i = 1; i < this.n && sorted; i++) if (raw.cmp(i - 1, raw, i) > 0) sorted = false;
    let idx: Uint32Array | null = null;
    if (!sorted) {
      idx = new Uint32Array(this.n);
      for (let i = 0; i < this.n; i++) idx[i] = i;
      idx.sort((a, b) => raw.cmp(a, raw, b) || a - b);
    }
    const at = (i: number) => (idx ? idx[i]! : i);
    const bytes = new Uint8Array(this.n * w);
    const set = new Uint32Array(this.n);
    for (let i = 0; i < this.n; i++) {
      const k = at(i);
      for (let x = 0; x < w; x++) bytes[i * w + x] = this.bytes[k * w + x]!;
      set[i] = raw.set[k]!;
      if (i > 0 && raw.cmp(at(i - 1), raw, k) === 0) {
        const later = Math.max(this.order[at(i - 1)]!, this.order[k]!);
        errors.push(`routes[${later}] (${specs[later]!.prefix}): prefix ${raw.key(k)} given twice`);
      }
    }
    return new PrefixList(this.family, this.n, bytes, set);
  }
}

/** Validates a whole desired set; any problem rejects all of it (bad input changes nothing). */
export function parseRoutes(specs: readonly RouteSpec[]): Parsed<RouteTable> {
  const errors: string[] = [];
  const sets: AttrSet[] = [];
  // The attribute signature of a spec → its set's index: 100k routes usually share one set, and
  // the encoded key is computed once per distinct signature, not per route.
  const bySig = new Map<string, number>();
  const lists = { 4: new ListBuilder(4, specs.length), 6: new ListBuilder(6, specs.length) };
  const v4addr = new Uint8Array(4);
  let prev: RouteSpec | null = null;
  let prevSet = -1;
  // Hot loop (100k routes at once): nothing allocated per route but what cannot be avoided.
  for (let i = 0; i < specs.length; i++) {
    const s = specs[i]!;
    let len = parseV4Into(s.prefix, v4addr);
    let family: 4 | 6 = 4;
    let addr: Uint8Array = v4addr;
    if (len < 0) {
      const p = parsePrefix(s.prefix);
      if (p === null) {
        errors.push(`routes[${i}] (${s.prefix}): "${s.prefix}" is not a prefix`);
        continue;
      }
      family = p.family;
      addr = p.addr;
      len = p.len;
    }
    let si = prev !== null && sameAttrs(prev, s) ? prevSet : -1;
    if (si < 0) {
      const before = errors.length;
      const f = parseAttrs(s, i, errors);
      if (errors.length > before) continue;
      const sig = hasAttrs(s)
        ? `${f.nextHop ?? ""}|${f.localPref ?? ""}|${f.med ?? ""}|${f.communities.join(",")}|${f.largeCommunities.map((c) => c.join(":")).join(",")}`
        : "";
      si = bySig.get(sig) ?? -1;
      if (si < 0) {
        si = sets.length;
        sets.push(internAttrSet(f));
        bySig.set(sig, si);
      }
    }
    prev = s;
    prevSet = si;
    lists[family].add(addr, len, si, i);
  }
  const v4 = lists[4].build(specs, errors);
  const v6 = lists[6].build(specs, errors);
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: new RouteTable(sets, v4, v6) };
}

/** What the session negotiated and knows about its own end. */
export interface SessionView {
  localAsn: number;
  peerAsn: number;
  /** Both sides sent the 4-octet AS capability. */
  as4: boolean;
  /** Families negotiated (both sides), e.g. {4, 6}. */
  families: ReadonlySet<4 | 6>;
  /** Our address on the session, used as next hop for routes of its family without one. */
  localAddress: string;
  /** Extended next hop (RFC 8950) negotiated for IPv4 over IPv6 next hops. */
  extendedNextHop: boolean;
  /**
   * Next hops for routes of the other family than the session's, from the interface the session
   * runs over (nexthop.ts): IPv4 for an IPv6 session; IPv6 global (+ link-local) for an IPv4 one.
   */
  otherFamilyNextHops?: { 4?: string; 6?: string[] };
}

export type OutAttributes = { attrs: PathAttributes; nextHops: string[] } | { error: string };

/** The attributes of a route of family `fam` with attributes `a` towards one peer, and its next hop(s). */
export function outAttributesOf(a: AttrFields, fam: 4 | 6, v: SessionView): OutAttributes {
  if (!v.families.has(fam)) return { error: `IPv${fam} not negotiated` };
  const sameFamily = v.localAddress.includes(":") === (fam === 6);
  let nhs: string[] | undefined;
  if (a.nextHop !== undefined) nhs = [a.nextHop];
  else if (sameFamily) nhs = [v.localAddress];
  else if (fam === 6) nhs = v.otherFamilyNextHops?.[6];
  else {
    const v4 = v.otherFamilyNextHops?.[4];
    // No IPv4 address on the session's interface: RFC 8950 lets the IPv6 session address serve.
    nhs = v4 !== undefined ? [v4] : v.extendedNextHop ? [v.localAddress] : undefined;
  }
  if (nhs === undefined || nhs.length === 0)
    return {
      error: `no IPv${fam} address on the interface of this IPv${fam === 4 ? 6 : 4} session to use as next hop`,
    };
  if (fam === 4 && nhs[0]!.includes(":") && !v.extendedNextHop)
    return { error: "IPv6 next hop for IPv4 needs extended next hop" };
  const ibgp = v.localAsn === v.peerAsn;
  const attrs: PathAttributes = { origin: Origin.IGP };
  if (ibgp) {
    attrs.asPath = [];
    attrs.localPref = a.localPref ?? 100;
  } else if (v.as4 || v.localAsn <= 0xffff) {
    attrs.asPath = [{ type: AsPathSegType.AS_SEQUENCE, asns: [v.localAsn] }];
  } else {
    attrs.asPath = [{ type: AsPathSegType.AS_SEQUENCE, asns: [AS_TRANS] }];
    attrs.as4Path = [{ type: AsPathSegType.AS_SEQUENCE, asns: [v.localAsn] }];
  }
  if (a.med !== undefined) attrs.med = a.med;
  if (a.communities.length > 0) attrs.communities = [...a.communities];
  if (a.largeCommunities.length > 0)
    attrs.largeCommunities = a.largeCommunities.map((c) => [...c] as LargeCommunity);
  return { attrs, nextHops: nhs };
}

/** The attributes of `r` towards one peer, and its next hop(s); an error if it cannot be sent. */
export function outAttributes(r: Route, v: SessionView): OutAttributes {
  return outAttributesOf(r, r.prefix.family, v);
}

/** A stable identity of everything but the prefix: routes with equal keys share an UPDATE. */
export function attrKey(r: Route): string {
  return r.akey;
}
