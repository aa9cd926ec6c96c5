/**
 * The configuration the cluster declares, kept current change by change: what `ClusterState`
 * hands the controller, the speaker and the API (a validated `Config`, its problems, the
 * metallb.io objects left out).
 *
 * The rule is the one of a full rebuild (`fullConfigView` below, kept as the reference the tests
 * compare with): the metallb.io objects in force are chosen by src/k8s/configset.ts; every
 * LoadBalancer Service goes through the Service schema and the Service checks of
 * src/config/validate.ts (its annotations agree, the pool it names exists); one that fails is
 * left out alone and reported. What changes is the cost: a watch event only marks its object; a
 * view validates the marked Services (a Service is validated once per resourceVersion) and
 * re-checks every Service only when the set of pool names in force changed. The lists keep the
 * informers' order, so the result equals the full rebuild's, element for element.
 *
 * Values in, values out: no I/O, no clock.
 */

import type { Config, Loaded, Problem } from "../config/index.ts";
import { type Kind, ServiceSpec } from "../config/schemas.ts";
import { buildConfig } from "../config/validate.ts";
import { ANNOTATION_ALLOCATED_FROM } from "../ipam/request.ts";
import type { KubeObject } from "./client.ts";
import {
  type CrObject,
  type CrSelection,
  contentKey,
  loadObject,
  META_KEYS,
  pick,
  type Rejected,
  selectCrs,
} from "./configset.ts";

export interface ConfigView {
  config: Config | undefined;
  /** Problems of the objects as they are now (the config may be an older, good one). */
  problems: Problem[];
  /** metallb.io objects left out of the configuration, with their problems. */
  rejected: Rejected[];
}

const SERVICE_SPEC_KEYS = Object.keys(ServiceSpec.shape);
/** managedFields: the API server's bookkeeping, never read (large: one entry per writer). */
const READ_META_KEYS = META_KEYS.filter((k) => k !== "managedFields");

/** The parts of an API object the schemas know (the API server adds fields vipd does not read). */
export function toManifest(kind: Kind, o: KubeObject): Record<string, unknown> {
  const metadata = pick(o.metadata, READ_META_KEYS);
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

export const isLoadBalancer = (o: KubeObject): boolean =>
  (o.spec as { type?: string } | undefined)?.type === "LoadBalancer";

const serviceFile = (o: KubeObject): string => `Service/${o.metadata.namespace}/${o.metadata.name}`;

/** Validation of one object version: a Service's or a Namespace's. */
interface Validated {
  rv: string;
  result: Loaded | Problem[];
}

/** The inputs of a full rebuild: the collections as the informers hold them, in their order. */
export interface ClusterObjects {
  crs: readonly CrObject[];
  secrets: ReadonlyMap<string, KubeObject>;
  namespaces: readonly KubeObject[];
  services: readonly KubeObject[];
}

/**
 * The full rebuild: every object of every collection, validated and cross-checked. `inForce`
 * (content keys of the metallb.io objects in force before) is read and replaced; `cache` (per
 * Service file, the validation of a resourceVersion) is read and updated.
 */
export function fullConfigView(
  input: ClusterObjects,
  namespace: string,
  state: { inForce: ReadonlySet<string>; cache?: Map<string, Validated> },
): ConfigView {
  const problems: Problem[] = [];
  const sel = selectCrs(input.crs, input.secrets, namespace, state.inForce);
  state.inForce = new Set(sel.accepted.map(contentKey));
  for (const r of sel.rejected) problems.push(...r.problems);
  const namespaces: Loaded[] = [];
  for (const o of input.namespaces) {
    const l = loadObject("Namespace", toManifest("Namespace", o), `Namespace/${o.metadata.name}`);
    if (!Array.isArray(l)) namespaces.push(l);
  }
  const cache = state.cache ?? new Map<string, Validated>();
  const services: Loaded[] = [];
  const seen = new Set<string>();
  for (const o of input.services) {
    if (!isLoadBalancer(o)) continue;
    const file = serviceFile(o);
    const rv = o.metadata.resourceVersion ?? "";
    let l = cache.get(file);
    if (l === undefined || l.rv !== rv) {
      l = { rv, result: loadObject("Service", toManifest("Service", o), file) };
      cache.set(file, l);
    }
    seen.add(file);
    if (Array.isArray(l.result)) problems.push(...l.result);
    else services.push(l.result);
  }
  for (const k of cache.keys()) if (!seen.has(k)) cache.delete(k);
  let built = buildConfig([...sel.accepted, ...namespaces, ...services]);
  const bad = new Set(built.problems.filter((p) => p.kind === "Service").map((p) => p.file));
  if (bad.size > 0) {
    problems.push(...built.problems.filter((p) => p.kind === "Service"));
    built = buildConfig([...sel.accepted, ...namespaces, ...services.filter((s) => !bad.has(s.file))]);
  }
  for (const p of built.problems) if (!problems.includes(p)) problems.push(p);
  return { config: built.config, problems, rejected: sel.rejected };
}

/** The versions of the metallb.io objects and Secrets (the same versions: the same objects). */
function crInputKey(crs: readonly CrObject[], secrets: ReadonlyMap<string, KubeObject>): string {
  const parts: string[] = [];
  for (const c of crs)
    parts.push(
      `${c.kind}/${c.obj.metadata.name}/${c.obj.metadata.uid ?? ""}/${c.obj.metadata.resourceVersion ?? "?"}`,
    );
  for (const [name, o] of secrets)
    parts.push(`Secret/${name}/${o.metadata.uid ?? ""}/${o.metadata.resourceVersion ?? "?"}`);
  return parts.join("\n");
}

/** One Service as the index holds it. */
interface ServiceEntry {
  /** Not a LoadBalancer Service: in no list (the entry keeps its place in the informer's order). */
  lb: boolean;
  /** The object of a change not yet validated (the informer holds the same object); null: deleted. */
  pending: KubeObject | null | undefined;
  v: Validated | undefined;
  /** Problems of the Service checks against the pools in force (schema-valid Services only). */
  checks: Problem[];
  /** The spec last validated, as JSON (a new version with the same spec re-reads only the rest). */
  spec?: string | undefined;
  /** The metadata last validated, as JSON, without what vipd writes (see `readMetaKey`). */
  meta?: string | undefined;
  /** Bumped when something besides vipd's own writes changed (see `generation`). */
  gen: number;
}

/** The metadata as JSON without the resourceVersion and vipd's ip-allocated-from-pool annotation. */
function readMetaKey(md: Record<string, unknown>): string {
  const {
    resourceVersion: _rv,
    annotations,
    ...rest
  } = md as {
    resourceVersion?: unknown;
    annotations?: Record<string, unknown>;
  };
  if (annotations === undefined) return JSON.stringify(rest);
  const { [ANNOTATION_ALLOCATED_FROM]: _own, ...others } = annotations;
  return JSON.stringify([rest, others]);
}

/** A status as toManifest makes it whose ingress holds only strings: the schema takes it as it is. */
function plainStatus(status: unknown): boolean {
  const ingress = (status as { loadBalancer: { ingress?: Record<string, unknown>[] } }).loadBalancer.ingress;
  if (ingress === undefined) return true;
  for (const i of ingress) for (const v of Object.values(i)) if (typeof v !== "string") return false;
  return true;
}

/** A pool as the Service checks see it: a name (its addresses are checked with the pools). */
const stubPool = (name: string): Loaded =>
  ({
    kind: "IPAddressPool",
    obj: {
      apiVersion: "metallb.io/v1beta1",
      kind: "IPAddressPool",
      metadata: { name },
      spec: { addresses: [] },
    },
    file: `IPAddressPool//${name}`,
    doc: 0,
    line: 0,
    lineOf: () => 0,
  }) as unknown as Loaded;

/**
 * The incremental configuration. `service` and `namespace` take the informers' changes as they
 * happen (cheap: the object is only marked); `view` brings the configuration up to date.
 */
export class ConfigIndex {
  private inForce: ReadonlySet<string> = new Set();
  private readonly services = new Map<string, ServiceEntry>();
  private readonly dirtyServices = new Set<string>();
  private readonly namespaces = new Map<
    string,
    { pending: KubeObject | undefined; v: Validated | undefined }
  >();
  private namespacesDirty = false;
  private poolNames = "";
  private stubPools: Loaded[] = [];
  /** The Service list is made again when read after a change (the controller's passes never read it). */
  private listsDirty = true;
  private problemsDirty = true;
  /** Services schema-invalid or failing their checks (the problem lists are walked only then). */
  private bad = 0;
  private serviceList: Config["services"] = [];
  private namespaceList: Config["namespaces"] = [];
  private serviceProblems: Problem[] = [];
  private crKey = "";
  private lastInput = "";
  private lastSel: CrSelection | undefined;
  private crConfig: { config: Config; problems: Problem[] } | undefined;
  private gens = 0;
  /** Validations done (for tests and the benchmark: proportional to the changes). */
  readonly stats = { validated: 0, partly: 0, checked: 0, views: 0 };

  constructor(private readonly namespace: string) {}

  /** A Service changed (ADDED / MODIFIED: its new object; DELETED: undefined). */
  service(key: string, obj: KubeObject | undefined): void {
    this.dirtyServices.add(key);
    let e = this.services.get(key);
    if (obj === undefined) {
      if (e !== undefined) e.pending = null;
      return;
    }
    if (e?.pending === null) {
      // Deleted and created again: it goes to the end, as in the informer's store.
      this.drop(key, e);
      e = undefined;
    }
    if (e === undefined)
      this.services.set(key, { lb: false, pending: obj, v: undefined, checks: [], gen: ++this.gens });
    else e.pending = obj;
  }

  private drop(key: string, e: ServiceEntry): void {
    if (this.isBad(e)) this.bad--;
    if (e.lb) this.listsDirty = this.problemsDirty = true;
    this.services.delete(key);
  }

  /** A Namespace changed (DELETED: undefined). */
  namespaceChanged(name: string, obj: KubeObject | undefined): void {
    this.namespacesDirty = true;
    if (obj === undefined) this.namespaces.delete(name);
    else {
      const e = this.namespaces.get(name);
      if (e === undefined) this.namespaces.set(name, { pending: obj, v: undefined });
      else e.pending = obj;
    }
  }

  /** Keys of Services changed since the last call (each consumer keeps its own feed: see `feed`). */
  private readonly feeds = new Set<Set<string>>();

  /** A set that collects the key of every Service change from now on (the consumer empties it). */
  feed(): Set<string> {
    const s = new Set<string>();
    this.feeds.add(s);
    return s;
  }

  /** Called by `service` and the checks: tells every feed. */
  private tell(key: string): void {
    for (const f of this.feeds) f.add(key);
  }

  private isBad(e: ServiceEntry): boolean {
    return e.lb && e.v !== undefined && (Array.isArray(e.v.result) || e.checks.length > 0);
  }

  /** A schema-valid LoadBalancer Service that passes its checks, or undefined. */
  valid(key: string): Config["services"][number] | undefined {
    const e = this.services.get(key);
    if (e === undefined || !e.lb || e.v === undefined || Array.isArray(e.v.result) || e.checks.length > 0)
      return undefined;
    return e.v.result.obj as Config["services"][number];
  }

  /**
   * A number that changes whenever the Service changes in anything but what vipd itself writes
   * (its status, its ip-allocated-from-pool annotation, the resourceVersion): the controller
   * allocates a Service again only when it changed, or when what it holds is not vipd's decision.
   */
  generation(key: string): number | undefined {
    return this.services.get(key)?.gen;
  }

  /** True when the Service is a LoadBalancer Service left out (its schema or its checks). */
  invalid(key: string): boolean {
    const e = this.services.get(key);
    return e !== undefined && this.isBad(e);
  }

  /** The configuration now. `crs` and `secrets`: the metallb.io objects and Secrets as held now. */
  view(crs: readonly CrObject[], secrets: ReadonlyMap<string, KubeObject>): ConfigView {
    this.stats.views++;
    // metallb.io objects: few; chosen again on every view, as the full rebuild does (the choice
    // depends on what was in force before).
    const inputKey = crInputKey(crs, secrets);
    let sel = this.lastSel;
    // Everything accepted: the choice did not depend on what was in force before, so the same
    // objects give the same choice. Otherwise choose again, as the full rebuild does.
    if (sel === undefined || inputKey !== this.lastInput || sel.rejected.length > 0) {
      sel = selectCrs(crs, secrets, this.namespace, this.inForce);
      this.lastSel = sel;
      this.lastInput = inputKey;
    }
    const keys = sel.accepted.map(contentKey);
    this.inForce = new Set(keys);
    const crKey = keys.join("\0");
    if (this.crConfig === undefined || crKey !== this.crKey) {
      this.crConfig = buildConfig(sel.accepted);
      this.crKey = crKey;
    }
    const poolNames = this.crConfig.config.pools.map((p) => p.metadata.name);
    const namesKey = [...new Set(poolNames)].sort().join("\0");
    const recheck = namesKey !== this.poolNames;
    if (recheck) {
      this.poolNames = namesKey;
      this.stubPools = [...new Set(poolNames)].map(stubPool);
    }
    this.validateNamespaces();
    this.validateServices(recheck);

    const crProblems = this.crConfig.problems;
    if (this.problemsDirty) this.rebuildProblems();
    const problems: Problem[] = [];
    for (const r of sel.rejected) problems.push(...r.problems);
    problems.push(...this.serviceProblems);
    for (const p of crProblems) if (!problems.includes(p)) problems.push(p);
    const c = this.crConfig.config;
    const index = this;
    return {
      config: {
        pools: c.pools,
        l2Advertisements: c.l2Advertisements,
        bgpAdvertisements: c.bgpAdvertisements,
        peers: c.peers,
        bfdProfiles: c.bfdProfiles,
        communities: c.communities,
        // Made when read (the latest view's list: nothing reads it after the next view).
        get services() {
          return index.currentServices();
        },
        namespaces: this.namespaceList,
        nodeSettings: c.nodeSettings,
      },
      problems,
      rejected: sel.rejected,
    };
  }

  private validateNamespaces(): void {
    if (!this.namespacesDirty) return;
    this.namespacesDirty = false;
    const namespaces: Config["namespaces"] = [];
    for (const [name, e] of this.namespaces) {
      const o = e.pending;
      e.pending = undefined;
      const rv = o?.metadata.resourceVersion ?? "";
      if (o !== undefined && (e.v === undefined || e.v.rv !== rv))
        e.v = { rv, result: loadObject("Namespace", toManifest("Namespace", o), `Namespace/${name}`) };
      if (e.v !== undefined && !Array.isArray(e.v.result))
        namespaces.push(e.v.result.obj as Config["namespaces"][number]);
    }
    this.namespaceList = namespaces;
  }

  /**
   * One Service version through the Service schema. A version that differs from the one
   * validated before only in what vipd itself writes (its resourceVersion, the
   * ip-allocated-from-pool annotation, status.loadBalancer.ingress) keeps the earlier result
   * with those three parts replaced: the schema accepts any string there (checked here by
   * hand), so the result is the whole schema's. It keeps its generation (`own` true): nothing
   * the allocator or the Service checks read changed. Anything else: the whole schema.
   */
  private validate(o: KubeObject, e: ServiceEntry): { v: Validated; own: boolean } {
    const rv = o.metadata.resourceVersion ?? "";
    const m = toManifest("Service", o);
    const spec = JSON.stringify(m.spec);
    const md = m.metadata as { annotations?: Record<string, unknown> };
    const mine = md.annotations?.[ANNOTATION_ALLOCATED_FROM];
    const meta = readMetaKey(md);
    const prev = e.v?.result;
    if (
      prev !== undefined &&
      !Array.isArray(prev) &&
      e.spec === spec &&
      e.meta === meta &&
      (mine === undefined || typeof mine === "string") &&
      plainStatus(m.status)
    ) {
      this.stats.partly++;
      const metadata: Record<string, unknown> = { ...prev.obj.metadata };
      if (md.annotations === undefined) delete metadata.annotations;
      else metadata.annotations = md.annotations;
      if (o.metadata.resourceVersion === undefined) delete metadata.resourceVersion;
      else metadata.resourceVersion = rv;
      return {
        v: { rv, result: { ...prev, obj: { ...prev.obj, metadata, status: m.status } as typeof prev.obj } },
        own: true,
      };
    }
    e.spec = spec;
    e.meta = meta;
    return { v: { rv, result: loadObject("Service", m, serviceFile(o)) }, own: false };
  }

  /**
   * Validates the changed Services and checks them against the pools in force (every Service
   * when `all`: the pool names changed).
   */
  private validateServices(all: boolean): void {
    const toCheck = new Map<string, ServiceEntry>();
    for (const key of this.dirtyServices) {
      this.tell(key);
      const e = this.services.get(key);
      if (e === undefined || e.pending === undefined) continue;
      if (e.pending === null) {
        this.drop(key, e);
        continue;
      }
      const o = e.pending;
      e.pending = undefined;
      const wasBad = this.isBad(e);
      const lb = isLoadBalancer(o);
      const rv = o.metadata.resourceVersion ?? "";
      if (lb !== e.lb) this.listsDirty = this.problemsDirty = true;
      e.lb = lb;
      if (!lb) {
        // As the full rebuild, which forgets the validation of a Service that is not a LoadBalancer.
        e.v = undefined;
        e.checks = [];
        e.gen = ++this.gens;
      } else if (e.v === undefined || e.v.rv !== rv) {
        const r = this.validate(o, e);
        e.v = r.v;
        this.stats.validated++;
        this.listsDirty = this.problemsDirty = true;
        if (!r.own) {
          // vipd's own writes change nothing the Service checks read: their result stands.
          e.gen = ++this.gens;
          e.checks = [];
          if (!Array.isArray(e.v.result)) toCheck.set(key, e);
        }
      }
      if (wasBad !== this.isBad(e)) {
        this.bad += wasBad ? -1 : 1;
        this.listsDirty = this.problemsDirty = true;
      }
    }
    this.dirtyServices.clear();
    if (all) for (const [key, e] of this.services) if (e.lb) toCheck.set(key, e);
    this.check(toCheck);
  }

  /** The Service checks of src/config/validate.ts, for these Services against the pool names in force. */
  private check(list: ReadonlyMap<string, ServiceEntry>): void {
    const loaded: Loaded[] = [];
    for (const e of list.values())
      if (e.v !== undefined && !Array.isArray(e.v.result)) loaded.push(e.v.result);
    if (loaded.length === 0) return;
    this.stats.checked += loaded.length;
    const byFile = new Map<string, Problem[]>();
    for (const p of buildConfig([...this.stubPools, ...loaded]).problems) {
      if (p.kind !== "Service") continue;
      const l = byFile.get(p.file);
      if (l === undefined) byFile.set(p.file, [p]);
      else l.push(p);
    }
    for (const [key, e] of list) {
      if (e.v === undefined || Array.isArray(e.v.result)) continue;
      const wasBad = this.isBad(e);
      const before = e.checks;
      e.checks = byFile.get(e.v.result.file) ?? [];
      if (before.length !== 0 || e.checks.length !== 0) {
        this.listsDirty = this.problemsDirty = true;
        this.tell(key);
      }
      if (wasBad !== this.isBad(e)) this.bad += wasBad ? -1 : 1;
    }
  }

  /** The valid LoadBalancer Services, in the informer's order (made again only after a change). */
  private currentServices(): Config["services"] {
    if (this.listsDirty) {
      this.listsDirty = false;
      const services: Config["services"] = [];
      for (const e of this.services.values())
        if (e.lb && e.v !== undefined && !Array.isArray(e.v.result) && e.checks.length === 0)
          services.push(e.v.result.obj as Config["services"][number]);
      this.serviceList = services;
    }
    return this.serviceList;
  }

  /** The Services' problems, in the informer's order: schema problems first, then the checks'. */
  private rebuildProblems(): void {
    this.problemsDirty = false;
    const problems: Problem[] = [];
    if (this.bad > 0) {
      for (const e of this.services.values())
        if (e.lb && Array.isArray(e.v?.result)) problems.push(...e.v.result);
      for (const e of this.services.values()) if (e.lb) problems.push(...e.checks);
    }
    this.serviceProblems = problems;
  }
}
