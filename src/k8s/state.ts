/**
 * The cluster as vipd sees it: one informer per watched collection (Services, EndpointSlices,
 * Nodes, Namespaces, Secrets of vipd's namespace, the metallb.io kinds), and the conversions of
 * those objects into what the pure core takes: a validated `Config` (the metallb.io objects and
 * Services go through the same zod schemas and cross-object checks as manifests on disk), the
 * node list, and which nodes have ready endpoints of each Service.
 *
 * An object that fails its schema is left out and reported (one bad Service never blocks the
 * others); a metallb.io object that fails validation is left out with what depends on it, and
 * the rest applies (src/k8s/configset.ts). The metallb.io kinds and Secrets are read only from
 * vipd's namespace.
 */

import type { Config, Loaded, Problem } from "../config/index.ts";
import { type Kind, ServiceSpec } from "../config/schemas.ts";
import { buildConfig } from "../config/validate.ts";
import type { NodeInfo } from "../plan/plan.ts";
import { type Kube, type KubeObject, METALLB_PLURALS, PATHS } from "./client.ts";
import {
  type CrObject,
  contentKey,
  loadObject,
  META_KEYS,
  pick,
  type Rejected,
  selectCrs,
} from "./configset.ts";
import { Informer, type InformerOptions } from "./informer.ts";

export interface ClusterStateOptions {
  /** vipd's own namespace: Secrets (BGP passwords) are read only there. */
  namespace: string;
  /** EndpointSlice API version (v1beta1 for Kubernetes < 1.21). */
  endpointSliceVersion?: "v1" | "v1beta1";
  /** Called (synchronously) after any change to any collection. */
  onChange?: (collection: string) => void;
  onError?: (collection: string, err: unknown) => void;
  informer?: Omit<InformerOptions, "onChange" | "onError">;
}

export interface ConfigView {
  config: Config | undefined;
  /** Problems of the objects as they are now (the config may be an older, good one). */
  problems: Problem[];
  /** metallb.io objects left out of the configuration, with their problems. */
  rejected: Rejected[];
}

const SERVICE_SPEC_KEYS = Object.keys(ServiceSpec.shape);

/** The parts of an API object the schemas know (the API server adds fields vipd does not read). */
export function toManifest(kind: Kind, o: KubeObject): Record<string, unknown> {
  const metadata = pick(o.metadata, META_KEYS);
  if (kind === "Service") {
    const lb = (o.status as { loadBalancer?: { ingress?: { ip?: string; hostname?: string }[] } } | undefined)
      ?.loadBalancer;
    const ingress = (lb?.ingress ?? []).map((i) => pick(i, ["ip", "hostname"]));
    return {
      apiVersion: "v1",
      kind,
      metadata,
      spec: pick(o.spec, SERVICE_SPEC_KEYS),
      status: { loadBalancer: ingress.length > 0 ? { ingress } : {} },
    };
  }
  if (kind === "Namespace") return { apiVersion: "v1", kind, metadata };
  return { apiVersion: o.apiVersion, kind, metadata, spec: o.spec ?? {} };
}

export class ClusterState {
  readonly informers: Record<string, Informer>;
  /** Content keys of the metallb.io objects in force (they keep their place when others change). */
  private inForce: ReadonlySet<string> = new Set();
  /**
   * True while some metallb.io object the API server holds is not in force (it failed
   * validation): the running configuration is older than the declared one (vipd_config_stale).
   */
  stale = false;
  private readonly validated = new Map<string, { rv: string; result: Loaded | Problem[] }>();

  constructor(
    kube: Kube,
    private readonly opts: ClusterStateOptions,
  ) {
    const paths: Record<string, string> = {
      services: PATHS.services(),
      endpointslices: PATHS.endpointSlices(opts.endpointSliceVersion ?? "v1"),
      nodes: PATHS.nodes(),
      namespaces: PATHS.namespaces(),
      secrets: PATHS.secrets(opts.namespace),
    };
    // The metallb.io objects only from vipd's namespace, as MetalLB reads only its own.
    for (const plural of Object.keys(METALLB_PLURALS)) paths[plural] = PATHS.metallb(plural, opts.namespace);
    this.informers = Object.fromEntries(
      Object.entries(paths).map(([name, path]) => [
        name,
        new Informer(kube, path, {
          ...opts.informer,
          onChange: () => opts.onChange?.(name),
          onError: (e) => opts.onError?.(name, e),
        }),
      ]),
    );
  }

  start(): void {
    for (const i of Object.values(this.informers)) i.start();
  }

  stop(): void {
    for (const i of Object.values(this.informers)) i.stop();
  }

  async waitSynced(): Promise<void> {
    await Promise.all(Object.values(this.informers).map((i) => i.waitSynced()));
  }

  get synced(): boolean {
    return Object.values(this.informers).every((i) => i.synced);
  }

  private objects(name: string): KubeObject[] {
    return this.informers[name]?.list() ?? [];
  }

  /**
   * The configuration the cluster declares. Services that fail validation are left out (and
   * reported); metallb.io objects that fail validation are left out with everything that depends
   * on them (src/k8s/configset.ts), and the rest applies.
   */
  config(): ConfigView {
    const problems: Problem[] = [];
    const sel = selectCrs(this.crObjects(), this.secrets(), this.opts.namespace, this.inForce);
    this.inForce = new Set(sel.accepted.map(contentKey));
    for (const r of sel.rejected) problems.push(...r.problems);
    const crsInForce = sel.accepted;
    const namespaces: Loaded[] = [];
    for (const o of this.objects("namespaces")) {
      const l = loadObject("Namespace", toManifest("Namespace", o), `Namespace/${o.metadata.name}`);
      if (!Array.isArray(l)) namespaces.push(l);
    }
    const services: Loaded[] = [];
    const seen = new Set<string>();
    for (const o of this.objects("services")) {
      if ((o.spec as { type?: string } | undefined)?.type !== "LoadBalancer") continue;
      // Validation is cached per object version: 10,000 Services are not re-validated per change.
      const file = `Service/${o.metadata.namespace}/${o.metadata.name}`;
      const rv = o.metadata.resourceVersion ?? "";
      let l = this.validated.get(file);
      if (l === undefined || l.rv !== rv) {
        l = { rv, result: loadObject("Service", toManifest("Service", o), file) };
        this.validated.set(file, l);
      }
      seen.add(file);
      const r = l.result;
      if (Array.isArray(r)) problems.push(...r);
      else services.push(r);
    }
    for (const k of this.validated.keys()) if (!seen.has(k)) this.validated.delete(k);
    let built = buildConfig([...crsInForce, ...namespaces, ...services]);
    const bad = new Set(built.problems.filter((p) => p.kind === "Service").map((p) => p.file));
    if (bad.size > 0) {
      problems.push(...built.problems.filter((p) => p.kind === "Service"));
      built = buildConfig([...crsInForce, ...namespaces, ...services.filter((s) => !bad.has(s.file))]);
    }
    for (const p of built.problems) if (!problems.includes(p)) problems.push(p);
    this.stale = sel.rejected.length > 0;
    return { config: built.config, problems, rejected: sel.rejected };
  }

  /** The metallb.io objects of vipd's namespace, as the API server holds them now. */
  crObjects(): CrObject[] {
    const out: CrObject[] = [];
    for (const [plural, kind] of Object.entries(METALLB_PLURALS))
      for (const o of this.objects(plural)) out.push({ kind, obj: o });
    return out;
  }

  /** Secrets of vipd's namespace, by name. */
  secrets(): Map<string, KubeObject> {
    return new Map(this.objects("secrets").map((s) => [s.metadata.name, s]));
  }

  /** Every Node object as the API server has it (addresses, conditions). */
  nodeObjects(): KubeObject[] {
    return this.objects("nodes");
  }

  /** Every Node, with its labels. */
  nodes(): NodeInfo[] {
    return this.objects("nodes")
      .map((n) => ({ name: n.metadata.name, labels: { ...(n.metadata.labels ?? {}) } }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  private conditions(n: KubeObject): { type?: string; status?: string }[] {
    return (n.status as { conditions?: { type?: string; status?: string }[] } | undefined)?.conditions ?? [];
  }

  /** Nodes whose Ready condition is True (a node without conditions counts as ready). */
  readyNodes(): NodeInfo[] {
    const ready = new Set(
      this.objects("nodes")
        .filter((n) => {
          const c = this.conditions(n).find((x) => x.type === "Ready");
          return c === undefined || c.status === "True";
        })
        .map((n) => n.metadata.name),
    );
    return this.nodes().filter((n) => ready.has(n.name));
  }

  networkUnavailable(): Set<string> {
    return new Set(
      this.objects("nodes")
        .filter((n) => this.conditions(n).some((c) => c.type === "NetworkUnavailable" && c.status === "True"))
        .map((n) => n.metadata.name),
    );
  }

  /** Per Service key, the nodes with a ready endpoint (EndpointSlice v1 nodeName, or v1beta1 topology). */
  localEndpoints(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    for (const s of this.objects("endpointslices")) {
      const svc = s.metadata.labels?.["kubernetes.io/service-name"];
      if (svc === undefined) continue;
      const key = `${s.metadata.namespace}/${svc}`;
      let set = out.get(key);
      if (!set) {
        set = new Set();
        out.set(key, set);
      }
      const eps = (s.endpoints ?? []) as {
        nodeName?: string;
        topology?: Record<string, string>;
        conditions?: { ready?: boolean };
      }[];
      for (const e of eps) {
        if (e.conditions?.ready === false) continue;
        const node = e.nodeName ?? e.topology?.["kubernetes.io/hostname"];
        if (node !== undefined) set.add(node);
      }
    }
    return out;
  }

  /** The current Service object (as the API server has it), by "ns/name". */
  service(key: string): KubeObject | undefined {
    return this.informers.services?.get(key);
  }

  pool(name: string): KubeObject | undefined {
    return this.objects("ipaddresspools").find((p) => p.metadata.name === name);
  }
}
