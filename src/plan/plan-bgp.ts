/**
 * The BGP half of the planner (src/plan/plan.ts): the peers that select this node, and per
 * advertisement that selects it the routes of the Services it selects, with their attributes.
 * Keeps per Service its last routes with what they were computed from, so a call recomputes only
 * the Services whose addresses or labels changed (all of them when the advertisements, peers,
 * communities or this node's labels changed). Pure: the result never depends on earlier calls.
 */

import type { Config } from "../config/index.ts";
import { parseCommunity } from "../config/schemas.ts";
import { anySelectorMatches } from "../config/selector.ts";
import { advertisedPools, isEbgp } from "../config/validate.ts";
import { formatIp, maskOf, parseIp } from "../util/ip.ts";
import {
  type AdOnNode,
  type BgpDecision,
  type Indexed,
  NO_SERVICE,
  prune,
  type RoutePart,
  type ServiceFacts,
  sameBasis,
} from "./plan-index.ts";
import type { BgpRoute, NodeInfo, PlannedAssignment } from "./plan-types.ts";

export class BgpPlanner {
  private bgpContext = "";
  private bgp = new Map<string, BgpDecision>();

  /** The BGPAdvertisements that select this node, with their peers, pools and communities. */
  private adsOnNode(config: Config, self: NodeInfo, myPeers: Config["peers"]): (AdOnNode | undefined)[] {
    const aliases = new Map(
      config.communities.flatMap((c) => c.spec.communities.map((x) => [x.name, x.value])),
    );
    return config.bgpAdvertisements.map((ad) => {
      if (!anySelectorMatches(ad.spec.nodeSelectors, self.labels)) return undefined;
      const comms = (ad.spec.communities ?? []).map((c) => aliases.get(c) ?? c);
      return {
        selectors: ad.spec.serviceSelectors,
        peers: myPeers
          .filter((p) => (ad.spec.peers ?? []).length === 0 || ad.spec.peers?.includes(p.metadata.name))
          .map((p) => ({ name: p.metadata.name, ebgp: isEbgp(p) })),
        pools: new Set(advertisedPools(ad.spec, config.pools).map((p) => p.metadata.name)),
        standard: comms.filter((c) => parseCommunity(c)?.kind === "standard"),
        large: comms.filter((c) => parseCommunity(c)?.kind === "large").map((c) => c.slice("large:".length)),
        localPref: ad.spec.localPref,
        len4: ad.spec.aggregationLength,
        len6: ad.spec.aggregationLengthV6,
      };
    });
  }

  /** One Service's routes, per advertisement. */
  private decideBgp(ix: Indexed, a: PlannedAssignment, svc: ServiceFacts, ads: (AdOnNode | undefined)[]) {
    return ads.map((ad) => {
      if (ad === undefined || !anySelectorMatches(ad.selectors, svc.labels)) return undefined;
      const parts: RoutePart[] = [];
      for (const ipText of a.ips) {
        const ip = parseIp(ipText);
        const pool = ix.poolOf(ipText);
        if (!ip || !pool || !ad.pools.has(pool.metadata.name)) continue;
        const len = ip.family === 4 ? ad.len4 : ad.len6;
        const prefix = `${formatIp({ family: ip.family, value: ip.value & maskOf(ip.family, len) })}/${len}`;
        for (const p of ad.peers)
          parts.push({
            id: `${p.name}|${prefix}`,
            peer: p.name,
            prefix,
            // LOCAL_PREF goes to iBGP peers only (RFC 4271 §5.1.5).
            localPref: ad.localPref !== undefined && !p.ebgp ? ad.localPref : undefined,
            standard: ad.standard,
            large: ad.large,
          });
      }
      return parts;
    });
  }

  /** BGP: peers that select this node; routes per advertisement that selects this node. */
  plan(
    config: Config,
    ix: Indexed,
    sorted: readonly PlannedAssignment[],
    self: NodeInfo,
  ): { peers: string[]; routes: BgpRoute[] } {
    const myPeers = config.peers.filter((p) => anySelectorMatches(p.spec.nodeSelectors, self.labels));
    const peers = myPeers.map((p) => p.metadata.name).sort();
    if (config.bgpAdvertisements.length === 0 || myPeers.length === 0) {
      this.bgp = new Map();
      return { peers, routes: [] };
    }
    const context = JSON.stringify([ix.bgpText, self]);
    if (context !== this.bgpContext) {
      this.bgpContext = context;
      this.bgp = new Map();
    }
    const ads = this.adsOnNode(config, self, myPeers);
    const decisions: BgpDecision[] = sorted.map((a) => {
      const svc = ix.services.get(a.key) ?? NO_SERVICE;
      let d = this.bgp.get(a.key);
      if (d === undefined || !sameBasis(d.from, a.ips, svc.labelsText, "")) {
        const from = { ips: a.ips, labels: svc.labelsText, eps: "" };
        d = { from, byAd: this.decideBgp(ix, a, svc, ads) };
        this.bgp.set(a.key, d);
      }
      return d;
    });
    if (this.bgp.size > sorted.length) this.bgp = prune(this.bgp, sorted);
    const routes = new Map<string, BgpRoute & { keys: Set<string>; std: Set<string>; lg: Set<string> }>();
    // Advertisement by advertisement, Services in key order: a route lists its Services so.
    for (let i = 0; i < ads.length; i++) {
      sorted.forEach((a, j) => {
        for (const part of decisions[j]?.byAd[i] ?? []) {
          let r = routes.get(part.id);
          if (r === undefined) {
            r = {
              peer: part.peer,
              prefix: part.prefix,
              localPref: undefined,
              communities: [],
              largeCommunities: [],
              services: [],
              keys: new Set(),
              std: new Set(),
              lg: new Set(),
            };
            routes.set(part.id, r);
          }
          if (part.localPref !== undefined) r.localPref = Math.max(r.localPref ?? 0, part.localPref);
          for (const c of part.standard) r.std.add(c);
          for (const c of part.large) r.lg.add(c);
          if (!r.keys.has(a.key)) {
            r.keys.add(a.key);
            r.services.push(a.key);
          }
        }
      });
    }
    const out = [...routes.values()].map(({ keys: _k, std, lg, ...r }) => ({
      ...r,
      communities: [...std].sort(),
      largeCommunities: [...lg].sort(),
    }));
    return {
      peers,
      routes: out.sort((x, y) =>
        x.peer === y.peer ? (x.prefix < y.prefix ? -1 : 1) : x.peer < y.peer ? -1 : 1,
      ),
    };
  }
}
