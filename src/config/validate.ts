/**
 * Cross-object validation and the validated configuration (`Config`) the rest of vipd consumes.
 *
 * Checks what MetalLB's admission webhooks check, and more: duplicate names, overlapping pools,
 * references to pools / peers / BFD profiles / community aliases that do not exist,
 * aggregation lengths that cannot cover a pool, BFD echo mode with IPv6 pools, Services whose
 * annotations disagree with spec.loadBalancerIP. Pure: objects in, config and problems out.
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
import { anySelectorMatches } from "./selector.ts";

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

/** Cross-checks loaded objects and assembles the Config. */
export function buildConfig(objects: readonly Loaded[]): { config: Config; problems: Problem[] } {
  const problems: Problem[] = [];
  const config = emptyConfig();
  const at = (l: Loaded, path: PathKey[], message: string) => {
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
  };

  // Duplicate names. metallb.io objects are referred to by name alone, so a name is unique per kind.
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
      at(
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

  const byKind = <K extends AnyObject["kind"]>(k: K) =>
    unique.filter((l) => l.kind === k) as Loaded<Extract<AnyObject, { kind: K }>>[];
  const pools = byKind("IPAddressPool");
  const l2s = byKind("L2Advertisement");
  const bgps = byKind("BGPAdvertisement");
  const peers = byKind("BGPPeer");
  const profiles = byKind("BFDProfile");
  const communities = byKind("Community");
  const services = byKind("Service");

  // Pools: overlaps between and within pools (per family, sweep over sorted ranges).
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
      at(
        cur.l,
        ["spec", "addresses", cur.i],
        `${cur.text} overlaps ${widest.text} of ${other}; ${widest.l === cur.l ? "list each address once" : "pools must not share addresses"}`,
      );
    }
    if (!widest || widest.r.family !== cur.r.family || cur.r.last > widest.r.last) widest = cur;
  }
  const poolNames = new Set(pools.map((l) => l.obj.metadata.name));
  const poolHasV6 = pools.some((l) => l.obj.spec.addresses.some((a) => parseRange(a).ok && a.includes(":")));

  // Advertisements name existing pools.
  for (const l of [...l2s, ...bgps]) {
    (l.obj.spec.ipAddressPools ?? []).forEach((p, i) => {
      if (!poolNames.has(p)) at(l, ["spec", "ipAddressPools", i], `IPAddressPool "${p}" does not exist`);
    });
  }

  // Community aliases: unique, and every alias used by an advertisement exists.
  const aliases = new Map<string, Loaded<Community>>();
  for (const l of communities) {
    l.obj.spec.communities.forEach((c, i) => {
      const prev = aliases.get(c.name);
      if (prev)
        at(
          l,
          ["spec", "communities", i, "name"],
          `community alias "${c.name}" is already defined in Community "${prev.obj.metadata.name}"`,
        );
      else aliases.set(c.name, l);
    });
  }
  const peerNames = new Set(peers.map((l) => l.obj.metadata.name));
  for (const l of bgps) {
    const s = l.obj.spec;
    (s.communities ?? []).forEach((c, i) => {
      const literal = /^\d/.test(c) || c.startsWith("large:");
      if (!literal && !aliases.has(c))
        at(l, ["spec", "communities", i], `community alias "${c}" is not defined in any Community object`);
    });
    (s.peers ?? []).forEach((p, i) => {
      if (!peerNames.has(p)) at(l, ["spec", "peers", i], `BGPPeer "${p}" does not exist`);
    });
    // An aggregate must not be wider than any block of the pool, or it would announce addresses
    // outside the pool (MetalLB rejects it too): the length must be at least every block's length.
    for (const pl of advertisedPools(
      s,
      pools.map((p) => p.obj),
    )) {
      for (const family of [4, 6] as const) {
        const agg = family === 4 ? s.aggregationLength : s.aggregationLengthV6;
        let need: { prefixLen: number; base: bigint } | undefined;
        for (const a of pl.spec.addresses) {
          const r = parseRange(a);
          if (!r.ok || r.value.family !== family) continue;
          for (const c of rangeToCidrs(r.value))
            if (need === undefined || c.prefixLen > need.prefixLen) need = c;
        }
        if (need === undefined || need.prefixLen <= agg) continue;
        const block = `${formatIp({ family, value: need.base })}/${need.prefixLen}`;
        at(
          l,
          ["spec", family === 4 ? "aggregationLength" : "aggregationLengthV6"],
          `/${agg} is wider than block ${block} of pool "${pl.metadata.name}", so it would announce addresses outside the pool; use ${need.prefixLen} or more`,
        );
      }
    }
  }

  // Peers name existing BFD profiles.
  const profileByName = new Map(profiles.map((l) => [l.obj.metadata.name, l]));
  for (const l of peers) {
    const bp = l.obj.spec.bfdProfile;
    if (bp !== undefined && !profileByName.has(bp))
      at(l, ["spec", "bfdProfile"], `BFDProfile "${bp}" does not exist`);
  }
  for (const l of profiles) {
    if (!l.obj.spec.echoMode) continue;
    if (poolHasV6)
      at(l, ["spec", "echoMode"], "BFD echo mode cannot be used while an IPAddressPool has IPv6 addresses");
    else
      at(
        l,
        ["spec", "echoMode"],
        "BFD echo mode (RFC 5880 §6.4) is not supported by vipd; set echoMode: false (control packets alone detect failures)",
      );
  }

  // Services: the requested addresses agree with each other and name existing pools.
  for (const l of services) {
    const svc = l.obj;
    const ips = annotation(svc, "loadBalancerIPs");
    const ipsPath = ["metadata", "annotations", `${ips?.prefix}loadBalancerIPs`];
    const requested: string[] = [];
    if (ips) {
      ips.value.split(",").forEach((raw) => {
        const t = raw.trim();
        const ip = parseIp(t);
        if (ip === null) at(l, ipsPath, `"${t}" is not an IP address`);
        else requested.push(formatIp(ip));
      });
      const fams = requested.map((s) => (s.includes(":") ? 6 : 4));
      if (fams.length > 2 || (fams.length === 2 && fams[0] === fams[1]))
        at(l, ipsPath, "must list at most one IPv4 and one IPv6 address");
    }
    const lbip = svc.spec.loadBalancerIP;
    if (lbip !== undefined && ips !== undefined) {
      const canon = parseIp(lbip);
      if (canon !== null && !requested.includes(formatIp(canon)))
        at(
          l,
          ["spec", "loadBalancerIP"],
          `${lbip} disagrees with annotation ${ips.prefix}loadBalancerIPs "${ips.value}"; remove spec.loadBalancerIP (it is deprecated)`,
        );
    }
    const pool = annotation(svc, "address-pool");
    if (pool !== undefined && !poolNames.has(pool.value))
      at(
        l,
        ["metadata", "annotations", `${pool.prefix}address-pool`],
        `IPAddressPool "${pool.value}" does not exist`,
      );
  }

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
  return { config, problems };
}

/** A peer is eBGP when its AS differs from ours (dynamicASN says which it will be). */
export function isEbgp(p: BGPPeer): boolean {
  if (p.spec.dynamicASN !== undefined) return p.spec.dynamicASN === "external";
  return p.spec.peerASN !== p.spec.myASN;
}
