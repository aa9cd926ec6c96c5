/**
 * Why the allocator refused something, and what it wants a user to know even when it succeeded.
 *
 * Every refusal is a value of `AllocReason` (its `kind` is an UpperCamelCase word fit for a
 * Kubernetes Event reason); `reasonMessage` turns it into the sentence shown in Events, logs and
 * API answers. Warnings (`AllocWarning`) accompany successful results as well as failures.
 */

import type { Family } from "../util/ip.ts";

/** Why an address that is in use cannot be shared with the requesting Service. */
export type SharingConflict =
  | { readonly kind: "HolderDoesNotShare"; readonly holders: readonly string[] }
  | { readonly kind: "RequesterDoesNotShare" }
  | { readonly kind: "SharingKeyMismatch"; readonly theirs: string; readonly ours: string }
  | { readonly kind: "BackendMismatch" }
  | { readonly kind: "PortOverlap"; readonly ports: readonly string[] };

export type PoolRefusal = "Namespace" | "ServiceSelectors";

export type AllocReason =
  | { readonly kind: "NotLoadBalancer"; readonly type: string }
  | { readonly kind: "ForeignClass"; readonly class: string | null; readonly ours: string | null }
  | { readonly kind: "NoPools" }
  | {
      readonly kind: "InvalidAnnotation";
      readonly annotation: string;
      readonly value: string;
      readonly detail: string;
    }
  | { readonly kind: "InvalidLoadBalancerIP"; readonly value: string }
  | { readonly kind: "ConflictingIPRequests"; readonly annotation: string }
  | { readonly kind: "InvalidRequestedIPs"; readonly ips: readonly string[]; readonly detail: string }
  | {
      readonly kind: "RequestedFamilyMismatch";
      readonly ips: readonly string[];
      readonly families: readonly Family[];
    }
  | { readonly kind: "InvalidClusterIP"; readonly value: string }
  | { readonly kind: "DualStackUnavailable"; readonly families: readonly Family[] }
  | { readonly kind: "NotInAnyPool"; readonly ip: string }
  | { readonly kind: "BuggyIP"; readonly ip: string; readonly pool: string }
  | { readonly kind: "SplitAcrossPools"; readonly ips: readonly string[]; readonly pools: readonly string[] }
  | { readonly kind: "UnknownPool"; readonly pool: string }
  | {
      readonly kind: "PoolNotAllowed";
      readonly pool: string;
      readonly service: string;
      readonly why: PoolRefusal;
    }
  | {
      readonly kind: "WrongPool";
      readonly ips: readonly string[];
      readonly requested: string;
      readonly actual: string;
    }
  | {
      readonly kind: "NotShareable";
      readonly ip: string;
      readonly holders: readonly string[];
      readonly conflict: SharingConflict;
    }
  | { readonly kind: "NoAvailableIPs"; readonly pool: string | null; readonly families: readonly Family[] }
  | { readonly kind: "NoEligiblePool"; readonly service: string };

/** Why an existing assignment was replaced (never silently: this rides on the result). */
export type ReallocationCause =
  | { readonly kind: "RequestedIPsChanged" }
  | { readonly kind: "RequestedPoolChanged"; readonly pool: string }
  | { readonly kind: "FamiliesChanged" }
  | { readonly kind: "NoLongerValid"; readonly reason: AllocReason };

/**
 * Addresses a Service held (in the allocator, or in its status when adopted) and no longer holds,
 * with why. MetalLB clears such an assignment and allocates anew; the caller reports the release
 * (an `IPReleased` Event in Kubernetes, a log line in the appliance) before the new outcome.
 */
export interface Replaced {
  readonly from: readonly string[];
  readonly cause: ReallocationCause;
}

export type AllocWarning =
  | {
      readonly kind: "DeprecatedAnnotation";
      readonly annotation: string;
      readonly replacement: string;
      readonly ignored: boolean;
    }
  | { readonly kind: "AdditionalFamilyUnavailable"; readonly pool: string; readonly family: Family };

const q = (s: string): string => JSON.stringify(s);
const list = (xs: readonly string[]): string => xs.join(", ");
const fams = (fs: readonly Family[]): string => fs.map((f) => `IPv${f}`).join(" and ");

function conflictMessage(c: SharingConflict): string {
  switch (c.kind) {
    case "HolderDoesNotShare":
      return `${list(c.holders)} does not allow sharing`;
    case "RequesterDoesNotShare":
      return "this Service does not allow sharing (no allow-shared-ip annotation)";
    case "SharingKeyMismatch":
      return `sharing key ${q(c.ours)} differs from ${q(c.theirs)}`;
    case "BackendMismatch":
      return "externalTrafficPolicy Local requires the same policy and identical selectors";
    case "PortOverlap":
      return `${list(c.ports)} ${c.ports.length === 1 ? "overlaps" : "overlap"}`;
  }
}

/** The sentence for a refusal, e.g. `no available IPs in pool "x"`. */
export function reasonMessage(r: AllocReason): string {
  switch (r.kind) {
    case "NotLoadBalancer":
      return `Service type is ${r.type}, not LoadBalancer`;
    case "ForeignClass":
      return r.ours === null
        ? `loadBalancerClass ${q(r.class ?? "")} is not handled by vipd (it handles classless Services)`
        : `loadBalancerClass ${r.class === null ? "(none)" : q(r.class)} is not handled by vipd (it handles ${q(r.ours)})`;
    case "NoPools":
      return "no address pools are configured";
    case "InvalidAnnotation":
      return `invalid ${r.annotation} ${q(r.value)}: ${r.detail}`;
    case "InvalidLoadBalancerIP":
      return `invalid spec.loadBalancerIP ${q(r.value)}`;
    case "ConflictingIPRequests":
      return `spec.loadBalancerIP and ${r.annotation} are both set; set only one`;
    case "InvalidRequestedIPs":
      return `requested IPs ${list(r.ips)}: ${r.detail}`;
    case "RequestedFamilyMismatch":
      return `requested IPs ${list(r.ips)} do not match the Service's IP families (${fams(r.families)})`;
    case "InvalidClusterIP":
      return `ClusterIP ${q(r.value)} is not an IP address`;
    case "DualStackUnavailable":
      return `ipFamilyPolicy RequireDualStack needs IPv4 and IPv6 ClusterIPs; the Service has only ${fams(r.families)}`;
    case "NotInAnyPool":
      return `${r.ip} is not in any pool`;
    case "BuggyIP":
      return `${r.ip} is skipped by pool ${q(r.pool)} (avoidBuggyIPs)`;
    case "SplitAcrossPools":
      return `requested IPs ${list(r.ips)} are in different pools (${r.pools.map(q).join(", ")}); they must come from one pool`;
    case "UnknownPool":
      return `unknown pool ${q(r.pool)}`;
    case "PoolNotAllowed":
      return `pool ${q(r.pool)} does not serve ${r.service} (${
        r.why === "Namespace"
          ? "namespace not in its serviceAllocation"
          : "labels match none of its serviceSelectors"
      })`;
    case "WrongPool":
      return `requested IPs ${list(r.ips)} are in pool ${q(r.actual)}, not in the requested pool ${q(r.requested)}`;
    case "NotShareable":
      return `${r.ip} is used by ${list(r.holders)} and cannot be shared: ${conflictMessage(r.conflict)}`;
    case "NoAvailableIPs": {
      const [f0, f1] = r.families;
      const which = f1 !== undefined ? " (needs IPv4 and IPv6 from one pool)" : f0 === 6 ? " (IPv6)" : "";
      return r.pool === null ? `no available IPs${which}` : `no available IPs in pool ${q(r.pool)}${which}`;
    }
    case "NoEligiblePool":
      return `no auto-assign pool serves ${r.service}`;
  }
}

export function causeMessage(c: ReallocationCause): string {
  switch (c.kind) {
    case "RequestedIPsChanged":
      return "the Service requests other IPs";
    case "RequestedPoolChanged":
      return `the Service requests pool ${q(c.pool)}`;
    case "FamiliesChanged":
      return "the Service's IP families changed";
    case "NoLongerValid":
      return reasonMessage(c.reason);
  }
}

export function warningMessage(w: AllocWarning): string {
  switch (w.kind) {
    case "DeprecatedAnnotation":
      return `${w.annotation} is deprecated, use ${w.replacement}${w.ignored ? ` (ignored: ${w.replacement} is also set)` : ""}`;
    case "AdditionalFamilyUnavailable":
      return `PreferDualStack: no IPv${w.family} address available in pool ${q(w.pool)}`;
  }
}

/** The sentence for a release, e.g. `released 192.0.2.5: 192.0.2.5 is not in any pool`. */
export function replacedMessage(r: Replaced): string {
  return `released ${list(r.from)}: ${causeMessage(r.cause)}`;
}
