/**
 * The plan as the drivers take it: the planner's Plan (src/plan/plan.ts) plus the objects it only
 * names, resolved from the configuration — the BGPPeer objects of the planned peers (session
 * settings), the BFDProfiles they name, and whether the configuration declares any BGPPeer at all
 * (the BGP speaker starts with the first one, see src/drivers/routing.ts). Communities are already
 * resolved to values in the plan's routes. With this bundle no driver reads the configuration,
 * so both entry points hand drivers the same thing.
 *
 * Pure: a plan and a configuration in, a NodePlan out.
 */

import type { Config } from "../config/index.ts";
import type { BFDProfile, BGPPeer } from "../config/schemas.ts";
import { EMPTY_PLAN, type Plan } from "./plan.ts";

export interface RoutingBundle {
  /** The BGPPeer objects this node peers with (the plan's `peers`, in the same order). */
  peers: BGPPeer[];
  /** The BFDProfiles those peers name (a missing one is left out; the BFD driver says so). */
  bfdProfiles: BFDProfile[];
  /**
   * Undefined while the configuration declares no BGPPeer at all; otherwise the router ID the
   * first BGPPeer that sets one gives (the speaker's identifier when it starts).
   */
  speaker: { routerID: string | undefined } | undefined;
}

export interface NodePlan extends Plan {
  routing: RoutingBundle;
}

export const EMPTY_ROUTING: RoutingBundle = { peers: [], bfdProfiles: [], speaker: undefined };
export const EMPTY_NODE_PLAN: NodePlan = { ...EMPTY_PLAN, routing: EMPTY_ROUTING };

/** Resolves what the plan names from `config` (undefined: none yet, nothing to resolve). */
export function resolvePlan(plan: Plan, config: Config | undefined): NodePlan {
  if (config === undefined) return { ...plan, routing: EMPTY_ROUTING };
  const byName = new Map(config.peers.map((p) => [p.metadata.name, p]));
  const peers = plan.peers.flatMap((n) => {
    const p = byName.get(n);
    return p === undefined ? [] : [p];
  });
  const named = new Set(peers.map((p) => p.spec.bfdProfile).filter((n) => n !== undefined && n !== ""));
  return {
    ...plan,
    routing: {
      peers,
      bfdProfiles: config.bfdProfiles.filter((b) => named.has(b.metadata.name)),
      speaker:
        config.peers.length === 0
          ? undefined
          : { routerID: config.peers.find((p) => p.spec.routerID)?.spec.routerID },
    },
  };
}
