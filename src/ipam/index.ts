/**
 * The allocator's public surface: `Allocator` (MetalLB-compatible IP assignment for IPv4, IPv6
 * and dual-stack LoadBalancer Services), its result and reason types, and the message formatters.
 *
 * @example
 * const ipam = new Allocator({ loadBalancerClass: undefined, namespaceLabels: (ns) => nsLabels.get(ns) });
 * const set = ipam.setPools(pools);             // { ok, invalidated } | { ok: false, errors }
 * const { results, released } = ipam.reconcile(services);
 * for (const r of results) {
 *   if (r.replaced) event(r.key, "IPReleased", replacedMessage(r.replaced)); // re-addressed or lost
 *   if (r.ok) writeStatus(r.key, r.ips, r.pool); // also metallb.io/ip-allocated-from-pool = r.pool
 *   else event(r.key, "AllocationFailed", reasonMessage(r.reason));
 * }
 * ipam.usage("lan"); // { 4: { assigned, available, capacity }, 6: { ... } } as bigints
 */

export type {
  AllocatorOptions,
  AllocResult,
  Invalidated,
  ReconcileResult,
  RestoreResult,
  SetPoolsResult,
} from "./allocator.ts";
export { Allocator } from "./allocator.ts";
export type { AllocReason, AllocWarning, ReallocationCause, Replaced, SharingConflict } from "./reasons.ts";
export { causeMessage, reasonMessage, replacedMessage, warningMessage } from "./reasons.ts";
export {
  ANNOTATION_ALLOCATED_FROM,
  ANNOTATION_LB_IPS,
  ANNOTATION_POOL,
  ANNOTATION_SHARED,
  serviceKey,
} from "./request.ts";
export type { Assignment, FamilyUsage, IPAddressPool, NamespaceLabels, PoolUsage, Service } from "./types.ts";
