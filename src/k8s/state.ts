/**
 * The cluster as vipd sees it: one informer per watched collection (Services, EndpointSlices,
 * Nodes, Namespaces, Secrets of vipd's namespace, the metallb.io kinds), and the conversions of
 * those objects into what the pure core takes: a validated `Config` (the metallb.io objects and
 * Services go through the same zod schemas and cross-object checks as manifests on disk), the
 * node list, and which nodes have ready endpoints of each Service.
 *
 * An object that fails its schema is left out and reported (one bad Service never blocks the
 * others); when the metallb.io objects fail the cross-object checks the last good Config is kept.
 */

import type { Config, Loaded, Problem } from "../config/index.ts";
import { type Kind, ObjectMeta, SCHEMAS, ServiceSpec } from "../config/schemas.ts";
import { buildConfig } from "../config/validate.ts";
import type { NodeInfo } from "../daemon/plan.ts";
import { type Kube, type KubeObject, METALLB_PLURALS, PATHS } from "./client.ts";
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
}

const META_KEYS = Object.keys(ObjectMeta.shape);
const SERVICE_SPEC_KEYS = Object.keys(ServiceSpec.shape);

const pick = (o: unknown, keys: readonly string[]): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  if (o === null || typeof o !== "object") return out;
  for (const k of keys) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined && v !== null) out[k] = v;
  }
  return out;
};

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

function loaded(kind: Kind, obj: Record<string, unknown>, file: string): Loaded | Problem[] {
  const r = SCHEMAS[kind].safeParse(obj);
  if (r.success) return { kind, obj: r.data, file, doc: 0, line: 0, lineOf: () => 0 } as Loaded;
  return r.error.issues.map((i) => ({
    file,
    line: 0,
    kind,
    name: String((obj.metadata as { name?: unknown }).name ?? ""),
    field: i.path.join("."),
    message: i.message,
    pointer: `/${i.path.join("/")}`,
  }));
}

const decode = (b64: unknown): string | undefined =>
  typeof b64 === "string" ? Buffer.from(b64, "base64").toString("utf8") : undefined;

export class ClusterState {
  readonly informers: Record<string, Informer>;
  private lastGoodCrs: Loaded[] | undefined;
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
    for (const plural of Object.keys(METALLB_PLURALS)) paths[plural] = PATHS.metallb(plural);
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
   * reported); invalid metallb.io objects keep the last good configuration in force.
   */
  config(): ConfigView {
    const problems: Problem[] = [];
    const crs: Loaded[] = [];
    const secrets = new Map(this.objects("secrets").map((s) => [s.metadata.name, s]));
    for (const [plural, kind] of Object.entries(METALLB_PLURALS)) {
      for (const o of this.objects(plural)) {
        const m = toManifest(kind, o);
        const spec = m.spec as Record<string, unknown>;
        // BGP passwords from Secrets (kubernetes.io/basic-auth, key "password") in vipd's namespace.
        if (kind === "BGPPeer" && spec.passwordSecret !== undefined) {
          const ref = spec.passwordSecret as { name?: string };
          const pw = decode(
            (secrets.get(ref.name ?? "")?.data as Record<string, unknown> | undefined)?.password,
          );
          if (pw === undefined) {
            problems.push({
              file: `BGPPeer/${o.metadata.namespace}/${o.metadata.name}`,
              line: 0,
              kind,
              name: o.metadata.name,
              field: "spec.passwordSecret",
              message: `secret "${ref.name}" (key "password") not found in namespace ${this.opts.namespace}`,
              pointer: "/spec/passwordSecret",
            });
            continue;
          }
          const { passwordSecret: _, ...rest } = spec;
          m.spec = { ...rest, password: pw };
        }
        const l = loaded(kind, m, `${kind}/${o.metadata.namespace}/${o.metadata.name}`);
        if (Array.isArray(l)) problems.push(...l);
        else crs.push(l);
      }
    }
    const namespaces: Loaded[] = [];
    for (const o of this.objects("namespaces")) {
      const l = loaded("Namespace", toManifest("Namespace", o), `Namespace/${o.metadata.name}`);
      if (!Array.isArray(l)) namespaces.push(l);
    }
    // The metallb.io objects must pass the cross-object checks as a set; otherwise the last
    // good set stays in force (the problems are still reported).
    const crCheck = buildConfig(crs);
    let crsInForce = crs;
    if (problems.length > 0 || crCheck.problems.length > 0) {
      problems.push(...crCheck.problems);
      if (this.lastGoodCrs !== undefined) crsInForce = this.lastGoodCrs;
    } else this.lastGoodCrs = crs;
    const services: Loaded[] = [];
    const seen = new Set<string>();
    for (const o of this.objects("services")) {
      if ((o.spec as { type?: string } | undefined)?.type !== "LoadBalancer") continue;
      // Validation is cached per object version: 10,000 Services are not re-validated per change.
      const file = `Service/${o.metadata.namespace}/${o.metadata.name}`;
      const rv = o.metadata.resourceVersion ?? "";
      let l = this.validated.get(file);
      if (l === undefined || l.rv !== rv) {
        l = { rv, result: loaded("Service", toManifest("Service", o), file) };
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
    return { config: built.config, problems };
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
