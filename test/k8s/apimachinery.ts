/**
 * API machinery of the faithful test API server (test/k8s/apiserver.ts): the resource types it
 * serves, RFC 7396 merge patch, RFC 6902 JSON patch (the operations clients use), equality-based
 * label selectors, and the error type that becomes a Kubernetes Status.
 */

export interface ResourceType {
  group: string; // "" for core
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  status: boolean;
}

export type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };

export const TYPES: ResourceType[] = [
  { group: "", version: "v1", plural: "services", kind: "Service", namespaced: true, status: true },
  { group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false, status: true },
  { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false, status: true },
  { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true, status: false },
  { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true, status: true },
  {
    group: "discovery.k8s.io",
    version: "v1",
    plural: "endpointslices",
    kind: "EndpointSlice",
    namespaced: true,
    status: false,
  },
  {
    group: "discovery.k8s.io",
    version: "v1beta1",
    plural: "endpointslices",
    kind: "EndpointSlice",
    namespaced: true,
    status: false,
  },
  {
    group: "coordination.k8s.io",
    version: "v1",
    plural: "leases",
    kind: "Lease",
    namespaced: true,
    status: false,
  },
  { group: "events.k8s.io", version: "v1", plural: "events", kind: "Event", namespaced: true, status: false },
  {
    group: "admissionregistration.k8s.io",
    version: "v1",
    plural: "validatingwebhookconfigurations",
    kind: "ValidatingWebhookConfiguration",
    namespaced: false,
    status: false,
  },
  ...(
    [
      ["ipaddresspools", "IPAddressPool", "v1beta1"],
      ["l2advertisements", "L2Advertisement", "v1beta1"],
      ["bgpadvertisements", "BGPAdvertisement", "v1beta1"],
      ["bgppeers", "BGPPeer", "v1beta2"],
      ["bgppeers", "BGPPeer", "v1beta1"],
      ["bfdprofiles", "BFDProfile", "v1beta1"],
      ["communities", "Community", "v1beta1"],
      ["servicel2statuses", "ServiceL2Status", "v1beta1"],
      ["servicebgpstatuses", "ServiceBGPStatus", "v1beta1"],
      ["configurationstates", "ConfigurationState", "v1beta1"],
    ] as const
  ).map(([plural, kind, version]) => ({
    group: "metallb.io",
    version,
    plural,
    kind,
    namespaced: true,
    status: true,
  })),
];

/** Storage is per group/plural (versions share it, as the real server converts between them). */
export const storeId = (t: ResourceType) => `${t.group}/${t.plural}`;
export const DNS1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const MICRO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

export interface Change {
  rv: number;
  store: string;
  type: "ADDED" | "MODIFIED" | "DELETED";
  obj: Obj;
}

export interface Watcher {
  store: string;
  ns: string | undefined;
  t: ResourceType;
  send(type: string, obj: unknown): void;
  close(): void;
}

export class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export const clone = <T>(x: T): T => structuredClone(x);

/** Equality-based label selectors: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated. */
export function labelMatcher(selector: string | null): (o: Obj) => boolean {
  if (!selector) return () => true;
  const reqs = selector.split(",").map((r) => {
    const m = /^(!?)([^=!]+)(?:(!=|==|=)(.*))?$/.exec(r.trim());
    if (!m) throw new HttpError(400, "BadRequest", `unable to parse requirement: ${r}`);
    return { not: m[1] === "!", key: m[2] as string, op: m[3], value: m[4] };
  });
  return (o) => {
    const labels = (o.metadata.labels ?? {}) as Record<string, string>;
    return reqs.every((r) => {
      const has = r.key in labels;
      if (r.op === undefined) return r.not ? !has : has;
      return r.op === "!=" ? labels[r.key] !== r.value : labels[r.key] === r.value;
    });
  };
}

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return clone(patch);
  const out: Record<string, unknown> =
    target !== null && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new HttpError(400, "BadRequest", "json patch must be a list");
  const doc = clone(target) as Record<string, unknown>;
  for (const op of ops as { op: string; path: string; value?: unknown }[]) {
    const parts = op.path
      .split("/")
      .slice(1)
      .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
    const last = parts.pop();
    if (last === undefined) throw new HttpError(422, "Invalid", "empty path");
    let cur = doc as Record<string, unknown>;
    for (const p of parts) {
      if (cur[p] === undefined) throw new HttpError(422, "Invalid", `path ${op.path} does not exist`);
      cur = cur[p] as Record<string, unknown>;
    }
    if (op.op === "remove") delete cur[last];
    else if (op.op === "add" || op.op === "replace") {
      if (Array.isArray(cur) && last === "-") (cur as unknown[]).push(op.value);
      else cur[last] = clone(op.value);
    } else throw new HttpError(422, "Invalid", `unsupported op ${op.op}`);
  }
  return doc;
}
