/**
 * The planner's indexes and small helpers (src/plan/plan.ts is the Planner itself): what a Config
 * offers the planner, indexed once per Config object (Service by key, advertisements by pool),
 * the per-Service decisions with what they were computed from, the members' hash order, and
 * sorting by IP that reuses the last permutation. Pure.
 */

import type { Config } from "../config/index.ts";
import type { IPAddressPool } from "../config/schemas.ts";
import { advertisedPools, serviceKey } from "../config/validate.ts";
import { parseIp, parseRange, rangeContains } from "../util/ip.ts";
import { sameEnds } from "../util/same-ends.ts";
import type { Decline, Election, ElectionAdvertisement, ElectionNode } from "./election.ts";
import type { ElectionInputs, NodeInfo, PlannedAssignment } from "./plan-types.ts";

/** The pool whose addresses contain an IP (undefined: none); first pool wins on overlap. */
export function poolFinder(pools: readonly IPAddressPool[]): (ip: string) => IPAddressPool | undefined {
  const ranges = pools.flatMap((p) =>
    p.spec.addresses.flatMap((a) => {
      const r = parseRange(a);
      return r.ok ? [{ pool: p, range: r.value }] : [];
    }),
  );
  return (text) => {
    const ip = parseIp(text);
    return ip === null ? undefined : ranges.find((x) => rangeContains(x.range, ip))?.pool;
  };
}

export type L2Ad = Config["l2Advertisements"][number];

/** A Service as the planner sees it: its labels (and their text, to compare), its traffic policy. */
export interface ServiceFacts {
  labels: Record<string, string> | undefined;
  labelsText: string;
  local: boolean;
}

/** What a Config offers the planner, indexed once per Config object. */
export interface Indexed {
  poolOf(ip: string): IPAddressPool | undefined;
  /** By key (looked up only: in no particular order once an index was changed into another). */
  services: Map<string, ServiceFacts>;
  /** Per pool name, the L2Advertisements that cover it, in manifest order. */
  l2ByPool: Map<string, L2Ad[]>;
  /** What layer-2 decisions depend on besides the Service and the nodes: pools, advertisements. */
  l2Text: string;
  /** What routes depend on besides the Service: pools, BGP advertisements, peers, communities. */
  bgpText: string;
  /**
   * The index this one was changed from, and the keys whose entries changed (added, removed or
   * replaced): every other key has the same facts in both.
   */
  from?: { ix: Indexed; keys: ReadonlySet<string> } | undefined;
}

export const indexes = new WeakMap<Config, Indexed>();
export const NO_SERVICE: ServiceFacts = { labels: undefined, labelsText: "-", local: false };

type ServiceObject = Config["services"][number];
/**
 * Per Service object, its key and facts: a Config rebuilt around unchanged objects (a file
 * reload's delta, src/appliance/config-delta.ts) indexes them without making their text again.
 */
const factsOf = new WeakMap<ServiceObject, { key: string; facts: ServiceFacts }>();

/**
 * Facts repeat (10,000 Services, a few label sets): one object for each distinct labels text and
 * traffic policy, at most FACTS_MAX of them (past that, each Service has its own). Equal labels
 * match the same selectors, so any of the Services' own label objects serves them all.
 */
const FACTS_MAX = 4096;
const knownFacts = new Map<string, ServiceFacts>();

function sharedFacts(labels: ServiceFacts["labels"], local: boolean): ServiceFacts {
  const labelsText = JSON.stringify(labels ?? null);
  const key = `${local ? "L" : "C"}${labelsText}`;
  const known = knownFacts.get(key);
  if (known !== undefined) return known;
  const facts: ServiceFacts = { labels, labelsText, local };
  if (knownFacts.size < FACTS_MAX) knownFacts.set(key, facts);
  return facts;
}

/** A Service object's key and facts (made once per object). */
function keyedFacts(s: ServiceObject): { key: string; facts: ServiceFacts } {
  let f = factsOf.get(s);
  if (f === undefined) {
    const labels = s.metadata.labels;
    f = { key: serviceKey(s), facts: sharedFacts(labels, s.spec.externalTrafficPolicy === "Local") };
    factsOf.set(s, f);
  }
  return f;
}

/** A Service object's key ("ns/name"), the same string each time it is asked for (made once per object). */
export const keyOfService = (s: ServiceObject): string => keyedFacts(s).key;

/**
 * The last Config indexed and its index, when every Service key in it was distinct (so that its
 * Services map has one entry per Service): the next Config that differs in a few Services only
 * takes its map over (see `indexed`).
 */
let lastIndexed: { config: Config; ix: Indexed } | undefined;

/** Lists besides the Services that the index is made from (the same arrays: the same index). */
const sameLists = (a: Config, b: Config) =>
  a.pools === b.pools &&
  a.l2Advertisements === b.l2Advertisements &&
  a.bgpAdvertisements === b.bgpAdvertisements &&
  a.peers === b.peers &&
  a.communities === b.communities;

/**
 * The Config's index, made once per Config object. A Config that shares every list but the
 * Services with the last one indexed, and whose Services are the last one's with a few added or
 * removed between the same first and last ones (a file reload's, src/appliance/config-delta.ts),
 * takes the last index's Services map over and changes only those entries; the last Config's
 * index is then forgotten (made again if it is asked for).
 */
export function indexed(config: Config): Indexed {
  const known = indexes.get(config);
  if (known !== undefined) return known;
  const prev = lastIndexed;
  lastIndexed = undefined;
  if (prev !== undefined && sameLists(prev.config, config)) {
    // Its map is about to change: the last Config's index is made again if asked for.
    indexes.delete(prev.config);
    const ix = patched(prev.config, prev.ix, config);
    if (ix !== undefined) {
      indexes.set(config, ix);
      lastIndexed = { config, ix };
      indexStats.patched++;
      return ix;
    }
  }
  const ix = indexOf(config);
  indexes.set(config, ix);
  if (ix.services.size === config.services.length) lastIndexed = { config, ix };
  return ix;
}

/** How many indexes were made by changing the last one (tests). */
export const indexStats = { patched: 0 };

/** The Config's index made from scratch (neither `indexes` nor the last index read or changed). */
export function indexOf(config: Config): Indexed {
  const services = new Map<string, ServiceFacts>();
  for (const s of config.services) {
    const f = keyedFacts(s);
    if (!services.has(f.key)) services.set(f.key, f.facts);
  }
  const l2ByPool = new Map(
    config.pools.map((p) => [
      p.metadata.name,
      config.l2Advertisements.filter((ad) => advertisedPools(ad.spec, [p]).length > 0),
    ]),
  );
  const pools = config.pools.map((p) => [p.metadata.name, p.metadata.labels, p.spec.addresses]);
  const ix: Indexed = {
    poolOf: poolFinder(config.pools),
    services,
    l2ByPool,
    l2Text: JSON.stringify([pools, config.l2Advertisements.map((a) => [a.metadata.name, a.spec])]),
    bgpText: JSON.stringify([
      pools,
      config.bgpAdvertisements.map((a) => a.spec),
      config.peers.map((p) => [p.metadata.name, p.spec]),
      config.communities.map((c) => c.spec),
    ]),
  };
  return ix;
}

/**
 * `prev`'s index changed into `config`'s (the same lists but the Services; `prev`'s keys
 * distinct), or undefined when much changed or a key would be taken twice (the caller makes it
 * anew; `ix` may then be changed already, and is not used again).
 */
function patched(prev: Config, ix: Indexed, config: Config): Indexed | undefined {
  const old = prev.services;
  const now = config.services;
  const m = old.length;
  const n = now.length;
  const { head: p, tail: q } = sameEnds(old, now);
  if (m - p - q + (n - p - q) > Math.max(64, n / 8)) return undefined;
  const services = ix.services;
  const keys = new Set<string>();
  for (let i = p; i < m - q; i++) {
    const key = keyedFacts(old[i] as ServiceObject).key;
    services.delete(key);
    keys.add(key);
  }
  for (let i = p; i < n - q; i++) {
    const f = keyedFacts(now[i] as ServiceObject);
    if (services.has(f.key)) return undefined;
    services.set(f.key, f.facts);
    keys.add(f.key);
  }
  // One entry per Service: the keys are still distinct, and the map is exactly the Services'.
  if (services.size !== n) return undefined;
  // The last index only, not a chain of them (it is forgotten: nothing else reads it).
  const next: Indexed = { ...ix, services, from: { ix, keys } };
  ix.from = undefined;
  return next;
}

/**
 * What one Service contributes on layer 2, and what that was computed from. The part fixed by
 * the config and the Service (pool, advertisements, interfaces) is kept across member changes;
 * the election is redone when the members, declines or endpoints change (`round`).
 */
export interface L2Decision {
  /** What it was computed from (as a Basis, kept in the decision): the Service's addresses, */
  fromIps: readonly string[];
  /** its labels' text and its local endpoints' text. */
  labels: string;
  eps: string;
  /** Its addresses in the pool of its first one (the others are silent); empty: none announced. */
  ips: readonly string[];
  /** The advertisements that announce it, and their names as one text (a memo key). */
  ads: ElectionAdvertisement[];
  adsKey: string;
  /** This node's interfaces for it (empty: all). */
  interfaces: string[];
  election: Election | undefined;
  /** The election round the election is from. */
  round: number;
  /** The members' hash order for its first address, and the Planner's orders generation of it. */
  order: string[] | undefined;
  orders: number;
}

/** What a Service's decision was computed from: its addresses, labels and local endpoints. */
export interface Basis {
  ips: readonly string[];
  labels: string;
  eps: string;
}

export function sameBasis(b: Basis, ips: readonly string[], labels: string, eps: string): boolean {
  return b.labels === labels && b.eps === eps && sameList(b.ips, ips);
}

export function sameL2Basis(d: L2Decision, ips: readonly string[], labels: string, eps: string): boolean {
  return d.labels === labels && d.eps === eps && sameList(d.fromIps, ips);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The advertisements that announce a Service's VIPs, and this node's interfaces for them. */
export interface AdsOnPool {
  ads: ElectionAdvertisement[];
  adsKey: string;
  interfaces: string[];
}

/** One election round: the members, declines and endpoints every election of a plan shares. */
export interface Round {
  no: number;
  nodes: readonly ElectionNode[];
  names: readonly string[];
  declines: ReadonlyMap<string, readonly Decline[]> | undefined;
  /** Every address some node declines. */
  declined: ReadonlySet<string>;
  /** Per hash order (interned: one array per distinct order), per advertisements and endpoints. */
  memo: Map<readonly string[], Map<string, Election>>;
}

/** One route one Service contributes, under one BGPAdvertisement. */
export interface RoutePart {
  id: string;
  peer: string;
  prefix: string;
  localPref: number | undefined;
  standard: readonly string[];
  large: readonly string[];
}

/** What one Service contributes to BGP, per BGPAdvertisement (index in the config). */
export interface BgpDecision {
  from: Basis;
  byAd: (RoutePart[] | undefined)[];
}

/** A BGPAdvertisement as it applies to this node. */
export interface AdOnNode {
  selectors: Config["bgpAdvertisements"][number]["spec"]["serviceSelectors"];
  peers: { name: string; ebgp: boolean }[];
  pools: Set<string>;
  standard: string[];
  large: string[];
  localPref: number | undefined;
  len4: number;
  len6: number;
}

export const byKey = (x: { key: string }, y: { key: string }) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0);
export const byIp = (x: { ip: string }, y: { ip: string }) => (x.ip < y.ip ? -1 : x.ip > y.ip ? 1 : 0);

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return 0;
}

/** Node names in sha256(node + "#" + ip) order (as comparing the hex texts orders them). */
export function hashOrder(ip: string, names: readonly string[]): string[] {
  return names
    .map((n) => ({ n, h: Bun.SHA256.hash(`${n}#${ip}`) as Uint8Array }))
    .sort((a, b) => compareBytes(a.h, b.h))
    .map((x) => x.n);
}

/** Every known node with its election status (live members alive, the rest by `inputs`). */
export function electionNodes(members: readonly NodeInfo[], inputs: ElectionInputs): ElectionNode[] {
  const live = new Set(members.map((m) => m.name));
  const known = new Map<string, NodeInfo>();
  for (const n of [...members, ...(inputs.known ?? [])]) if (!known.has(n.name)) known.set(n.name, n);
  return [...known.values()].map((n) => ({
    name: n.name,
    labels: n.labels,
    status: live.has(n.name) ? "alive" : inputs.notReady?.has(n.name) ? "notReady" : "notAlive",
    networkUnavailable: inputs.networkUnavailable?.has(n.name),
  }));
}

/**
 * Sorts entries by IP (entries with the same IP in the order they come). Entries come in Service
 * order; when they come in the same IP order as last time (a member change moves owners, not
 * addresses) the last permutation is reused, and when a few were added or removed between the
 * same first and last ones (a one-Service reload), it is patched: the others keep their order,
 * the new ones are inserted where they belong.
 */
export class IpSorter {
  private ips: string[] = [];
  private perm: number[] = [];

  sort<T extends { ip: string }>(xs: T[]): T[] {
    const m = this.ips.length;
    const n = xs.length;
    let p = 0;
    while (p < m && p < n && (xs[p] as T).ip === this.ips[p]) p++;
    if (p < m || p < n) {
      let q = 0;
      while (q < m - p && q < n - p && (xs[n - 1 - q] as T).ip === this.ips[m - 1 - q]) q++;
      const ips = xs.map((x) => x.ip);
      const before = (i: number, j: number) => {
        const a = ips[i] as string;
        const b = ips[j] as string;
        return a < b || (a === b && i < j);
      };
      if (m - p - q + (n - p - q) <= Math.max(64, n / 16)) {
        // The kept entries' places, in the last order (an index past the change moves by n - m).
        const perm: number[] = [];
        for (const i of this.perm)
          if (i < p) perm.push(i);
          else if (i >= m - q) perm.push(i + n - m);
        for (let k = p; k < n - q; k++) {
          let lo = 0;
          let hi = perm.length;
          while (lo < hi) {
            const mid = (lo + hi) >> 1;
            if (before(perm[mid] as number, k)) lo = mid + 1;
            else hi = mid;
          }
          perm.splice(lo, 0, k);
        }
        this.perm = perm;
      } else this.perm = xs.map((_, i) => i).sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
      this.ips = ips;
    }
    return this.perm.map((i) => xs[i] as T);
  }
}

/** The entries of `m` for the assignments' keys only. */
export function prune<T>(m: Map<string, T>, sorted: readonly PlannedAssignment[]): Map<string, T> {
  const out = new Map<string, T>();
  for (const a of sorted) {
    const v = m.get(a.key);
    if (v !== undefined) out.set(a.key, v);
  }
  return out;
}
