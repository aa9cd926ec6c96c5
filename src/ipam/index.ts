/**
 * The allocator's public surface: `Allocator` (MetalLB-compatible IP assignment for IPv4, IPv6
 * and dual-stack LoadBalancer Services), its result and reason types, and the message formatters.
 */

export type {
  AllocatorOptions,
  AllocResult,
  ReconcileResult,
  RestoreResult,
  SetPoolsResult,
} from "./allocator.ts";
export { Allocator } from "./allocator.ts";
export type { AllocReason, AllocWarning, ReallocationCause, SharingConflict } from "./reasons.ts";
export { reasonMessage, warningMessage } from "./reasons.ts";
export {
  ANNOTATION_ALLOCATED_FROM,
  ANNOTATION_LB_IPS,
  ANNOTATION_POOL,
  ANNOTATION_SHARED,
  serviceKey,
} from "./request.ts";
export type { Assignment, FamilyUsage, IPAddressPool, NamespaceLabels, PoolUsage, Service } from "./types.ts";
