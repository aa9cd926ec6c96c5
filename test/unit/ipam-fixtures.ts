/**
 * Builders for the allocator tests: Services and IPAddressPools as the config layer produces
 * them (after defaults), with only the fields a story needs.
 */

import { type AllocResult, reasonMessage } from "../../src/ipam/index.ts";
import type { IPAddressPool, IPFamilyPolicy, Service } from "../../src/ipam/types.ts";

export interface SvcOpts {
  ns?: string;
  labels?: Record<string, string>;
  ann?: Record<string, string>;
  ip?: string;
  /** Port numbers (TCP) or [port, protocol]. Default: [80]. */
  ports?: (number | [number, "TCP" | "UDP" | "SCTP"])[];
  cips?: string[];
  policy?: IPFamilyPolicy;
  local?: boolean;
  selector?: Record<string, string>;
  cls?: string;
  type?: string;
  status?: string[];
}

export function svc(name: string, o: SvcOpts = {}): Service {
  return {
    metadata: { name, namespace: o.ns ?? "ns", labels: o.labels, annotations: o.ann },
    spec: {
      type: o.type ?? "LoadBalancer",
      ports: (o.ports ?? [80]).map((p) =>
        typeof p === "number" ? { port: p, protocol: "TCP" } : { port: p[0], protocol: p[1] },
      ),
      clusterIPs: o.cips ?? ["10.96.0.1"],
      ipFamilyPolicy: o.policy,
      loadBalancerIP: o.ip,
      loadBalancerClass: o.cls,
      externalTrafficPolicy: o.local === true ? "Local" : "Cluster",
      selector: o.selector ?? { app: name },
    },
    status:
      o.status === undefined ? undefined : { loadBalancer: { ingress: o.status.map((ip) => ({ ip })) } },
  };
}

export function pool(
  name: string,
  addresses: string[],
  spec: Partial<IPAddressPool["spec"]> = {},
): IPAddressPool {
  return { metadata: { name }, spec: { addresses, autoAssign: true, avoidBuggyIPs: false, ...spec } };
}

/** The IPs of a successful result; throws with the reason otherwise (the story then fails). */
export function ips(r: AllocResult): readonly string[] {
  if (!r.ok) throw new Error(`expected success, got: ${reasonMessage(r.reason)}`);
  return r.ips;
}

/** The refusal message of a failed result; throws if it succeeded. */
export function refusal(r: AllocResult): string {
  if (r.ok) throw new Error(`expected a refusal, got ${r.ips.join(", ")}`);
  return reasonMessage(r.reason);
}

/** A Service as Kubernetes would show it after vipd wrote its status. */
export function withStatus(s: Service, ipList: readonly string[]): Service {
  return { ...s, status: { loadBalancer: { ingress: ipList.map((ip) => ({ ip })) } } };
}
