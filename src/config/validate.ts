/**
 * Cross-object validation and the validated configuration (`Config`) the rest of vipd consumes.
 *
 * Checks what MetalLB's admission webhooks check (internal/config/config.go), and more: duplicate
 * names, overlapping pools, references to pools / peers / BFD profiles / community aliases that do
 * not exist, aggregation lengths shorter than a pool entry's widest block (MetalLB's rule), two
 * advertisements giving one pool different LOCAL_PREFs on the same peers and nodes, BFD echo
 * mode, Services whose annotations disagree with spec.loadBalancerIP. Pure: objects in, config
 * and problems out.
 */

import { formatIp, type IpRange, parseIp, parseRange, rangeToCidrs } from "../util/ip.ts";
import { fieldPath, jsonPointer, type Loaded, type PathKey, type Problem } from "./load.ts";
import type {
  AnyObject,
  BFDProfile,
  BGPAdvertisement,
  BGPPeer,
  Community,
  IPAddressPool,
  L2Advertisement,
  Namespace,
  NodeSettings,
  Service,
} from "./schemas.ts";
import { anySelectorMatches, type Labels, selectorKey } from "./selector.ts";

/** The validated configuration: every object, defaults applied, cross-checked. */
export interface Config {
  pools: IPAddressPool[];
  l2Advertisements: L2Advertisement[];
  bgpAdvertisements: BGPAdvertisement[];
  peers: BGPPeer[];
  bfdProfiles: BFDProfile[];
  communities: Community[];
  services: Service[];
  namespaces: Namespace[];
  nodeSettings: NodeSettings | undefined;
}

export function emptyConfig(): Config {
  return {
    pools: [],
    l2Advertisements: [],
    bgpAdvertisements: [],
    peers: [],
    bfdProfiles: [],
    communities: [],
    services: [],
    namespaces: [],
    nodeSettings: undefined,
  };
}

/** Annotation keys, new prefix first. */
export const ANNOTATION_PREFIXES = ["metallb.io/", "metallb.universe.tf/"] as const;

/** Reads an annotation honouring both prefixes; the new `metallb.io/` prefix wins. */
export function annotation(
  svc: Service,
  key: "loadBalancerIPs" | "address-pool" | "allow-shared-ip",
): { value: string; prefix: string } | undefined {
  const a = svc.metadata.annotations ?? {};
  for (const p of ANNOTATION_PREFIXES) {
    const v = a[`${p}${key}`];
    if (v !== undefined) return { value: v, prefix: p };
  }
  return undefined;
}

export function serviceKey(svc: Service): string {
  return `${svc.metadata.namespace ?? "default"}/${svc.metadata.name}`;
}

/** The pools an advertisement applies to: named, selected, or (neither given) all. */
export function advertisedPools(
  spec: {
    ipAddressPools?: string[] | undefined;
    ipAddressPoolSelectors?: { matchLabels?: Record<string, string> | undefined }[] | undefined;
  },
  pools: readonly IPAddressPool[],
): IPAddressPool[] {
  const names = spec.ipAddressPools ?? [];
  const sels = spec.ipAddressPoolSelectors ?? [];
  if (names.length === 0 && sels.length === 0) return [...pools];
  return pools.filter(
    (p) =>
      names.includes(p.metadata.name) || (sels.length > 0 && anySelectorMatches(sels, p.metadata.labels)),
  );
}

/** A node as the LOCAL_PREF check sees it (when the caller knows the cluster's nodes). */
export interface NodeLabels {
  name: string;
  labels?: Labels;
}

export interface BuildOptions {
  /**
   * Problems already found (schema errors): objects named in them were refused, so references to
   * them are not reported again as "does not exist".
   */
  invalid?: readonly Problem[] | undefined;
  /**
   * The nodes, when known (Kubernetes mode): the LOCAL_PREF check then compares the nodes each
   * advertisement selects, as MetalLB does. Without them it compares the selectors themselves.
   */
  nodes?: readonly NodeLabels[] | undefined;
}

type AdvSpec = BGPAdvertisement["spec"];

/** The families a pool's addresses hold. */
function poolFamilies(p: IPAddressPool): { v4: boolean; v6: boolean } {
  let v4 = false;
  let v6 = false;
  for (const a of p.spec.addresses) {
    const r = parseRange(a);
    if (r.ok && r.value.family === 4) v4 = true;
    if (r.ok && r.value.family === 6) v6 = true;
  }
  return { v4, v6 };
}

/**
 * MetalLB's BGPAdvertisementsHaveCompatibleLocalPref: two advertisements of one pool may give it
 * different LOCAL_PREFs only when they announce different prefixes (another aggregation length in
 * every family the pool has), to no common peer (both name their peers), or from no common node.
 */
function compatibleLocalPref(
  a: AdvSpec,
  b: AdvSpec,
  pool: IPAddressPool,
  nodes?: readonly NodeLabels[],
): boolean {
  if ((a.localPref ?? 0) === (b.localPref ?? 0)) return true;
  const f = poolFamilies(pool);
  if (!f.v4 && !f.v6) return true;
  const diff4 = a.aggregationLength !== b.aggregationLength;
  const diff6 = a.aggregationLengthV6 !== b.aggregationLengthV6;
  if (diff4 && !f.v6) return true;
  if (diff6 && !f.v4) return true;
  if (diff4 && diff6) return true;
  const pa = a.peers ?? [];
  const pb = b.peers ?? [];
  if (pa.length > 0 && pb.length > 0 && !pa.some((p) => pb.includes(p))) return true;
  if (nodes !== undefined) {
    const sel = (s: AdvSpec) => nodes.filter((n) => anySelectorMatches(s.nodeSelectors, n.labels));
    const nb = new Set(sel(b).map((n) => n.name));
    return !sel(a).some((n) => nb.has(n.name));
  }
  // Without the nodes: the same nodes are certain when either selects every node or both select
  // with the same selectors; other selectors are taken to select different nodes.
  const sa = a.nodeSelectors ?? [];
  const sb = b.nodeSelectors ?? [];
  if (sa.length === 0 || sb.length === 0) return false;
  const ka = new Set(sa.map(selectorKey));
  const kb = new Set(sb.map(selectorKey));
  return !(ka.size === kb.size && [...ka].every((k) => kb.has(k)));
}

/** Reporting shared by the checks below: a problem at a field of an object, and references. */
export interface Checker {
  /** Records a problem at `path` of the object `l`. */
  at(l: Loaded, path: PathKey[], message: string): void;
  /** Keys `Kind/name` of objects their schema refused: references to them are not reported again. */
  refused: ReadonlySet<string>;
  /** A reference to `name` of `kind` is good: it names a loaded object or a refused one. */
  exists(kind: string, names: ReadonlySet<string>, name: string): boolean;
}

/** @internal (build-incremental.ts) */
export function checker(problems: Problem[], invalid: readonly Problem[]): Checker {
  const refused = new Set(invalid.filter((p) => p.kind && p.name).map((p) => `${p.kind}/${p.name}`));
  return {
    refused,
    exists: (kind, names, name) => names.has(name) || refused.has(`${kind}/${name}`),
    at: (l, path, message) => {
      const o = l.obj as AnyObject;
      problems.push({
        file: l.file,
        line: l.lineOf(path),
        kind: o.kind,
        name: o.metadata.name,
        field: fieldPath(path),
        message,
        pointer: jsonPointer([...(l.at ?? []), ...path]),
        doc: l.doc,
      });
    },
  };
}

/** Objects with their duplicates left out (and reported): a name is unique per kind. */
function uniqueObjects(objects: readonly Loaded[], c: Checker): Loaded[] {
  // metallb.io objects are referred to by name alone, so a name is unique per kind.
  const seen = new Map<string, Loaded>();
  const unique: Loaded[] = [];
  for (const l of objects) {
    const o = l.obj;
    const ns = o.kind === "Service" ? (o.metadata.namespace ?? "default") : "";
    const key = o.kind === "NodeSettings" ? "NodeSettings" : `${o.kind}/${ns}/${o.metadata.name}`;
    const prev = seen.get(key);
    if (prev) {
      const line = prev.lineOf(["metadata", "name"]);
      const where = prev.file === l.file ? `line ${line}` : `${prev.file}:${line}`;
      c.at(
        l,
        ["metadata", "name"],
        o.kind === "NodeSettings"
          ? `only one NodeSettings is allowed per node (another is at ${where}); merge them`
          : `duplicate ${o.kind} "${o.metadata.name}" (first defined at ${where}); rename one`,
      );
      continue;
    }
    seen.set(key, l);
    unique.push(l);
  }
  return unique;
}

/** Overlaps between and within pools (per family, a sweep over sorted ranges). */
function checkPoolOverlaps(pools: readonly Loaded<IPAddressPool>[], c: Checker): void {
  const ranges: { r: IpRange; l: Loaded<IPAddressPool>; i: number; text: string }[] = [];
  for (const l of pools) {
    l.obj.spec.addresses.forEach((a, i) => {
      const r = parseRange(a);
      if (r.ok) ranges.push({ r: r.value, l, i, text: a.trim() });
    });
  }
  ranges.sort(
    (a, b) => a.r.family - b.r.family || (a.r.first < b.r.first ? -1 : a.r.first > b.r.first ? 1 : 0),
  );
  let widest: (typeof ranges)[number] | undefined;
  for (const cur of ranges) {
    if (widest && widest.r.family === cur.r.family && cur.r.first <= widest.r.last) {
      const other =
        widest.l === cur.l ? "another entry of this pool" : `pool "${widest.l.obj.metadata.name}"`;
      c.at(
        cur.l,
        ["spec", "addresses", cur.i],
        `${cur.text} overlaps ${widest.text} of ${other}; ${widest.l === cur.l ? "list each address once" : "pools must not share addresses"}`,
      );
    }
    if (!widest || widest.r.family !== cur.r.family || cur.r.last > widest.r.last) widest = cur;
  }
}

/** Community aliases are unique across Community objects; returns them by name. */
function communityAliases(
  communities: readonly Loaded<Community>[],
  c: Checker,
): Map<string, Loaded<Community>> {
  const aliases = new Map<string, Loaded<Community>>();
  for (const l of communities) {
    l.obj.spec.communities.forEach((cm, i) => {
      const prev = aliases.get(cm.name);
      if (prev)
        c.at(
          l,
          ["spec", "communities", i, "name"],
          `community alias "${cm.name}" is already defined in Community "${prev.obj.metadata.name}"`,
        );
      else aliases.set(cm.name, l);
    });
  }
  return aliases;
}

/**
 * MetalLB's rule (validateBGPAdvPerPool): the aggregation length may not be shorter than the
 * widest CIDR block of any address entry of the pool (a range counts by its widest block).
 */
function checkAggregation(l: Loaded<BGPAdvertisement>, pools: readonly IPAddressPool[], c: Checker): void {
  const s = l.obj.spec;
  const reported = new Set<number>();
  for (const pl of advertisedPools(s, pools)) {
    for (const a of pl.spec.addresses) {
      const r = parseRange(a);
      if (!r.ok) continue;
      const family = r.value.family;
      const agg = family === 4 ? s.aggregationLength : s.aggregationLengthV6;
      let widest: { prefixLen: number; base: bigint } | undefined;
      for (const cidr of rangeToCidrs(r.value))
        if (widest === undefined || cidr.prefixLen < widest.prefixLen) widest = cidr;
      if (widest === undefined || widest.prefixLen <= agg || reported.has(family)) continue;
      reported.add(family);
      const block = `${formatIp({ family, value: widest.base })}/${widest.prefixLen}`;
      const entry = a.trim();
      c.at(
        l,
        ["spec", family === 4 ? "aggregationLength" : "aggregationLengthV6"],
        entry.includes("-")
          ? `/${agg} is wider than ${block}, the widest block of range ${entry.replace(/\s+/g, "")} in pool "${pl.metadata.name}"; use ${widest.prefixLen} or more`
          : `/${agg} is wider than block ${block} of pool "${pl.metadata.name}", so it would announce addresses outside the pool; use ${widest.prefixLen} or more`,
      );
    }
  }
}

/**
 * MetalLB's LOCAL_PREF rule: one route, one LOCAL_PREF. `attached` holds, per pool, the
 * advertisements already seen for it (MetalLB's pool.BGPAdvertisements); `l` is added to it.
 * Advertisements with service selectors are not compared (which Services they cover is not known
 * here).
 */
function checkLocalPref(
  l: Loaded<BGPAdvertisement>,
  pools: readonly IPAddressPool[],
  attached: Map<string, Loaded<BGPAdvertisement>[]>,
  nodes: readonly NodeLabels[] | undefined,
  c: Checker,
): void {
  const s = l.obj.spec;
  const blamed = new Set<Loaded<BGPAdvertisement>>();
  for (const pl of advertisedPools(s, pools)) {
    const earlier = attached.get(pl.metadata.name) ?? [];
    if ((s.serviceSelectors?.length ?? 0) === 0) {
      for (const o of earlier) {
        if ((o.obj.spec.serviceSelectors?.length ?? 0) > 0 || blamed.has(o)) continue;
        if (compatibleLocalPref(s, o.obj.spec, pl, nodes)) continue;
        blamed.add(o);
        c.at(
          l,
          ["spec", "localPref"],
          `localPref ${s.localPref ?? 0} conflicts with localPref ${o.obj.spec.localPref ?? 0} of BGPAdvertisement "${o.obj.metadata.name}": both announce pool "${pl.metadata.name}" with the same aggregation length to the same peers from the same nodes, and a route carries one LOCAL_PREF; make them equal, or give them different peers or nodeSelectors`,
        );
      }
    }
    attached.set(pl.metadata.name, [...earlier, l]);
  }
}

/** BGPAdvertisements: community aliases and peers exist, aggregation lengths, LOCAL_PREF. */
function checkBgpAdvertisements(
  bgps: readonly Loaded<BGPAdvertisement>[],
  ctx: {
    aliases: ReadonlyMap<string, Loaded<Community>>;
    peerNames: ReadonlySet<string>;
    pools: readonly IPAddressPool[];
    nodes: readonly NodeLabels[] | undefined;
  },
  c: Checker,
): void {
  // A refused Community object's aliases are unknown: do not call them undefined.
  const communityRefused = [...c.refused].some((k) => k.startsWith("Community/"));
  const attached = new Map<string, Loaded<BGPAdvertisement>[]>();
  for (const l of bgps) {
    const s = l.obj.spec;
    (s.communities ?? []).forEach((cm, i) => {
      const literal = /^\d/.test(cm) || cm.startsWith("large:");
      if (!literal && !ctx.aliases.has(cm) && !communityRefused)
        c.at(l, ["spec", "communities", i], `community alias "${cm}" is not defined in any Community object`);
    });
    (s.peers ?? []).forEach((p, i) => {
      if (!c.exists("BGPPeer", ctx.peerNames, p))
        c.at(l, ["spec", "peers", i], `BGPPeer "${p}" does not exist`);
    });
    checkAggregation(l, ctx.pools, c);
    checkLocalPref(l, ctx.pools, attached, ctx.nodes, c);
  }
}

/** Peers name existing BFD profiles and no VRF; BFD profiles ask for no echo mode. */
function checkPeersAndProfiles(
  peers: readonly Loaded<BGPPeer>[],
  profiles: readonly Loaded<BFDProfile>[],
  poolHasV6: boolean,
  c: Checker,
): void {
  const profileByName = new Map(profiles.map((l) => [l.obj.metadata.name, l]));
  for (const l of peers) {
    const bp = l.obj.spec.bfdProfile;
    if (bp !== undefined && !profileByName.has(bp) && !c.refused.has(`BFDProfile/${bp}`))
      c.at(l, ["spec", "bfdProfile"], `BFDProfile "${bp}" does not exist`);
    // Refused, never ignored: a session meant for a VRF would otherwise run in the main table.
    if (l.obj.spec.vrf)
      c.at(
        l,
        ["spec", "vrf"],
        `peering inside a VRF ("${l.obj.spec.vrf}") is not supported by vipd: the kernels it runs on have no VRF devices (CONFIG_NET_VRF); remove vrf to peer in the default VRF`,
      );
  }
  for (const l of profiles) {
    if (!l.obj.spec.echoMode) continue;
    if (poolHasV6)
      c.at(l, ["spec", "echoMode"], "BFD echo mode cannot be used while an IPAddressPool has IPv6 addresses");
    else
      c.at(
        l,
        ["spec", "echoMode"],
        "BFD echo mode (RFC 5880 §6.4) is not supported by vipd; set echoMode: false (control packets alone detect failures)",
      );
  }
}

/** Services: the requested addresses agree with each other and name existing pools. */
export function checkServices(
  services: readonly Loaded<Service>[],
  poolNames: ReadonlySet<string>,
  c: Checker,
): void {
  for (const l of services) {
    const svc = l.obj;
    const ips = annotation(svc, "loadBalancerIPs");
    const ipsPath = ["metadata", "annotations", `${ips?.prefix}loadBalancerIPs`];
    const requested: string[] = [];
    if (ips) {
      ips.value.split(",").forEach((raw) => {
        const t = raw.trim();
        const ip = parseIp(t);
        if (ip === null) c.at(l, ipsPath, `"${t}" is not an IP address`);
        else requested.push(formatIp(ip));
      });
      const fams = requested.map((s) => (s.includes(":") ? 6 : 4));
      if (fams.length > 2 || (fams.length === 2 && fams[0] === fams[1]))
        c.at(l, ipsPath, "must list at most one IPv4 and one IPv6 address");
    }
    const lbip = svc.spec.loadBalancerIP;
    if (lbip !== undefined && ips !== undefined) {
      const canon = parseIp(lbip);
      if (canon !== null && !requested.includes(formatIp(canon)))
        c.at(
          l,
          ["spec", "loadBalancerIP"],
          `${lbip} disagrees with annotation ${ips.prefix}loadBalancerIPs "${ips.value}"; remove spec.loadBalancerIP (it is deprecated)`,
        );
    }
    const pool = annotation(svc, "address-pool");
    if (pool !== undefined && !c.exists("IPAddressPool", poolNames, pool.value))
      c.at(
        l,
        ["metadata", "annotations", `${pool.prefix}address-pool`],
        `IPAddressPool "${pool.value}" does not exist`,
      );
  }
}

/** The Config of the (deduplicated) objects, each in its list, in input order. */
function assemble(unique: readonly Loaded[]): Config {
  const config = emptyConfig();
  for (const l of unique) {
    const o = l.obj;
    switch (o.kind) {
      case "IPAddressPool":
        config.pools.push(o);
        break;
      case "L2Advertisement":
        config.l2Advertisements.push(o);
        break;
      case "BGPAdvertisement":
        config.bgpAdvertisements.push(o);
        break;
      case "BGPPeer":
        config.peers.push(o);
        break;
      case "BFDProfile":
        config.bfdProfiles.push(o);
        break;
      case "Community":
        config.communities.push(o);
        break;
      case "Service":
        config.services.push(o);
        break;
      case "Namespace":
        config.namespaces.push(o);
        break;
      case "NodeSettings":
        config.nodeSettings = o;
        break;
    }
  }
  return config;
}

/** Cross-checks loaded objects and assembles the Config. */
export function buildConfig(
  objects: readonly Loaded[],
  opts: BuildOptions = {},
): { config: Config; problems: Problem[] } {
  const problems: Problem[] = [];
  const c = checker(problems, opts.invalid ?? []);
  const unique = uniqueObjects(objects, c);
  const byKind = <K extends AnyObject["kind"]>(k: K) =>
    unique.filter((l) => l.kind === k) as Loaded<Extract<AnyObject, { kind: K }>>[];
  const pools = byKind("IPAddressPool");
  const bgps = byKind("BGPAdvertisement");

  checkPoolOverlaps(pools, c);
  const poolNames = new Set(pools.map((l) => l.obj.metadata.name));
  const poolHasV6 = pools.some((l) => l.obj.spec.addresses.some((a) => parseRange(a).ok && a.includes(":")));
  // Advertisements name existing pools.
  for (const l of [...byKind("L2Advertisement"), ...bgps]) {
    (l.obj.spec.ipAddressPools ?? []).forEach((p, i) => {
      if (!c.exists("IPAddressPool", poolNames, p))
        c.at(l, ["spec", "ipAddressPools", i], `IPAddressPool "${p}" does not exist`);
    });
  }
  const aliases = communityAliases(byKind("Community"), c);
  const peers = byKind("BGPPeer");
  checkBgpAdvertisements(
    bgps,
    {
      aliases,
      peerNames: new Set(peers.map((l) => l.obj.metadata.name)),
      pools: pools.map((p) => p.obj),
      nodes: opts.nodes,
    },
    c,
  );
  checkPeersAndProfiles(peers, byKind("BFDProfile"), poolHasV6, c);
  checkServices(byKind("Service"), poolNames, c);
  return { config: assemble(unique), problems };
}

/**
 * The AS this node presents on a session: the peer's localASN when set (v1beta2; MetalLB's FRR
 * `local-as ASN no-prepend replace-as`), otherwise myASN. The OPEN carries it, and the AS_PATH
 * of routes sent to an eBGP peer is this AS alone.
 */
export function sessionAsn(p: BGPPeer): number {
  const local = p.spec.localASN;
  return local !== undefined && local !== 0 ? local : p.spec.myASN;
}

/** A peer is eBGP when its AS differs from ours (dynamicASN says which it will be). */
export function isEbgp(p: BGPPeer): boolean {
  if (p.spec.dynamicASN !== undefined) return p.spec.dynamicASN === "external";
  return p.spec.peerASN !== p.spec.myASN;
}
