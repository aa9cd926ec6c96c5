/**
 * Which configuration changes a running `vipd run` cannot apply on reload. Most of the config
 * (pools, advertisements, Services, peers' details, node labels) flows through the daemon on
 * every reload (API tokens too); what `run` reads once when it composes the process — the API
 * listener, TLS and metrics access, the XDP interfaces, local delivery, membership, the load-balancer class the allocator
 * was created with, the router ID of a running BGP speaker — only takes effect
 * after a restart. The daemon logs these so that an operator is never left guessing.
 *
 * Pure: two configs in, a list of human-readable change descriptions out.
 */

import type { Config } from "../config/index.ts";

/** NodeSettings.spec fields read only at start. */
const START_ONLY_SETTINGS = [
  "nodeName",
  "interfaces",
  "xdp",
  "localDelivery",
  "loadBalancerClass",
  "cluster",
  "bgp",
] as const;

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The changes from `prev` to `next` that take effect only after vipd restarts. */
export function startOnlyChanges(prev: Config, next: Config): string[] {
  const out: string[] = [];
  const a = prev.nodeSettings?.spec;
  const b = next.nodeSettings?.spec;
  for (const k of START_ONLY_SETTINGS) {
    if (!same(a?.[k], b?.[k])) out.push(`NodeSettings.spec.${k}`);
  }
  // API tokens are read on every request; the listener, TLS and metrics access are not.
  for (const k of ["listen", "tls", "metricsOpen"] as const) {
    if (!same(a?.api[k], b?.api[k])) out.push(`NodeSettings.spec.api.${k}`);
  }
  // With live membership (a cluster key), the membership service gets the members at start;
  // without it they are read on every plan.
  const live = a?.cluster.keyFile !== undefined || b?.cluster.keyFile !== undefined;
  if (live && !same(a?.members, b?.members))
    out.push("NodeSettings.spec.members (with cluster: heartbeat destinations)");
  // The BGP speaker starts with the first peer (src/drivers/routing.ts) and keeps its identifier.
  const routerId = (c: Config) => c.peers.find((p) => p.spec.routerID)?.spec.routerID;
  if (prev.peers.length > 0 && routerId(prev) !== routerId(next)) out.push("BGPPeer.spec.routerID");
  return out;
}
