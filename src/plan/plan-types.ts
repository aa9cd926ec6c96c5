/**
 * The planner's values: who a node is, what the allocator assigned, what this node announces on
 * layer 2 and to which BGP peers (the Plan), and the election inputs and results. Types only; the
 * Planner is plan.ts, its indexes plan-index.ts.
 */
import type { Decline, Election } from "./election.ts";

export interface NodeInfo {
  name: string;
  labels: Record<string, string>;
}

/** What the allocator decided for one Service (the planner needs only this). */
export interface PlannedAssignment {
  key: string;
  pool: string;
  ips: readonly string[];
}

export interface L2Entry {
  ip: string;
  /** Interfaces to answer on; empty means every interface vipd manages on this node. */
  interfaces: string[];
  services: string[];
  /** The winning node; this node's plan lists only VIPs it owns, but candidates are shown. */
  owner: string;
  candidates: string[];
}

export interface BgpRoute {
  peer: string;
  prefix: string;
  localPref?: number | undefined;
  communities: string[];
  largeCommunities: string[];
  services: string[];
}

/** One VIP's election as this node sees it (for the API). */
export interface L2Election extends Election {
  ip: string;
  services: string[];
}

/**
 * What the planner needs beyond the live members, for eligibility and for the reasons it shows.
 * Every field is optional: appliance mode gives `known`, `notReady` and `declines`; Kubernetes
 * mode adds node conditions and local endpoints.
 */
export interface ElectionInputs {
  /** Every member of the site, alive or not (default: the live `members`). */
  known?: readonly NodeInfo[] | undefined;
  /** Members that are alive but not ready (this node during its start or pause hold). */
  notReady?: ReadonlySet<string> | undefined;
  /** Nodes whose NetworkUnavailable condition is True. */
  networkUnavailable?: ReadonlySet<string> | undefined;
  /**
   * Per Service key ("ns/name"), the nodes with a ready local endpoint. When given, a Service
   * with externalTrafficPolicy: Local is announced only from those nodes (none when absent).
   */
  localEndpoints?: ReadonlyMap<string, ReadonlySet<string>> | undefined;
  /** Per node, the VIPs it declines (forced failover), as carried by the heartbeats. */
  declines?: ReadonlyMap<string, readonly Decline[]> | undefined;
}

export interface Plan {
  node: string;
  /** VIPs this node answers for. */
  l2: L2Entry[];
  /**
   * VIPs this node lost to another live node a moment ago and keeps answering for until the new
   * owner has announced (make before break, src/plan/handover.ts): layer-2 and local-delivery
   * drivers keep them programmed, and do not announce them.
   */
  l2Handover?: L2Entry[] | undefined;
  /** VIPs another node answers for (for visibility only). */
  l2Elsewhere: L2Entry[];
  /** BGPPeer names this node should have sessions with. */
  peers: string[];
  routes: BgpRoute[];
  /**
   * Leave layer-2 state as it is (this node has just started and is still listening to its
   * members; what a previous run programmed keeps answering until it is ready).
   */
  holdL2: boolean;
  /** Per VIP: owner, candidates and why each other member is not the owner. */
  elections?: L2Election[];
}
