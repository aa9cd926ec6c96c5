/**
 * The planner as it was before it was indexed and made incremental (revision b8aef36 of
 * src/plan/plan.ts's computePlan, unchanged but for its imports): the straightforward scan,
 * O(n²) in Services. plan-incremental.test.ts compares the new planner against it.
 */

import type { Config } from "../../src/config/index.ts";
import { type IPAddressPool, parseCommunity } from "../../src/config/schemas.ts";
import { anySelectorMatches } from "../../src/config/selector.ts";
import { advertisedPools, isEbgp, serviceKey } from "../../src/config/validate.ts";
import { type ElectionNode, elect } from "../../src/plan/election.ts";
import type {
  BgpRoute,
  ElectionInputs,
  L2Election,
  L2Entry,
  NodeInfo,
  Plan,
  PlannedAssignment,
} from "../../src/plan/plan.ts";
import { formatIp, maskOf, parseIp, parseRange, rangeContains } from "../../src/util/ip.ts";

/** The pool whose addresses contain an IP (undefined: none); first pool wins on overlap. */
function poolFinder(pools: readonly IPAddressPool[]): (ip: string) => IPAddressPool | undefined {
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

function serviceLabels(config: Config, key: string): Record<string, string> | undefined {
  return config.services.find((s) => serviceKey(s) === key)?.metadata.labels;
}

/** Computes this node's plan. `members` are the live nodes of the site (this node when it is ready). */
export function referencePlan(
  config: Config,
  assignments: readonly PlannedAssignment[],
  self: NodeInfo,
  members: readonly NodeInfo[] = [self],
  inputs: ElectionInputs = {},
): Plan {
  // Only live, ready nodes are candidates; a node not among them (still starting, or just
  // resumed from a pause) owns nothing on layer 2.
  const live = new Set(members.map((m) => m.name));
  const known = new Map<string, NodeInfo>();
  for (const n of [...members, ...(inputs.known ?? [])]) if (!known.has(n.name)) known.set(n.name, n);
  const nodes: ElectionNode[] = [...known.values()].map((n) => ({
    name: n.name,
    labels: n.labels,
    status: live.has(n.name) ? "alive" : inputs.notReady?.has(n.name) ? "notReady" : "notAlive",
    networkUnavailable: inputs.networkUnavailable?.has(n.name),
  }));
  const elections = new Map<string, L2Election>();
  const poolOf = poolFinder(config.pools);
  const l2Mine = new Map<string, L2Entry>();
  const l2Other = new Map<string, L2Entry>();

  // Layer 2: every advertisement that covers the Service's pool and selects the Service.
  // Sorted by key so that the plan (entry and service order) does not depend on the input order.
  const sorted = [...assignments].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  for (const a of sorted) {
    // The pool is the one that contains the address (as MetalLB's speaker decides), not the name
    // the assignment carries: an address kept after its pool shrank is in no pool, and silent.
    const pool = a.ips[0] === undefined ? undefined : poolOf(a.ips[0]);
    if (!pool) continue;
    const labels = serviceLabels(config, a.key);
    const ads = config.l2Advertisements.filter(
      (ad) =>
        advertisedPools(ad.spec, [pool]).length > 0 && anySelectorMatches(ad.spec.serviceSelectors, labels),
    );
    if (ads.length === 0) continue;
    const svc = config.services.find((x) => serviceKey(x) === a.key);
    const local = svc?.spec.externalTrafficPolicy === "Local" && inputs.localEndpoints !== undefined;
    // A dual-stack Service follows its first IP.
    const e = elect({
      ips: a.ips,
      nodes,
      advertisements: ads.map((ad) => ({
        name: ad.metadata.name,
        nodeSelectors: ad.spec.nodeSelectors,
        preferredNodeSelectors: ad.spec.preferredNodeSelectors,
      })),
      localEndpoints: local ? (inputs.localEndpoints?.get(a.key) ?? new Set()) : undefined,
      declines: inputs.declines,
    });
    for (const ip of a.ips) {
      if (poolOf(ip) !== pool) continue;
      const prev = elections.get(ip);
      if (prev) prev.services.push(a.key);
      else elections.set(ip, { ip, services: [a.key], ...e });
    }
    const owner = e.owner;
    const order = e.candidates;
    if (owner === undefined) continue;
    const mineAds = ads.filter((ad) => anySelectorMatches(ad.spec.nodeSelectors, self.labels));
    const ifaces = mineAds.some((ad) => (ad.spec.interfaces ?? []).length === 0)
      ? []
      : [...new Set(mineAds.flatMap((ad) => ad.spec.interfaces ?? []))].sort();
    for (const ip of a.ips) {
      if (poolOf(ip) !== pool) continue;
      const target = owner === self.name ? l2Mine : l2Other;
      const e = target.get(ip) ?? { ip, interfaces: ifaces, services: [], owner, candidates: order };
      e.services.push(a.key);
      target.set(ip, e);
    }
  }

  // BGP: peers that select this node; routes per advertisement that selects this node.
  const myPeers = config.peers.filter((p) => anySelectorMatches(p.spec.nodeSelectors, self.labels));
  const aliases = new Map(
    config.communities.flatMap((c) => c.spec.communities.map((x) => [x.name, x.value])),
  );
  const routes = new Map<string, BgpRoute>();
  for (const ad of config.bgpAdvertisements) {
    if (!anySelectorMatches(ad.spec.nodeSelectors, self.labels)) continue;
    const targetPeers = myPeers.filter(
      (p) => (ad.spec.peers ?? []).length === 0 || ad.spec.peers?.includes(p.metadata.name),
    );
    const pools = new Set(advertisedPools(ad.spec, config.pools).map((p) => p.metadata.name));
    const comms = (ad.spec.communities ?? []).map((c) => aliases.get(c) ?? c);
    const standard = comms.filter((c) => parseCommunity(c)?.kind === "standard");
    const large = comms
      .filter((c) => parseCommunity(c)?.kind === "large")
      .map((c) => c.slice("large:".length));
    for (const a of sorted) {
      if (!anySelectorMatches(ad.spec.serviceSelectors, serviceLabels(config, a.key))) continue;
      for (const ipText of a.ips) {
        const ip = parseIp(ipText);
        const pool = poolOf(ipText);
        if (!ip || !pool || !pools.has(pool.metadata.name)) continue;
        const len = ip.family === 4 ? ad.spec.aggregationLength : ad.spec.aggregationLengthV6;
        const prefix = `${formatIp({ family: ip.family, value: ip.value & maskOf(ip.family, len) })}/${len}`;
        for (const p of targetPeers) {
          const id = `${p.metadata.name}|${prefix}`;
          const r = routes.get(id) ?? {
            peer: p.metadata.name,
            prefix,
            localPref: undefined,
            communities: [],
            largeCommunities: [],
            services: [],
          };
          // LOCAL_PREF goes to iBGP peers only (RFC 4271 §5.1.5).
          if (ad.spec.localPref !== undefined && !isEbgp(p))
            r.localPref = Math.max(r.localPref ?? 0, ad.spec.localPref);
          r.communities = [...new Set([...r.communities, ...standard])].sort();
          r.largeCommunities = [...new Set([...r.largeCommunities, ...large])].sort();
          if (!r.services.includes(a.key)) r.services.push(a.key);
          routes.set(id, r);
        }
      }
    }
  }

  const byIp = (x: { ip: string }, y: { ip: string }) => (x.ip < y.ip ? -1 : x.ip > y.ip ? 1 : 0);
  return {
    node: self.name,
    l2: [...l2Mine.values()].sort(byIp),
    l2Elsewhere: [...l2Other.values()].sort(byIp),
    peers: myPeers.map((p) => p.metadata.name).sort(),
    holdL2: false,
    elections: [...elections.values()].sort(byIp),
    routes: [...routes.values()].sort((x, y) =>
      x.peer === y.peer ? (x.prefix < y.prefix ? -1 : 1) : x.peer < y.peer ? -1 : 1,
    ),
  };
}
