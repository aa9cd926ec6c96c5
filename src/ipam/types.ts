/**
 * The allocator's view of its inputs: IPAddressPool and Service shaped exactly like the
 * Kubernetes / MetalLB manifests after defaults (src/config/schemas.ts produces them; these
 * structural types only name the fields the allocator reads, so the real objects fit).
 *
 * Also the allocator's outputs that other modules consume: assignments and pool usage.
 */

import type { LabelSelector, Labels } from "../config/selector.ts";
import type { Family } from "../util/ip.ts";

export type { LabelSelector, Labels };

export interface ObjectMeta {
  readonly name: string;
  readonly namespace?: string | undefined;
  readonly labels?: Readonly<Record<string, string>> | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
}

export interface ServiceAllocation {
  readonly priority?: number | undefined;
  readonly namespaces?: readonly string[] | undefined;
  readonly namespaceSelectors?: readonly LabelSelector[] | undefined;
  readonly serviceSelectors?: readonly LabelSelector[] | undefined;
}

export interface IPAddressPool {
  readonly metadata: ObjectMeta;
  readonly spec: {
    readonly addresses: readonly string[];
    readonly autoAssign?: boolean | undefined;
    readonly avoidBuggyIPs?: boolean | undefined;
    readonly serviceAllocation?: ServiceAllocation | undefined;
  };
}

export type Protocol = "TCP" | "UDP" | "SCTP";
export type IPFamilyPolicy = "SingleStack" | "PreferDualStack" | "RequireDualStack";

export interface Service {
  readonly metadata: ObjectMeta;
  readonly spec: {
    readonly type?: string | undefined;
    readonly ports?:
      | readonly { readonly port: number; readonly protocol?: Protocol | undefined }[]
      | undefined;
    readonly selector?: Readonly<Record<string, string>> | undefined;
    readonly loadBalancerIP?: string | undefined;
    readonly loadBalancerClass?: string | undefined;
    readonly ipFamilies?: readonly ("IPv4" | "IPv6")[] | undefined;
    readonly ipFamilyPolicy?: IPFamilyPolicy | undefined;
    readonly externalTrafficPolicy?: "Cluster" | "Local" | undefined;
    readonly clusterIP?: string | undefined;
    readonly clusterIPs?: readonly string[] | undefined;
  };
  readonly status?:
    | {
        readonly loadBalancer?:
          | { readonly ingress?: readonly { readonly ip?: string | undefined }[] | undefined }
          | undefined;
      }
    | undefined;
}

/** Labels of a namespace, for `serviceAllocation.namespaceSelectors`. */
export type NamespaceLabels = (namespace: string) => Labels;

/** What one Service holds. `ips` are canonical text, primary family first. */
export interface Assignment {
  readonly key: string;
  readonly pool: string;
  readonly ips: readonly string[];
  /** "80/TCP" style, sorted. */
  readonly ports: readonly string[];
  /** The allow-shared-ip key ("" when the Service does not share). */
  readonly sharingKey: string;
  /** Under externalTrafficPolicy Local, the Service's selector as "k=v,..."; "" otherwise. */
  readonly backendKey: string;
}

export interface FamilyUsage {
  /** Distinct addresses of the pool held by Services. */
  readonly assigned: bigint;
  /** Addresses the pool could still hand out (capacity - assigned). */
  readonly available: bigint;
  /** Allocatable addresses of the pool (after avoidBuggyIPs). */
  readonly capacity: bigint;
}

export type PoolUsage = Readonly<Record<Family, FamilyUsage>>;
