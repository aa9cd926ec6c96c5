/**
 * The controller role: one active in the cluster at a time (a Lease decides). It runs the
 * allocator over the cluster's pools and LoadBalancer Services and writes back what it decided:
 *
 * - `status.loadBalancer.ingress` (merge patch on the status subresource);
 * - the `metallb.io/ip-allocated-from-pool` annotation;
 * - Events: IPAllocated, AllocationFailed, IPReleased (UpperCamelCase reasons), each once per
 *   change: an address the world no longer allows (pool deleted or shrunk, avoidBuggyIPs,
 *   serviceAllocation, sharing, request, an adopted status in no pool) gets IPReleased with the
 *   reason, then IPAllocated (re-addressed) or AllocationFailed (left without, status cleared) —
 *   MetalLB's convergeBalancer; a failure or warning is said again only when it changes;
 * - IPAddressPool status counts (assignedIPv4/IPv6, availableIPv4/IPv6), as MetalLB writes them.
 *
 * On becoming leader it starts with a fresh allocator whose first reconcile adopts every
 * still-valid address Services already hold (their statuses) before it allocates anything, so a
 * restart or a failover never moves or duplicates a valid IP. Writes are diffs: only a Service whose status or
 * annotation differs from the decision is written, and a write already in flight is not repeated.
 */

import type { Config } from "../config/index.ts";
import type { Problem } from "../config/load.ts";
import { Allocator, type AllocResult } from "../ipam/allocator.ts";
import { reasonMessage, replacedMessage, warningMessage } from "../ipam/reasons.ts";
import { ANNOTATION_ALLOCATED_FROM, serviceKey } from "../ipam/request.ts";
import type { Logger } from "../util/log.ts";
import type { Kube, KubeObject } from "./client.ts";
import { PATHS } from "./client.ts";
import { ConfigReporter } from "./config-state.ts";
import { EventRecorder } from "./events.ts";
import { LeaseElector } from "./lease.ts";
import { plainError, RateLimitedLog } from "./outage.ts";
import type { ClusterState } from "./state.ts";
import { PatchQueue } from "./writes.ts";

export interface ControllerOptions {
  identity: string;
  /** Namespace of the Lease (vipd's own). */
  namespace: string;
  leaseName?: string;
  leaseDurationS?: number;
  renewDeadlineMs?: number;
  retryMs?: number;
  loadBalancerClass?: string | undefined;
  log?: Logger | undefined;
  /** Delay that gathers bursts of changes into one reconcile (default 20 ms). */
  debounceMs?: number;
  now?: () => number;
}

/** A pass at least this long is followed by a garbage collection (see `run`). */
const LONG_PASS_MS = Number(process.env.VIPD_K8S_GC_PASS_MS ?? 150);
/** At most one such collection in this many milliseconds (a full collection costs tens of ms). */
const GC_SPACING_MS = Number(process.env.VIPD_K8S_GC_SPACING_MS ?? 2000);

const ingressIps = (o: KubeObject | undefined): string[] =>
  ((o?.status as { loadBalancer?: { ingress?: { ip?: string }[] } } | undefined)?.loadBalancer?.ingress ?? [])
    .map((i) => i.ip ?? "")
    .filter((ip) => ip !== "");

/** A Service as the configuration holds it (a raw API object has the same shape). */
type Svc = Config["services"][number];

const svcPath = (key: string): string => {
  const [ns, name] = key.split("/") as [string, string];
  return `${PATHS.services(ns)}/${name}`;
};

export class Controller {
  readonly elector: LeaseElector;
  private allocator: Allocator | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private again = false;
  /** Writes waiting or in flight, and those done (src/k8s/writes.ts). */
  private readonly writes: PatchQueue;
  private readonly events: EventRecorder;
  /** Objects left out of the configuration: Events, the ConfigurationState. */
  private readonly reporter: ConfigReporter;
  /** Lease and write failures, said once a minute while they last. */
  private readonly outage: RateLimitedLog;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the last collection after a long pass ran (performance.now()). */
  private lastGc = Number.NEGATIVE_INFINITY;
  /** Reconciles run, writes made, writes failed. */
  readonly stats = { reconciles: 0, writes: 0, writeErrors: 0, configMs: 0, reconcileMs: 0 };
  private idleWaiters: (() => void)[] = [];
  /** Pools and namespace labels of the last full pass. */
  private crKey = "";
  /** Service key → the generation the allocator last saw (src/k8s/config-index.ts). */
  private seen = new Map<string, number | undefined>();
  /** Services that have no address yet (retried when an address is released). */
  private readonly waiting = new Set<string>();
  /** An address was freed (re-addressed or lost) in the last pass: retry the waiting ones. */
  private freed = false;
  /** Per Service: the failure and warnings last told (said again only when they change). */
  private readonly told = new Map<string, string>();
  /** Per Service without addresses: the release last told (a stale status repeats it). */
  private readonly releaseTold = new Map<string, string>();
  /** Keys of the Services changed since the last pass (filled by the configuration index). */
  private readonly changedKeys: Set<string>;
  /** Namespace labels of the last pass, and the lists they were read from. */
  private nsLabels: {
    from: unknown;
    pools: unknown;
    labels: Map<string, Record<string, string>>;
    key: string;
  } = { from: undefined, pools: undefined, labels: new Map(), key: "" };

  constructor(
    private readonly kube: Kube,
    private readonly state: ClusterState,
    private readonly opts: ControllerOptions,
  ) {
    this.events = new EventRecorder(kube, "vipd.io/controller", opts.identity, opts.now);
    this.reporter = new ConfigReporter(kube, {
      namespace: opts.namespace,
      events: this.events,
      log: opts.log,
      now: opts.now,
    });
    this.outage = new RateLimitedLog({ log: opts.log, now: opts.now });
    this.writes = new PatchQueue(kube, {
      onError: (target, e) => {
        this.stats.writeErrors++;
        this.outage.warn("write", "controller: a write failed; retrying", {
          target,
          error: plainError(e, this.kube.server),
        });
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.kick(), 1000);
      },
      onSettled: () => this.checkIdle(),
    });
    this.changedKeys = state.index.feed();
    this.elector = new LeaseElector(kube, {
      namespace: opts.namespace,
      name: opts.leaseName ?? "vipd-controller",
      identity: opts.identity,
      leaseDurationS: opts.leaseDurationS,
      renewDeadlineMs: opts.renewDeadlineMs,
      retryMs: opts.retryMs,
      now: opts.now,
      onStartedLeading: () => {
        opts.log?.info("controller: became leader", { identity: opts.identity });
        this.reporter.reset();
        this.allocator = undefined;
        this.seen = new Map();
        this.waiting.clear();
        this.told.clear();
        this.releaseTold.clear();
        this.kick();
      },
      onStoppedLeading: () => {
        opts.log?.info("controller: stopped leading", { identity: opts.identity });
        this.allocator = undefined;
      },
      onError: (e) =>
        this.outage.warn("lease", "controller: cannot renew or take the controller Lease", {
          error: plainError(e, kube.server),
        }),
      onRenewed: () => this.outage.ok("lease", "controller: the API server answers again"),
    });
  }

  get isLeader(): boolean {
    return this.elector.isLeader;
  }

  start(): void {
    this.elector.start();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    clearTimeout(this.retryTimer);
    await this.elector.stop();
  }

  /** Something changed in the cluster: reconcile soon (if leading). */
  kick(): void {
    if (!this.elector.isLeader) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), this.opts.debounceMs ?? 20);
  }

  /** Resolves when no reconcile, write or Event is waiting or in progress (for tests and the benchmark). */
  async idle(): Promise<void> {
    for (;;) {
      if (this.running || this.writes.size > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
      await this.events.idle();
      if (!this.running && this.writes.size === 0 && this.events.backlog === 0) return;
    }
  }

  /** Writes and Events not yet sent (waiting or in flight). */
  get backlog(): number {
    return this.writes.size + this.events.backlog;
  }

  private checkIdle(): void {
    if (!this.running && this.writes.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async run(): Promise<void> {
    if (!this.elector.isLeader || !this.state.synced) {
      if (this.elector.isLeader) this.state.waitSynced().then(() => this.kick());
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        const t0 = performance.now();
        const view = this.state.config();
        const t1 = performance.now();
        this.stats.configMs += t1 - t0;
        // Validating thousands of Services leaves their garbage: collected before the
        // allocation adds its own (the first pass over 10k new Services sets RSS's high mark).
        if (t1 - t0 > LONG_PASS_MS) {
          Bun.gc(true);
          this.lastGc = performance.now();
        }
        this.reporter.report(view.rejected);
        if (view.config !== undefined) this.reconcile(view.config, view.problems);
        this.stats.reconcileMs += performance.now() - t1;
        // A long pass (thousands of Services validated and allocated) leaves tens of megabytes of
        // garbage: collecting it now, before the next burst of watch events adds theirs, keeps
        // the heap's high-water mark (and so RSS, which the allocator does not give back) lower.
        const end = performance.now();
        if (end - t0 > LONG_PASS_MS && (end - this.lastGc > GC_SPACING_MS || t1 - t0 > LONG_PASS_MS)) {
          Bun.gc(true);
          this.lastGc = performance.now();
        }
        // Under a burst of changes, pausing half as long as a pass took bounds vipd's CPU use
        // (about two thirds) and lets the changes gather.
        await Bun.sleep(Math.min(1000, (performance.now() - t0) / 2));
      } while (this.again && this.elector.isLeader);
    } finally {
      this.running = false;
      this.checkIdle();
    }
  }

  /**
   * One pass. A full pass (first after taking the lead, or after pools or namespace labels
   * changed) hands every Service to the allocator, which adopts what they hold first. Otherwise
   * only the Services changed since the last pass are looked at (the configuration index names
   * them): those whose resourceVersion changed are allocated, deleted ones released, and —
   * after a release — the ones still waiting for an address retried.
   */
  private reconcile(config: Config, problems: readonly Problem[]): void {
    this.stats.reconciles++;
    const ns = this.namespaceLabels(config);
    const nsLabels = ns.labels;
    const full = this.allocator === undefined || ns.key !== this.crKey;
    if (this.allocator === undefined)
      this.allocator = new Allocator({
        loadBalancerClass: this.opts.loadBalancerClass,
        namespaceLabels: (ns) => nsLabels.get(ns),
      });
    const a = this.allocator;
    if (full) {
      a.setNamespaceLabels((ns) => nsLabels.get(ns));
      const sp = a.setPools(config.pools);
      if (!sp.ok) this.opts.log?.warn("controller: pools refused", { errors: sp.errors });
      this.crKey = ns.key;
    }
    const keys = [...this.changedKeys];
    this.changedKeys.clear();
    let r: { results: readonly AllocResult[]; released: string[] };
    if (full) {
      const invalid = this.invalidServices(problems);
      const services: readonly Svc[] =
        invalid.length === 0 ? config.services : [...config.services, ...invalid];
      const all = a.reconcile(services);
      r = { results: all.results, released: [...all.released] };
      const index = this.state.index;
      this.seen = new Map(services.map((s) => [serviceKey(s), index.generation(serviceKey(s))]));
    } else {
      const released: string[] = [];
      const changed = new Map<string, Svc>();
      for (const key of keys) {
        const s = this.current(key);
        if (s === undefined) {
          if (this.seen.delete(key) && a.release(key)) released.push(key);
          continue;
        }
        const gen = this.state.index.generation(key);
        if (this.seen.get(key) !== gen || !this.asDecided(key, a)) changed.set(key, s);
        this.seen.set(key, gen);
      }
      if (released.length > 0 || this.freed)
        for (const key of this.waiting) {
          const s = changed.has(key) ? undefined : this.current(key);
          if (s !== undefined) changed.set(key, s);
        }
      a.restore([...changed.values()]);
      const results = [...changed]
        .map(([key, s]) => ({ key, s, held: a.assignment(key) ? 0 : 1 }))
        .sort((x, y) => x.held - y.held || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0))
        .map(({ s }) => a.allocate(s));
      r = { results: results.filter((x) => x.ok || !x.notOurs), released };
      for (const x of results) if (!x.ok && x.notOurs) released.push(x.key);
    }
    // Only a Service that held addresses frees some (a waiting one's release is a stale status).
    const freed = r.results.some((x) => x.replaced !== null && !this.waiting.has(x.key));
    for (const res of r.results) {
      if (res.ok) this.waiting.delete(res.key);
      else this.waiting.add(res.key);
    }
    for (const k of r.released) this.waiting.delete(k);
    // A Service that gave up addresses may have made room for one still waiting (MetalLB
    // reprocesses all Services then): retry those in another pass.
    this.freed = freed && this.waiting.size > 0;
    if (this.freed) this.again = true;

    for (const res of r.results) this.writeResult(res);
    for (const key of r.released) this.writeReleased(key);
    this.writePoolStatus(config, a);
  }

  /**
   * True when the Service holds what the allocator decided for it: its status and annotation
   * (vipd's own writes landing) — unchanged otherwise, it need not be allocated again. The
   * writes made from its older version are settled as `writeResult` would.
   */
  private asDecided(key: string, a: Allocator): boolean {
    const obj = this.state.service(key);
    if (obj === undefined) return false;
    const got = a.assignment(key);
    const ann = obj.metadata.annotations?.[ANNOTATION_ALLOCATED_FROM];
    const ips = ingressIps(obj);
    const same =
      got === undefined
        ? ips.length === 0 && ann === undefined
        : ann === got.pool && ips.length === got.ips.length && ips.every((ip, i) => ip === got.ips[i]);
    if (same) {
      const rv = obj.metadata.resourceVersion ?? "";
      this.writes.settle(`status:${key}`, rv);
      this.writes.settle(`meta:${key}`, rv);
    }
    return same;
  }

  /**
   * The Service the allocator sees under `key`: the validated one, or — left out by the
   * configuration layer — the API object of a LoadBalancer Service (see `invalidServices`).
   */
  private current(key: string): Svc | undefined {
    const v = this.state.index.valid(key);
    if (v !== undefined) return v;
    if (!this.state.index.invalid(key)) return undefined;
    const o = this.state.service(key);
    return (o?.spec as { type?: string } | undefined)?.type === "LoadBalancer"
      ? (o as unknown as Svc)
      : undefined;
  }

  /** Namespace labels by name, and the key of pools and labels (a change makes a full pass). */
  private namespaceLabels(config: Config): { labels: Map<string, Record<string, string>>; key: string } {
    const n = this.nsLabels;
    if (n.from === config.namespaces && n.pools === config.pools) return n;
    const labels = new Map(config.namespaces.map((x) => [x.metadata.name, x.metadata.labels ?? {}]));
    this.nsLabels = {
      from: config.namespaces,
      pools: config.pools,
      labels,
      key: JSON.stringify([config.pools, [...labels]]),
    };
    return this.nsLabels;
  }

  /** Writes one allocation result where it differs from the Service: status, annotation, Events. */
  private writeResult(res: AllocResult): void {
    const obj = this.state.service(res.key);
    if (obj === undefined) return;
    this.writes.settle(`status:${res.key}`, obj.metadata.resourceVersion ?? "");
    this.writes.settle(`meta:${res.key}`, obj.metadata.resourceVersion ?? "");
    const ips = res.ok ? [...res.ips] : res.kept ? [...res.kept.ips] : [];
    const pool = res.ok ? res.pool : (res.kept?.pool ?? "");
    const had = ingressIps(obj);
    if (had.join(",") !== ips.join(",")) {
      this.write(
        `status:${res.key}`,
        `${svcPath(res.key)}/status`,
        {
          status: { loadBalancer: { ingress: ips.length > 0 ? ips.map((ip) => ({ ip })) : null } },
        },
        obj,
      );
    }
    const ann = obj.metadata.annotations?.[ANNOTATION_ALLOCATED_FROM];
    if (pool !== "" && ann !== pool)
      this.write(
        `meta:${res.key}`,
        svcPath(res.key),
        { metadata: { annotations: { [ANNOTATION_ALLOCATED_FROM]: pool } } },
        obj,
      );
    else if (pool === "" && ann !== undefined)
      this.write(
        `meta:${res.key}`,
        svcPath(res.key),
        { metadata: { annotations: { [ANNOTATION_ALLOCATED_FROM]: null } } },
        obj,
      );
    this.tell(obj, res);
  }

  /** A Service that lost its assignment: forget it when deleted, else clear what vipd wrote. */
  private writeReleased(key: string): void {
    const obj = this.state.service(key);
    if (obj === undefined) {
      this.events.forget(key);
      this.told.delete(key);
      this.releaseTold.delete(key);
      this.writes.done.delete(`status:${key}`);
      this.writes.done.delete(`meta:${key}`);
      return;
    }
    // The Service still exists but is no longer vipd's (type or class changed): clear what vipd wrote.
    if (ingressIps(obj).length > 0)
      this.write(
        `status:${key}`,
        `${svcPath(key)}/status`,
        { status: { loadBalancer: { ingress: null } } },
        obj,
      );
    if (obj.metadata.annotations?.[ANNOTATION_ALLOCATED_FROM] !== undefined)
      this.write(
        `meta:${key}`,
        svcPath(key),
        { metadata: { annotations: { [ANNOTATION_ALLOCATED_FROM]: null } } },
        obj,
      );
    this.events.emit(
      obj,
      "Normal",
      "IPReleased",
      "Release",
      "Released its load-balancer addresses: the Service is no longer vipd's",
    );
  }

  /** IPAddressPool status counts, as MetalLB writes them. */
  private writePoolStatus(config: Config, a: Allocator): void {
    for (const p of config.pools) {
      const u = a.usage(p.metadata.name);
      if (u === undefined) continue;
      const status = {
        assignedIPv4: Number(u[4].assigned),
        assignedIPv6: Number(u[6].assigned),
        availableIPv4: Number(u[4].available),
        availableIPv6: Number(
          u[6].available > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : u[6].available,
        ),
      };
      const cur = this.state.pool(p.metadata.name);
      if (cur === undefined) continue;
      if (JSON.stringify(cur.status ?? {}) === JSON.stringify(status)) continue;
      const ns = p.metadata.namespace ?? cur.metadata.namespace ?? "default";
      this.write(
        `pool:${ns}/${p.metadata.name}`,
        `${PATHS.metallb("ipaddresspools", ns)}/${p.metadata.name}/status`,
        { status },
        cur,
      );
    }
  }

  /**
   * LoadBalancer Services the configuration layer left out (an address-pool that does not exist,
   * annotations it cannot read): MetalLB converges every Service, so the allocator still sees
   * them — it refuses them with its own reason (an AllocationFailed Event) and releases or keeps
   * what they hold exactly as MetalLB would.
   */
  private invalidServices(problems: readonly Problem[]): Svc[] {
    const out: Svc[] = [];
    const seen = new Set<string>();
    for (const p of problems) {
      if (p.kind !== "Service" || !p.file.startsWith("Service/")) continue;
      const key = p.file.slice("Service/".length);
      if (seen.has(key)) continue;
      seen.add(key);
      const o = this.state.service(key);
      if ((o?.spec as { type?: string } | undefined)?.type === "LoadBalancer") out.push(o as unknown as Svc);
    }
    return out;
  }

  /**
   * The Events for one allocation result, each once per change: IPReleased when the Service
   * gave up addresses (not again for the same release while it holds nothing: a stale status
   * is refused again), IPAllocated when it got new ones, and AllocationFailed and warnings when
   * they differ from what was last told about it.
   */
  private tell(obj: KubeObject, res: AllocResult): void {
    if (res.replaced !== null) {
      const note = `Released IP ${JSON.stringify(res.replaced.from)} of "${res.key}": ${replacedMessage(res.replaced)}`;
      if (this.releaseTold.get(res.key) !== note) {
        this.releaseTold.set(res.key, note);
        this.events.emit(obj, "Normal", "IPReleased", "Release", note);
      }
    }
    if (res.ok) {
      this.releaseTold.delete(res.key);
      if (res.changed)
        this.events.emit(
          obj,
          "Normal",
          "IPAllocated",
          "Allocate",
          `Assigned IP ${JSON.stringify(res.ips)} from pool "${res.pool}"`,
        );
    }
    const state: [reason: string, note: string][] = [];
    if (!res.ok)
      state.push([
        "AllocationFailed",
        `Failed to allocate IP for "${res.key}": ${reasonMessage(res.reason)}`,
      ]);
    for (const w of res.warnings) state.push([w.kind, warningMessage(w)]);
    // Nothing to say is kept as no entry (most Services, after a burst of 10,000).
    const said = state.length === 0 ? undefined : JSON.stringify(state);
    if (this.told.get(res.key) === said) return;
    if (said === undefined) this.told.delete(res.key);
    else this.told.set(res.key, said);
    for (const [reason, note] of state) this.events.emit(obj, "Warning", reason, "Allocate", note);
  }

  /**
   * A merge patch, unless the same one is already waiting or in flight, or was written from this
   * version of the object. Failures retry by reconciling later. Only statuses go at normal
   * priority: the annotation and pool counts wait, as Events do, until no status is waiting for
   * the client's rate limit (a burst of new Services gets its addresses first).
   */
  private write(target: string, path: string, patch: unknown, basis: KubeObject): void {
    const body = JSON.stringify(patch);
    if (this.writes.has(target, body)) return;
    // Written already, and the informer has not seen the result yet: do not write it again.
    const rv = basis.metadata.resourceVersion ?? "";
    const d = this.writes.done.get(target);
    if (d !== undefined && d.body === body && d.basis === rv) return;
    this.stats.writes++;
    this.writes.put(target, path, body, rv, !target.startsWith("status:"));
  }
}
