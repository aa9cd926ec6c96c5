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

import type { NodeInfo } from "../plan/plan.ts";
import { type Kube, type KubeObject, METALLB_PLURALS, objectKey, PATHS } from "./client.ts";
import { ConfigIndex, type ConfigView } from "./config-index.ts";
import type { CrObject } from "./configset.ts";
import { type ChangeType, Informer, type InformerOptions } from "./informer.ts";

export { type ConfigView, toManifest } from "./config-index.ts";

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

export class ClusterState {
  readonly informers: Record<string, Informer>;
  /** The configuration, kept current change by change (src/k8s/config-index.ts). */
  readonly index: ConfigIndex;
  /**
   * True while some metallb.io object the API server holds is not in force (it failed
   * validation): the running configuration is older than the declared one (vipd_config_stale).
   */
  stale = false;
  /** Per Service key, the nodes with a ready endpoint; kept per EndpointSlice change. */
  private readonly endpoints = new Map<string, Map<string, readonly string[]>>();
  /** The same per Service key as one set, kept per change (only the changed Service's set is made again). */
  private readonly endpointsView = new Map<string, Set<string>>();
  /** Consumers' sets of Service keys whose endpoints changed (see `endpointFeed`). */
  private readonly endpointFeeds = new Set<Set<string>>();

  constructor(kube: Kube, opts: ClusterStateOptions) {
    const paths: Record<string, string> = {
      services: PATHS.services(),
      endpointslices: PATHS.endpointSlices(opts.endpointSliceVersion ?? "v1"),
      nodes: PATHS.nodes(),
      namespaces: PATHS.namespaces(),
      secrets: PATHS.secrets(opts.namespace),
    };
    // The metallb.io objects only from vipd's namespace, as MetalLB reads only its own.
    for (const plural of Object.keys(METALLB_PLURALS)) paths[plural] = PATHS.metallb(plural, opts.namespace);
    this.index = new ConfigIndex(opts.namespace);
    this.informers = Object.fromEntries(
      Object.entries(paths).map(([name, path]) => [
        name,
        new Informer(kube, path, {
          ...opts.informer,
          onChange: (type, obj, old) => {
            this.changed(name, type, obj, old);
            opts.onChange?.(name);
          },
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

  /** One change of one collection: the index and the endpoint map follow it. */
  private changed(name: string, type: ChangeType, obj: KubeObject, old: KubeObject | undefined): void {
    const gone = type === "DELETED";
    if (name === "services") this.index.service(objectKey(obj), gone ? undefined : obj);
    else if (name === "namespaces") this.index.namespaceChanged(obj.metadata.name, gone ? undefined : obj);
    else if (name === "endpointslices") {
      if (old !== undefined) this.sliceEndpoints(old, undefined);
      this.sliceEndpoints(obj, gone ? undefined : obj);
    }
  }

  /**
   * The configuration the cluster declares. Services that fail validation are left out (and
   * reported); metallb.io objects that fail validation are left out with everything that depends
   * on them (src/k8s/configset.ts), and the rest applies. Only what changed since the last call
   * is validated again (src/k8s/config-index.ts).
   */
  config(): ConfigView {
    const view = this.index.view(this.crObjects(), this.secrets());
    this.stale = view.rejected.length > 0;
    return view;
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

  /** An EndpointSlice's ready nodes, recorded under its Service (`now` undefined: the slice is gone). */
  private sliceEndpoints(slice: KubeObject, now: KubeObject | undefined): void {
    const svc = slice.metadata.labels?.["kubernetes.io/service-name"];
    if (svc === undefined) return;
    const key = `${slice.metadata.namespace}/${svc}`;
    const sliceKey = objectKey(slice);
    let per = this.endpoints.get(key);
    if (now === undefined) {
      if (per?.delete(sliceKey) !== true) return;
      if (per.size === 0) this.endpoints.delete(key);
    } else {
      if (per === undefined) {
        per = new Map();
        this.endpoints.set(key, per);
      }
      const eps = (now.endpoints ?? []) as {
        nodeName?: string;
        topology?: Record<string, string>;
        conditions?: { ready?: boolean };
      }[];
      const nodes: string[] = [];
      for (const e of eps) {
        if (e.conditions?.ready === false) continue;
        const node = e.nodeName ?? e.topology?.["kubernetes.io/hostname"];
        if (node !== undefined) nodes.push(node);
      }
      per.set(sliceKey, nodes);
    }
    const all = this.endpoints.get(key);
    if (all === undefined) this.endpointsView.delete(key);
    else {
      const set = new Set<string>();
      for (const nodes of all.values()) for (const n of nodes) set.add(n);
      this.endpointsView.set(key, set);
    }
    for (const f of this.endpointFeeds) f.add(key);
  }

  /**
   * Per Service key, the nodes with a ready endpoint (EndpointSlice v1 nodeName, or v1beta1
   * topology). One map, kept current: read it, do not keep it as a snapshot.
   */
  localEndpoints(): ReadonlyMap<string, ReadonlySet<string>> {
    return this.endpointsView;
  }

  /** A set that collects the key of every Service whose endpoints change from now on (the consumer empties it). */
  endpointFeed(): Set<string> {
    const s = new Set<string>();
    this.endpointFeeds.add(s);
    return s;
  }

  /** The current Service object (as the API server has it), by "ns/name". */
  service(key: string): KubeObject | undefined {
    return this.informers.services?.get(key);
  }

  pool(name: string): KubeObject | undefined {
    return this.objects("ipaddresspools").find((p) => p.metadata.name === name);
  }
}
