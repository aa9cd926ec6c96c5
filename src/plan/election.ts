/**
 * The per-VIP layer-2 election, MetalLB-compatible, with the reason every other member is not
 * the owner. Pure: values in, an Election out; every node computes the same result from the
 * same inputs (membership, labels, declines carried by the heartbeats).
 *
 * Eligible nodes: alive and ready, not labelled node.kubernetes.io/exclude-from-external-load-
 * balancers, not NetworkUnavailable (Kubernetes mode), matching the nodeSelectors of at least
 * one L2Advertisement that announces the Service, and — for externalTrafficPolicy: Local, when
 * endpoint information is given (Kubernetes mode) — holding a ready local endpoint. They are
 * ordered by the sum of matching preferredNodeSelectors weights (highest first), then by
 * sha256(node + "#" + ip) (lowest first); the first one announces (MetalLB internal/layer2).
 *
 * Forced failover: a node may decline a VIP (its heartbeats say so, so all nodes agree). A
 * declining node is skipped; if a declining node that would otherwise win names a preferred
 * node (`to`) that is an eligible, non-declining candidate, that node wins. Declines never leave
 * a VIP without an owner: when every candidate declines, the declines are ignored.
 */

import { createHash } from "node:crypto";
import type { Decline } from "../cluster/heartbeat.ts";
import { anySelectorMatches, selectorMatches } from "../config/selector.ts";

export type { Decline };

type LabelSelector = Parameters<typeof selectorMatches>[0];

export const EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers";

export interface ElectionNode {
  name: string;
  labels: Record<string, string>;
  /** alive: counts; notReady: alive but holding back (start or pause); notAlive: dead or unknown. */
  status: "alive" | "notReady" | "notAlive";
  /** Kubernetes NodeNetworkUnavailable condition is True. */
  networkUnavailable?: boolean | undefined;
}

export interface ElectionAdvertisement {
  name: string;
  nodeSelectors?: readonly LabelSelector[] | undefined;
  preferredNodeSelectors?: readonly { weight: number; preference: LabelSelector }[] | undefined;
}

export interface ElectionArgs {
  /** The Service's addresses; the first one is the election key (a dual-stack Service follows it). */
  ips: readonly string[];
  nodes: readonly ElectionNode[];
  /** The L2Advertisements that announce this Service. */
  advertisements: readonly ElectionAdvertisement[];
  /** externalTrafficPolicy: Local, and the nodes with a ready local endpoint (undefined: unknown, no rule). */
  localEndpoints?: ReadonlySet<string> | undefined;
  /** Per node, the VIPs it declines. */
  declines?: ReadonlyMap<string, readonly Decline[]> | undefined;
  /**
   * Every node's name in sha256(node + "#" + ips[0]) order, when the caller keeps it (the
   * planner caches it per VIP): saves the hashing; the result is the same.
   */
  hashOrder?: readonly string[] | undefined;
}

export type NotOwnerReason =
  | "NotAlive"
  | "NotReady"
  | "ExcludedByLabel"
  | "NetworkUnavailable"
  | "NodeSelectors"
  | "NoLocalEndpoint"
  | "Declined"
  | "PassedOver"
  | "LowerInOrder";

export interface NotOwner {
  node: string;
  reason: NotOwnerReason;
  message: string;
}

export interface Election {
  /** The owner; undefined when no node is eligible. */
  owner: string | undefined;
  /** The eligible nodes in election order (before declines). */
  candidates: string[];
  /** Every other node, in input order, with why it does not own the VIP. */
  notOwner: NotOwner[];
}

/** sha256(node + "#" + ip) as hex: the MetalLB tie-break order. */
export function electionHash(node: string, ip: string): string {
  return createHash("sha256").update(`${node}#${ip}`).digest("hex");
}

/** Orders candidate nodes for a VIP: preference weight (desc), then hash (asc). */
export function orderCandidates(
  ip: string,
  nodes: readonly { name: string; labels: Record<string, string> }[],
  preferred: readonly { weight: number; preference: LabelSelector }[] = [],
): string[] {
  const weight = (labels: Record<string, string>) =>
    preferred.reduce((w, p) => (selectorMatches(p.preference, labels) ? w + p.weight : w), 0);
  return [...nodes]
    .map((n) => ({ n: n.name, w: weight(n.labels), h: electionHash(n.name, ip) }))
    .sort((a, b) => b.w - a.w || (a.h < b.h ? -1 : a.h > b.h ? 1 : 0))
    .map((x) => x.n);
}

/** orderCandidates from the nodes' hash order: the eligible ones, stably sorted by weight (desc). */
function fromHashOrder(
  ip: string,
  order: readonly string[],
  nodes: readonly ElectionNode[],
  preferred: readonly { weight: number; preference: LabelSelector }[],
): string[] {
  const labels = new Map(nodes.map((n) => [n.name, n.labels]));
  const names = order.filter((n) => labels.has(n));
  // An order that misses a node is not this VIP's: hash.
  if (names.length !== labels.size) return orderCandidates(ip, nodes, preferred);
  if (preferred.length === 0) return names;
  const weight = (n: string) =>
    preferred.reduce((w, p) => (selectorMatches(p.preference, labels.get(n) ?? {}) ? w + p.weight : w), 0);
  const w = new Map(names.map((n) => [n, weight(n)]));
  return names.sort((x, y) => (w.get(y) ?? 0) - (w.get(x) ?? 0));
}

/** Why a node cannot own this Service's VIPs at all; undefined when it is eligible. */
function ineligible(n: ElectionNode, a: ElectionArgs): Omit<NotOwner, "node"> | undefined {
  if (n.status === "notAlive") return { reason: "NotAlive", message: "not alive" };
  if (n.status === "notReady")
    return { reason: "NotReady", message: "not ready (starting, or resuming after a pause)" };
  if (n.labels[EXCLUDE_LABEL] !== undefined)
    return { reason: "ExcludedByLabel", message: `excluded by label ${EXCLUDE_LABEL}` };
  if (n.networkUnavailable === true)
    return { reason: "NetworkUnavailable", message: "network unavailable (NetworkUnavailable)" };
  if (!a.advertisements.some((ad) => anySelectorMatches(ad.nodeSelectors, n.labels))) {
    const names = a.advertisements.map((ad) => ad.name).join(", ");
    const s = a.advertisements.length === 1 ? "" : "s";
    return {
      reason: "NodeSelectors",
      message: `does not match nodeSelectors of L2Advertisement${s} ${names}`,
    };
  }
  if (a.localEndpoints !== undefined && !a.localEndpoints.has(n.name))
    return {
      reason: "NoLocalEndpoint",
      message: "no ready local endpoint (externalTrafficPolicy: Local)",
    };
  return undefined;
}

/** Runs the election for one Service (all its IPs follow the first). */
export function elect(a: ElectionArgs): Election {
  const ip = a.ips[0];
  if (ip === undefined) return { owner: undefined, candidates: [], notOwner: [] };
  const reasons = new Map<string, Omit<NotOwner, "node">>();
  const eligible: ElectionNode[] = [];
  for (const n of a.nodes) {
    const why = ineligible(n, a);
    if (why) reasons.set(n.name, why);
    else eligible.push(n);
  }
  const preferred = a.advertisements.flatMap((ad) => ad.preferredNodeSelectors ?? []);
  const candidates =
    a.hashOrder === undefined
      ? orderCandidates(ip, eligible, preferred)
      : fromHashOrder(ip, a.hashOrder, eligible, preferred);

  const declineOf = (node: string): Decline | undefined =>
    a.declines?.get(node)?.find((d) => a.ips.includes(d.ip));
  const declining = new Set(candidates.filter((c) => declineOf(c) !== undefined));
  let owner: string | undefined;
  let namedBy: string | undefined;
  if (declining.size < candidates.length) {
    for (const c of candidates) {
      if (!declining.has(c)) {
        owner = c;
        break;
      }
      const to = declineOf(c)?.to;
      if (to !== undefined && candidates.includes(to) && !declining.has(to)) {
        owner = to;
        namedBy = c;
        break;
      }
    }
    for (const c of declining) reasons.set(c, { reason: "Declined", message: "declined (forced failover)" });
  } else {
    owner = candidates[0];
  }
  const ownerRank = owner === undefined ? -1 : candidates.indexOf(owner);
  candidates.forEach((c, i) => {
    if (c === owner || reasons.has(c)) return;
    if (namedBy !== undefined && i < ownerRank)
      reasons.set(c, { reason: "PassedOver", message: `passed over: ${namedBy} handed the VIP to ${owner}` });
    else reasons.set(c, { reason: "LowerInOrder", message: `lower in the election order (#${i + 1})` });
  });
  const notOwner = a.nodes
    .filter((n) => n.name !== owner)
    .map((n) => ({ node: n.name, ...(reasons.get(n.name) as Omit<NotOwner, "node">) }));
  return { owner, candidates, notOwner };
}
