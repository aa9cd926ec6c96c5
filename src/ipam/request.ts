/**
 * What a Service asks of the allocator, read the way MetalLB's controller reads it:
 * `spec.loadBalancerIP` or the `loadBalancerIPs` annotation (never both), the `address-pool`
 * and `allow-shared-ip` annotations (`metallb.io/` wins over the deprecated
 * `metallb.universe.tf/`, which is reported), IP families from ClusterIPs and ipFamilyPolicy,
 * ports for sharing, and the backend key that externalTrafficPolicy Local adds to sharing.
 */

import { type Family, formatIp, type Ip, parseIp } from "../util/ip.ts";
import type { AllocReason, AllocWarning } from "./reasons.ts";
import type { IPFamilyPolicy, Labels, Service } from "./types.ts";

export const PREFIX = "metallb.io/";
export const DEPRECATED_PREFIX = "metallb.universe.tf/";
export const ANNOTATION_LB_IPS = `${PREFIX}loadBalancerIPs`;
export const ANNOTATION_POOL = `${PREFIX}address-pool`;
export const ANNOTATION_SHARED = `${PREFIX}allow-shared-ip`;
/** Written on allocated Services (as MetalLB does): the pool the addresses came from. */
export const ANNOTATION_ALLOCATED_FROM = `${PREFIX}ip-allocated-from-pool`;

export interface Request {
  readonly key: string;
  readonly namespace: string;
  readonly labels: Labels;
  /** Wanted families, primary first; two only under Prefer/RequireDualStack. */
  readonly families: readonly Family[];
  readonly policy: IPFamilyPolicy;
  /** Explicitly requested addresses (primary family first), or null. */
  readonly requested: readonly Ip[] | null;
  readonly pool: string | null;
  readonly sharingKey: string;
  readonly backendKey: string;
  /** "80/TCP" style, sorted, unique. */
  readonly ports: readonly string[];
}

/** Parts needed even when the rest of the request is unusable (to adopt an existing status). */
export interface Basics {
  readonly key: string;
  readonly namespace: string;
  readonly labels: Labels;
  readonly sharingKey: string;
  readonly backendKey: string;
  readonly ports: readonly string[];
}

export type ParsedRequest =
  | { readonly ok: true; readonly request: Request; readonly warnings: AllocWarning[] }
  | {
      readonly ok: false;
      readonly reason: AllocReason;
      readonly warnings: AllocWarning[];
      /** True when the Service is simply not vipd's (wrong type or class). */
      readonly notOurs: boolean;
    };

export function serviceKey(svc: Service): string {
  return `${svc.metadata.namespace ?? "default"}/${svc.metadata.name}`;
}

/** A Service is vipd's when it is a LoadBalancer of vipd's class (or classless, with no class). */
export function ownershipRefusal(svc: Service, ourClass: string | null): AllocReason | null {
  const type = svc.spec.type ?? "ClusterIP";
  if (type !== "LoadBalancer") return { kind: "NotLoadBalancer", type };
  const cls = svc.spec.loadBalancerClass ?? null;
  if (cls !== ourClass) return { kind: "ForeignClass", class: cls, ours: ourClass };
  return null;
}

type AnnotationName = "allow-shared-ip" | "loadBalancerIPs" | "address-pool";
const KEYS: Record<AnnotationName, readonly [current: string, deprecated: string]> = {
  "allow-shared-ip": [`${PREFIX}allow-shared-ip`, `${DEPRECATED_PREFIX}allow-shared-ip`],
  loadBalancerIPs: [`${PREFIX}loadBalancerIPs`, `${DEPRECATED_PREFIX}loadBalancerIPs`],
  "address-pool": [`${PREFIX}address-pool`, `${DEPRECATED_PREFIX}address-pool`],
};

function annotation(svc: Service, name: AnnotationName, warnings: AllocWarning[]): string | undefined {
  const a = svc.metadata.annotations;
  if (a === undefined) return undefined;
  const [currentKey, oldKey] = KEYS[name];
  const current = a[currentKey];
  const old = a[oldKey];
  if (old !== undefined)
    warnings.push({
      kind: "DeprecatedAnnotation",
      annotation: oldKey,
      replacement: currentKey,
      ignored: current !== undefined,
    });
  return current ?? old;
}

/** Port lists seen so far, one frozen array each: 10,000 Services on port 80 share one. */
const PORT_LISTS = new Map<string, readonly string[]>();
/** Distinct port lists kept at most (a list beyond it is used as it is). */
const PORT_LISTS_MAX = 4096;

function internPorts(ports: string[]): readonly string[] {
  const k = ports.join(",");
  const known = PORT_LISTS.get(k);
  if (known !== undefined) return known;
  if (PORT_LISTS.size >= PORT_LISTS_MAX) return ports;
  const frozen = Object.freeze(ports);
  PORT_LISTS.set(k, frozen);
  return frozen;
}

export function basics(svc: Service, warnings: AllocWarning[] = [], key = serviceKey(svc)): Basics {
  const sharingKey = annotation(svc, "allow-shared-ip", warnings) ?? "";
  let backendKey = "";
  if (svc.spec.externalTrafficPolicy === "Local") {
    const sel = svc.spec.selector ?? {};
    backendKey = Object.keys(sel)
      .sort()
      .map((k) => `${k}=${sel[k]}`)
      .join(",");
  }
  const listed = (svc.spec.ports ?? []).map((p) => `${p.port}/${p.protocol ?? "TCP"}`);
  const ports = internPorts(listed.length < 2 ? listed : [...new Set(listed)].sort());
  return {
    key,
    namespace: svc.metadata.namespace ?? "default",
    labels: svc.metadata.labels,
    sharingKey,
    backendKey,
    ports,
  };
}

const FAMILY_OF: Record<"IPv4" | "IPv6", Family> = { IPv4: 4, IPv6: 6 };

/** Reads everything the allocator needs from `svc`, or the first reason it cannot. */
/** `key`: the Service's key, when the caller has it (see AllocatorOptions.keyOf). */
export function parseRequest(svc: Service, ourClass: string | null, key = serviceKey(svc)): ParsedRequest {
  const warnings: AllocWarning[] = [];
  const fail = (reason: AllocReason, notOurs = false): ParsedRequest => ({
    ok: false,
    reason,
    warnings,
    notOurs,
  });
  const refusal = ownershipRefusal(svc, ourClass);
  if (refusal !== null) return fail(refusal, true);
  const b = basics(svc, warnings, key);
  const policy = svc.spec.ipFamilyPolicy ?? "SingleStack";

  // Requested addresses.
  let requested: Ip[] | null = null;
  const ipsText = annotation(svc, "loadBalancerIPs", warnings);
  const lbIP = svc.spec.loadBalancerIP ?? "";
  if (ipsText !== undefined && ipsText !== "") {
    if (lbIP !== "") return fail({ kind: "ConflictingIPRequests", annotation: ANNOTATION_LB_IPS });
    requested = [];
    for (const part of ipsText.split(",")) {
      const ip = parseIp(part.trim());
      if (ip === null)
        return fail({
          kind: "InvalidAnnotation",
          annotation: ANNOTATION_LB_IPS,
          value: ipsText,
          detail: `${JSON.stringify(part.trim())} is not an IP address`,
        });
      requested.push(ip);
    }
  } else if (lbIP !== "") {
    const ip = parseIp(lbIP);
    if (ip === null) return fail({ kind: "InvalidLoadBalancerIP", value: lbIP });
    requested = [ip];
  }
  if (requested !== null) {
    const texts = requested.map(formatIp);
    if (requested.length > 2)
      return fail({
        kind: "InvalidRequestedIPs",
        ips: texts,
        detail: "at most one IPv4 and one IPv6 address",
      });
    if (requested.length === 2 && requested[0]!.family === requested[1]!.family)
      return fail({ kind: "InvalidRequestedIPs", ips: texts, detail: "both are of the same family" });
  }

  // Families: ClusterIPs first (as MetalLB), then spec.ipFamilies, then the requested IPs.
  let families: Family[] = [];
  const cips = (svc.spec.clusterIPs ?? (svc.spec.clusterIP === undefined ? [] : [svc.spec.clusterIP])).filter(
    (c) => c !== "" && c !== "None",
  );
  if (cips.length > 0) {
    for (const c of cips) {
      const ip = parseIp(c);
      if (ip === null) return fail({ kind: "InvalidClusterIP", value: c });
      if (!families.includes(ip.family)) families.push(ip.family);
    }
  } else if (svc.spec.ipFamilies !== undefined && svc.spec.ipFamilies.length > 0) {
    families = [...new Set(svc.spec.ipFamilies.map((f) => FAMILY_OF[f]))];
  } else if (requested !== null && policy === "SingleStack") {
    families = [requested[0]!.family];
  } else if (requested !== null) {
    // The requested IPs are the families (MetalLB compares the Service's family with theirs);
    // RequireDualStack with one requested IP asks for the other family too, and is refused below.
    families = requested.map((r) => r.family);
    if (families.length === 1 && policy === "RequireDualStack") families.push(families[0] === 4 ? 6 : 4);
  } else {
    families = policy === "SingleStack" ? [4] : [4, 6];
  }
  if (policy === "SingleStack") families = families.slice(0, 1);
  if (policy === "RequireDualStack" && families.length < 2)
    return fail({ kind: "DualStackUnavailable", families });

  if (requested !== null) {
    // As MetalLB: the requested IPs must cover exactly the Service's families, also under
    // PreferDualStack (one requested IP for a dual-stack Service is refused there too).
    const fits = requested.every((r) => families.includes(r.family)) && requested.length === families.length;
    if (!fits) return fail({ kind: "RequestedFamilyMismatch", ips: requested.map(formatIp), families });
    // Primary family first, whatever order the user wrote.
    requested.sort((x, y) => families.indexOf(x.family) - families.indexOf(y.family));
  }

  const poolText = annotation(svc, "address-pool", warnings);
  return {
    ok: true,
    warnings,
    request: {
      ...b,
      families,
      policy,
      requested,
      pool: poolText === undefined || poolText === "" ? null : poolText,
    },
  };
}
