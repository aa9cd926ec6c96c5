/**
 * Adj-RIB-Out, pure: turns the caller's desired routes for one peer into wire attributes, diffs
 * them against what the peer already has, and packs the difference into UPDATEs (one attribute
 * set per group, groups packed to 4096 bytes). The session only keeps the map of what was sent.
 *
 * Attributes follow RFC 4271 §5.1 for locally originated routes: ORIGIN IGP; AS_PATH empty to
 * internal peers, [myASN] to external ones (AS_TRANS + AS4_PATH to a 2-octet peer, RFC 6793 §4.2.2);
 * LOCAL_PREF only to internal peers (§5.1.5); MED, COMMUNITIES (RFC 1997) and LARGE_COMMUNITIES
 * (RFC 8092) as given.
 */
import {
  AS_TRANS,
  AsPathSegType,
  type AttrContext,
  formatPrefix,
  Origin,
  type PathAttributes,
  type Prefix,
  packReach,
  packWithdraw,
  parseAddr,
  parseCommunity,
  parseLargeCommunity,
  parsePrefix,
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

/** A validated route: parsed once, attributes computed per session. */
export interface Route {
  key: string;
  /** attrKey() of this route, computed once when parsed. */
  akey: string;
  prefix: Prefix;
  nextHop?: string;
  localPref?: number;
  communities: number[];
  largeCommunities: [number, number, number][];
  med?: number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; errors: string[] };

const u32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;

/** Validates a whole desired set; any problem rejects all of it (bad input changes nothing). */
export function parseRoutes(specs: readonly RouteSpec[]): Parsed<Map<string, Route>> {
  const errors: string[] = [];
  const out = new Map<string, Route>();
  const akeys = new Map<string, string>();
  // Hot loop (100k routes at once): no per-route closures or strings unless there is a problem.
  for (let i = 0; i < specs.length; i++) {
    const s = specs[i]!;
    const where = () => `routes[${i}] (${s.prefix})`;
    const p = parsePrefix(s.prefix);
    if (p === null) {
      errors.push(`${where()}: "${s.prefix}" is not a prefix`);
      continue;
    }
    if (s.nextHop !== undefined && parseAddr(s.nextHop) === null)
      errors.push(`${where()}: nextHop "${s.nextHop}" is not an IP address`);
    if (s.localPref !== undefined && !u32(s.localPref))
      errors.push(`${where()}: localPref ${s.localPref} is not a 32-bit unsigned integer`);
    if (s.med !== undefined && !u32(s.med))
      errors.push(`${where()}: med ${s.med} is not a 32-bit unsigned integer`);
    let communities: number[] = NONE;
    const extraLarge: [number, number, number][] = [];
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
    let large: [number, number, number][] = NONE_LARGE;
    if ((s.largeCommunities !== undefined && s.largeCommunities.length > 0) || extraLarge.length > 0) {
      large = extraLarge;
      for (const c of s.largeCommunities ?? []) {
        const v = parseLargeCommunity(c);
        if (v === null) errors.push(`${where()}: large community "${c}" is not "A:B:C" of 32-bit numbers`);
        else large.push(v);
      }
      large.sort((x, y) => x[0] - y[0] || x[1] - y[1] || x[2] - y[2]);
    }
    const key = formatPrefix(p);
    if (out.has(key)) errors.push(`${where()}: prefix ${key} given twice`);
    const r: Route = { key, prefix: p, communities, largeCommunities: large, akey: "" };
    if (s.nextHop !== undefined) r.nextHop = s.nextHop;
    if (s.localPref !== undefined) r.localPref = s.localPref;
    if (s.med !== undefined) r.med = s.med;
    // Interned: 100k routes usually share one attribute set, and each concatenated key would
    // otherwise cost ~200 bytes.
    const ak = attrKeyOf(r);
    let shared = akeys.get(ak);
    if (shared === undefined) {
      akeys.set(ak, ak);
      shared = ak;
    }
    r.akey = shared;
    out.set(key, r);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: out };
}

const NONE: number[] = [];
const NONE_LARGE: [number, number, number][] = [];

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

/** The attributes of `r` towards one peer, and its next hop(s); null if it cannot be sent. */
export function outAttributes(
  r: Route,
  v: SessionView,
): { attrs: PathAttributes; nextHops: string[] } | { error: string } {
  const fam = r.prefix.family;
  if (!v.families.has(fam)) return { error: `IPv${fam} not negotiated` };
  const sameFamily = v.localAddress.includes(":") === (fam === 6);
  let nhs: string[] | undefined;
  if (r.nextHop !== undefined) nhs = [r.nextHop];
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
    attrs.localPref = r.localPref ?? 100;
  } else if (v.as4 || v.localAsn <= 0xffff) {
    attrs.asPath = [{ type: AsPathSegType.AS_SEQUENCE, asns: [v.localAsn] }];
  } else {
    attrs.asPath = [{ type: AsPathSegType.AS_SEQUENCE, asns: [AS_TRANS] }];
    attrs.as4Path = [{ type: AsPathSegType.AS_SEQUENCE, asns: [v.localAsn] }];
  }
  if (r.med !== undefined) attrs.med = r.med;
  if (r.communities.length > 0) attrs.communities = r.communities;
  if (r.largeCommunities.length > 0) attrs.largeCommunities = r.largeCommunities;
  return { attrs, nextHops: nhs };
}

/** A stable identity of everything but the prefix: routes with equal keys share an UPDATE. */
export function attrKey(r: Route): string {
  return r.akey;
}

function attrKeyOf(r: Omit<Route, "akey">): string {
  return `${r.nextHop ?? ""}|${r.localPref ?? ""}|${r.med ?? ""}|${r.communities.join(",")}|${r.largeCommunities.map((c) => c.join(":")).join(",")}`;
}

export interface RibDiff {
  announce: Route[];
  withdraw: Prefix[];
}

/** The difference between what was sent (prefix → attrKey) and what is desired. */
export function diffRib(sent: ReadonlyMap<string, string>, desired: ReadonlyMap<string, Route>): RibDiff {
  const announce: Route[] = [];
  const withdraw: Prefix[] = [];
  for (const [k, r] of desired) if (sent.get(k) !== attrKey(r)) announce.push(r);
  for (const k of sent.keys()) {
    if (!desired.has(k)) {
      const p = parsePrefixUnchecked(k);
      if (p) withdraw.push(p);
    }
  }
  return { announce, withdraw };
}

function parsePrefixUnchecked(k: string): Prefix | null {
  return parsePrefix(k);
}

export interface EncodedDiff {
  messages: Uint8Array[];
  /** Prefixes now at the peer (key → attrKey) after these messages: apply to `sent`. */
  announced: Map<string, string>;
  withdrawn: string[];
  /** Routes that could not be sent to this peer, with the reason. */
  skipped: { key: string; reason: string }[];
}

/** Packs a diff into UPDATEs for one session: withdrawals first, then one group per attribute set. */
export function encodeDiff(d: RibDiff, v: SessionView, sent: ReadonlyMap<string, string>): EncodedDiff {
  const ctx: AttrContext = { as4: v.as4, ebgp: v.localAsn !== v.peerAsn };
  const messages: Uint8Array[] = [];
  const announced = new Map<string, string>();
  const withdrawn: string[] = [];
  const skipped: { key: string; reason: string }[] = [];
  for (const fam of [4, 6] as const) {
    const ws = d.withdraw.filter((p) => p.family === fam);
    if (ws.length > 0 && v.families.has(fam)) {
      messages.push(...packWithdraw(fam, ws));
      for (const p of ws) withdrawn.push(formatPrefix(p));
    }
  }
  // Routes with equal family and attrKey get equal attributes: group first, then compute the
  // attributes once per group (100k routes usually form one group).
  const byKey = new Map<string, Route[]>();
  for (const r of d.announce) {
    const gk = `${r.prefix.family}|${attrKey(r)}`;
    const list = byKey.get(gk);
    if (list) list.push(r);
    else byKey.set(gk, [r]);
  }
  for (const rs of byKey.values()) {
    const first = rs[0]!;
    const o = outAttributes(first, v);
    if ("error" in o) {
      for (const r of rs) {
        skipped.push({ key: r.key, reason: o.error });
        // A route we can no longer send must not stay at the peer with old attributes.
        if (sent.has(r.key) && v.families.has(r.prefix.family)) {
          messages.push(...packWithdraw(r.prefix.family, [r.prefix]));
          withdrawn.push(r.key);
        }
      }
      continue;
    }
    const prefixes = rs.map((r) => r.prefix);
    messages.push(
      ...packReach({ attributes: o.attrs, family: first.prefix.family, nextHops: o.nextHops, prefixes }, ctx),
    );
    for (const r of rs) announced.set(r.key, attrKey(r));
  }
  return { messages, announced, withdrawn, skipped };
}
