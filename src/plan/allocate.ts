/**
 * Runs the allocator over a validated config and shapes its results for the planner (who holds
 * which IPs), the API (per-Service results, per-pool usage), the log and the metrics. The
 * Allocator instance is kept across reloads so that assignments are stable; `held` (what
 * Services held before a restart, from the state file) is adopted before anything new is
 * allocated — when still valid. As in MetalLB, an address the configuration no longer allows
 * (pool deleted or shrunk, avoidBuggyIPs, serviceAllocation, sharing, request) is released and
 * the Service re-addressed or left without one: an `IPReleased` event with the reason, then
 * `IPAllocated` or `AllocationFailed`, each logged and counted (vipd_allocation_events_total).
 */

import type { MetricFamily, PoolView, ServiceView } from "../api/runtime.ts";
import type { Config } from "../config/index.ts";
import { Allocator, type AllocResult } from "../ipam/allocator.ts";
import { reasonMessage, replacedMessage, warningMessage } from "../ipam/reasons.ts";
import { ownershipRefusal } from "../ipam/request.ts";
import type { PlannedAssignment } from "./plan.ts";
import { keyOfService } from "./plan-index.ts";

export interface AllocationEvent {
  service: string;
  reason: "IPAllocated" | "AllocationFailed" | "IPReleased" | "Warning";
  message: string;
}

export interface AllocationState {
  allocator: Allocator | undefined;
  assignments: PlannedAssignment[];
  services: ServiceView[];
  pools: PoolView[];
  metrics: MetricFamily[];
  /** What changed in the last run, for logs. */
  events: AllocationEvent[];
  /** Events of every run so far, by reason (Warning excluded). */
  counts: Record<"IPAllocated" | "AllocationFailed" | "IPReleased", number>;
  /** The pools and namespace labels the allocator last had, as text (unchanged: not re-checked). */
  inputs?: { pools: string; namespaces: string } | undefined;
  /** The Services of the last run by key, to tell which changed (see `allocate`). */
  given?: ReadonlyMap<string, Config["services"][number]> | undefined;
  /** Services whose view tells what they gave up in the last run (said once: re-run next time). */
  replaced?: readonly string[] | undefined;
  /** The loadBalancerClass the allocator was made with (null: classless Services). */
  cls?: string | null | undefined;
  /**
   * `services` by key (each view under its Service's key), kept across incremental runs: the
   * next run updates it in place rather than making 10,000 keys again.
   */
  viewByKey?: Map<string, ServiceView> | undefined;
}

export function emptyAllocation(): AllocationState {
  return {
    allocator: undefined,
    assignments: [],
    services: [],
    pools: [],
    metrics: [],
    events: [],
    counts: { IPAllocated: 0, AllocationFailed: 0, IPReleased: 0 },
  };
}

/** Assignments as `{ "ns/name": ["ip", ...] }`. */
export function heldMap(s: AllocationState): Record<string, string[]> {
  return Object.fromEntries(s.assignments.map((a) => [a.key, [...a.ips]]));
}

/** What a Service held before a restart: its addresses, and the pool they came from. */
export interface Held {
  ips: readonly string[];
  pool?: string | undefined;
}

/** Assignments as `{ "ns/name": { ips, pool } }`, for the state file. */
export function heldState(s: AllocationState): Record<string, { ips: string[]; pool: string }> {
  return Object.fromEntries(s.assignments.map((a) => [a.key, { ips: [...a.ips], pool: a.pool }]));
}

/** Deep equality of plain data (what the validator produced: objects, arrays, scalars). */
export function samePlain(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!samePlain(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka)
    if (!samePlain((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  return true;
}

type Service = Config["services"][number];

/**
 * The namespaces' labels by name, for the allocator (which keeps the function). Made here, not
 * inside `allocate`: a closure there would keep that run's whole scope (its views, held table,
 * maps of 10,000 entries) for as long as the allocator lives.
 */
function namespaceLabels(config: Config): (ns: string) => Record<string, string> | undefined {
  const labels = new Map(config.namespaces.map((n) => [n.metadata.name, n.metadata.labels ?? {}]));
  return (ns) => labels.get(ns);
}

/** A Service's key: the planner index's string for it (one string per Service, not two). */
const keyOf = (s: Service): string => keyOfService(s);
/**
 * The allocator's (handed this configuration's Services, or copies with a status). A module
 * function: a closure made in `allocate` would keep that run's scope (see namespaceLabels).
 */
const allocatorKey = (s: object): string => keyOfService(s as Service);

/**
 * Runs the allocator over the configuration's Services. Proportional to what changed when it
 * can be: with the same pools and namespaces as the last run, no Service left without an address
 * and no PreferDualStack Service (which may gain its second family whenever an address is
 * freed), the Services that did not change keep their results, and only the added, changed and
 * removed ones go through the allocator, in the order a full reconcile takes them — the same
 * assignments, views, events (warnings only for the Services that changed) and counts.
 * `opts.full` forces the full reconcile (tests compare the two). `opts.changed` (a file reload's
 * delta, src/appliance/config-delta.ts) names every Service that may differ from the last run's,
 * by key (undefined: removed): the others are not compared, and their keys not made again.
 */
export function allocate(
  config: Config,
  prev: AllocationState,
  held: Readonly<Record<string, readonly string[] | Held>> = {},
  opts: { full?: boolean; changed?: ReadonlyMap<string, Service | undefined> | undefined } = {},
): AllocationState {
  const cls = config.nodeSettings?.spec.loadBalancerClass;
  const allocator =
    prev.allocator ??
    new Allocator({
      loadBalancerClass: cls,
      namespaceLabels: namespaceLabels(config),
      keyOf: allocatorKey,
    });
  // Unchanged pools and namespaces leave every assignment as valid as it was: no re-check.
  const inputs = {
    pools: JSON.stringify(config.pools.map((p) => [p.metadata.name, p.metadata.labels, p.spec])),
    namespaces: JSON.stringify(config.namespaces.map((n) => [n.metadata.name, n.metadata.labels])),
  };
  const hinted = opts.changed !== undefined && prev.given !== undefined && opts.full !== true;
  // With a hint, the last run's map is updated in place (`prev` is consumed: its allocator is too).
  const given = hinted ? (prev.given as Map<string, Service>) : new Map<string, Service>();
  // What the hinted keys were before (the map the last run left is changed here).
  const was = new Map<string, Service | undefined>();
  if (hinted)
    for (const [k, s] of opts.changed as ReadonlyMap<string, Service | undefined>) {
      if (!was.has(k)) was.set(k, given.get(k));
      if (s === undefined) given.delete(k);
      else given.set(k, s);
    }
  else for (const s of config.services) given.set(keyOf(s), s);
  const same =
    prev.allocator !== undefined &&
    prev.given !== undefined &&
    prev.cls !== undefined &&
    prev.inputs?.pools === inputs.pools &&
    prev.inputs?.namespaces === inputs.namespaces &&
    Object.keys(held).length === 0;
  if (same && opts.full !== true) {
    const r = allocateChanged(
      config,
      prev,
      allocator,
      given,
      hinted ? { keys: opts.changed as ReadonlyMap<string, Service | undefined>, was } : undefined,
    );
    if (r !== undefined) return { ...r, inputs, given, cls: prev.cls };
  }
  if (prev.allocator === undefined || prev.inputs?.namespaces !== inputs.namespaces)
    allocator.setNamespaceLabels(namespaceLabels(config));
  // What the new pools no longer allow is released here and reported per Service below.
  if (prev.allocator === undefined || prev.inputs?.pools !== inputs.pools) allocator.setPools(config.pools);

  // Services in manifests rarely carry a status; what they held before a restart comes from
  // the state file and is adopted first (when still valid), so a restart never re-addresses a
  // valid assignment.
  const services = config.services.map((s) => {
    const key = `${s.metadata.namespace ?? "default"}/${s.metadata.name}`;
    const h = held[key];
    if (h === undefined || (s.status?.loadBalancer?.ingress ?? []).length > 0) return s;
    const ips = "ips" in h ? h.ips : h;
    return { ...s, status: { ...s.status, loadBalancer: { ingress: ips.map((ip) => ({ ip })) } } };
  });
  const before = new Map((prev.assignments ?? []).map((a) => [a.key, a.ips.join(",")]));
  const r = allocator.reconcile(services);
  const events: AllocationEvent[] = [];
  const views = viewsOf(r.results, before, events);
  // One view per result, in order: each under its result's key.
  const viewByKey = new Map<string, ServiceView>();
  r.results.forEach((res, i) => {
    viewByKey.set(res.key, views[i] as ServiceView);
  });
  for (const key of r.released)
    events.push({ service: key, reason: "IPReleased", message: "released its addresses" });

  // The same addresses as the views' (one array for both, not two copies per Service).
  const shown = new Map<string, string[]>();
  for (const v of views) if (v.reason === undefined) shown.set(`${v.namespace}/${v.name}`, v.ips);
  const assignments: PlannedAssignment[] = allocator.assignments().map((a) => {
    const v = shown.get(a.key);
    const same = v !== undefined && v.length === a.ips.length && v.every((ip, i) => ip === a.ips[i]);
    return { key: a.key, pool: a.pool, ips: same ? v : a.ips };
  });
  const made = prev.allocator === undefined ? (cls ?? null) : prev.cls;
  return {
    ...finish(config, allocator, prev, { assignments, views, events }),
    inputs,
    given,
    cls: made,
    viewByKey,
  };
}

/** The views' `warnings` when there are none: one array for all (views are never changed). */
const NO_WARNINGS: string[] = [];

/** The API's views of allocation results, and their events (appended to `events`). */
function viewsOf(
  results: readonly AllocResult[],
  before: ReadonlyMap<string, string>,
  events: AllocationEvent[],
): ServiceView[] {
  const views: ServiceView[] = [];
  // One string per namespace, not one per Service (10,000 Services in 20 namespaces).
  const namespaces = new Map<string, string>();
  for (const res of results) {
    const slash = res.key.indexOf("/");
    const ns = res.key.slice(0, slash);
    let namespace = namespaces.get(ns);
    if (namespace === undefined) {
      namespace = ns;
      namespaces.set(ns, ns);
    }
    const name = res.key.slice(slash + 1);
    const warnings =
      res.warnings.length === 0 && res.replaced === null ? NO_WARNINGS : res.warnings.map(warningMessage);
    if (res.replaced !== null) {
      const message = replacedMessage(res.replaced);
      events.push({ service: res.key, reason: "IPReleased", message });
      warnings.unshift(message);
    }
    if (res.ok) {
      views.push({ namespace, name, ips: [...res.ips], pool: res.pool, warnings });
      if (before.get(res.key) !== res.ips.join(","))
        events.push({
          service: res.key,
          reason: "IPAllocated",
          message: `assigned ${res.ips.join(", ")} from pool "${res.pool}"`,
        });
    } else {
      const kept = res.kept;
      views.push({
        namespace,
        name,
        ips: kept ? [...kept.ips] : [],
        ...(kept ? { pool: kept.pool } : {}),
        reason: reasonMessage(res.reason),
        warnings,
      });
      events.push({ service: res.key, reason: "AllocationFailed", message: reasonMessage(res.reason) });
    }
    for (const w of res.warnings)
      events.push({ service: res.key, reason: "Warning", message: warningMessage(w) });
  }
  return views;
}

/**
 * The incremental run (see `allocate`): undefined when it cannot give what a full reconcile
 * gives (a Service without an address, a PreferDualStack Service, most Services changed).
 */
function allocateChanged(
  config: Config,
  prev: AllocationState,
  allocator: Allocator,
  given: ReadonlyMap<string, Service>,
  hint:
    | { keys: ReadonlyMap<string, Service | undefined>; was: ReadonlyMap<string, Service | undefined> }
    | undefined,
): Omit<AllocationState, "inputs" | "given" | "cls"> | undefined {
  const last = prev.given as ReadonlyMap<string, Service>;
  if (prev.services.some((v) => v.ips.length === 0 || v.reason !== undefined)) return undefined;
  const changed: [string, Service][] = [];
  const again = new Set(prev.replaced ?? []);
  for (const s of given.values()) if (s.spec.ipFamilyPolicy === "PreferDualStack") return undefined;
  const removed: string[] = [];
  if (hint !== undefined) {
    // Only the Services the hint names (and those to re-run) can differ from the last run.
    const candidates = new Set([...hint.keys.keys(), ...again]);
    for (const key of candidates) {
      const s = given.get(key);
      const was = hint.was.has(key) ? hint.was.get(key) : last.get(key);
      if (s === undefined) {
        if (was !== undefined) removed.push(key);
      } else if (was === undefined || again.has(key) || !samePlain(was, s)) changed.push([key, s]);
    }
    // In the order a scan of the Services would find them (the allocation order does not depend
    // on it, but the events list does).
    if (changed.length > 1) {
      const at = new Map<string, number>();
      config.services.forEach((s, i) => {
        at.set(keyOf(s), i);
      });
      changed.sort((a, b) => (at.get(a[0]) ?? 0) - (at.get(b[0]) ?? 0));
    }
  } else {
    for (const [key, s] of given) {
      const was = last.get(key);
      if (was === undefined || again.has(key) || !samePlain(was, s)) changed.push([key, s]);
    }
    for (const key of last.keys()) if (!given.has(key)) removed.push(key);
  }
  if (changed.length + removed.length > Math.max(64, given.size / 4)) return undefined;
  const cls = prev.cls ?? null;
  // As reconcile: release what is gone or no longer vipd's, adopt statuses, then allocate the
  // rest, Services already holding addresses first, each group by key.
  const ours = changed.filter(([, s]) => ownershipRefusal(s, cls) === null);
  const gone = [...removed, ...changed.filter(([, s]) => ownershipRefusal(s, cls) !== null).map(([k]) => k)];
  const released = gone.filter((k) => allocator.assignment(k) !== undefined).sort();
  for (const k of gone) allocator.release(k);
  allocator.restore(ours.map(([, s]) => s));
  const order = ours
    .map(([key, s]) => ({ key, s, held: allocator.assignment(key) !== undefined ? 0 : 1 }))
    .sort((a, b) => a.held - b.held || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const heldBefore = new Set(order.filter((o) => o.held === 0).map((o) => o.key));
  const results = order.map(({ s }) => allocator.allocate(s));
  // What the changed Services held before (the others are not asked for): one walk, no text per
  // assignment of 10,000.
  const want = new Set(ours.map(([k]) => k));
  const before = new Map<string, string>();
  if (want.size > 0)
    for (const a of prev.assignments) if (want.has(a.key)) before.set(a.key, a.ips.join(","));
  const events: AllocationEvent[] = [];
  const fresh = viewsOf(results, before, events);
  for (const key of released)
    events.push({ service: key, reason: "IPReleased", message: "released its addresses" });

  // The views in a full reconcile's order: Services that held addresses, by key, then the rest.
  const touched = new Map(fresh.map((v) => [`${v.namespace}/${v.name}`, v]));
  const dropped = new Set(gone);
  // The last run's views by key (kept from the last run: updated in place below).
  let lastView = prev.viewByKey;
  if (lastView === undefined || lastView.size !== prev.services.length) {
    lastView = new Map<string, ServiceView>();
    for (const v of prev.services) lastView.set(`${v.namespace}/${v.name}`, v);
  }
  const views: ServiceView[] = [];
  const heldKeys: string[] = [];
  for (const a of prev.assignments) if (!dropped.has(a.key) && given.has(a.key)) heldKeys.push(a.key);
  for (const k of heldBefore) if (!lastView.has(k)) heldKeys.push(k);
  if (heldKeys.length > prev.assignments.length) heldKeys.sort();
  for (const k of heldKeys) {
    const v = touched.get(k) ?? lastView.get(k);
    if (v !== undefined) views.push(v);
  }
  for (const o of order) if (o.held === 1) views.push(touched.get(o.key) as ServiceView);

  // Assignments by key: the last run's, with the changed ones replaced, added or left out.
  const changedKeys = new Set([...gone, ...ours.map(([k]) => k)]);
  const assignments: PlannedAssignment[] = [];
  const added = ours
    .map(([k]) => k)
    .filter((k) => !before.has(k))
    .sort();
  let j = 0;
  const put = (key: string) => {
    const a = allocator.assignment(key);
    if (a !== undefined) assignments.push({ key, pool: a.pool, ips: [...a.ips] });
  };
  for (const a of prev.assignments) {
    while (j < added.length && (added[j] as string) < a.key) put(added[j++] as string);
    if (!changedKeys.has(a.key)) assignments.push(a);
    else put(a.key);
  }
  while (j < added.length) put(added[j++] as string);
  // The views by key: the last run's with the dropped ones out and the touched ones in; every
  // view here is the last run's under its key or a touched one, so when the sizes agree the map
  // is exactly this run's views (else it is made again).
  for (const k of dropped) lastView.delete(k);
  for (const [k, v] of touched) lastView.set(k, v);
  let viewByKey = lastView;
  if (viewByKey.size !== views.length) {
    viewByKey = new Map();
    for (const v of views) viewByKey.set(`${v.namespace}/${v.name}`, v);
  }
  return { ...finish(config, allocator, prev, { assignments, views, events }), viewByKey };
}

/** Pool usage, metrics and counts of a run. */
function finish(
  config: Config,
  allocator: Allocator,
  prev: AllocationState,
  run: { assignments: PlannedAssignment[]; views: ServiceView[]; events: AllocationEvent[] },
): Omit<AllocationState, "inputs" | "given" | "cls"> {
  const { assignments, views, events } = run;
  const replaced = events.filter((e) => e.reason === "IPReleased").map((e) => e.service);
  const counts = { ...prev.counts };
  for (const e of events) if (e.reason !== "Warning") counts[e.reason]++;

  const pools: PoolView[] = config.pools.map((p) => {
    const u = allocator.usage(p.metadata.name);
    const families: PoolView["families"] = [];
    if (u) {
      for (const [fam, label] of [
        [4, "IPv4"],
        [6, "IPv6"],
      ] as const) {
        const f = u[fam];
        if (f.capacity > 0n || f.assigned > 0n)
          families.push({
            family: label,
            assigned: f.assigned.toString(),
            available: f.available.toString(),
          });
      }
    }
    return { name: p.metadata.name, autoAssign: p.spec.autoAssign, families };
  });

  // Pool usage gauges are exported by the API from pools(); this adds what it cannot see.
  const metrics: MetricFamily[] = [
    {
      name: "vipd_services_unassigned",
      help: "LoadBalancer Services vipd handles that have no address",
      type: "gauge",
      samples: [{ value: views.filter((v) => v.ips.length === 0).length }],
    },
    {
      name: "vipd_allocation_events_total",
      help: "Allocation events since start: IPAllocated, AllocationFailed, IPReleased (re-addressed, lost or deleted)",
      type: "counter",
      samples: (["IPAllocated", "AllocationFailed", "IPReleased"] as const).map((reason) => ({
        labels: { reason },
        value: counts[reason],
      })),
    },
  ];
  return { allocator, assignments, services: views, pools, metrics, events, counts, replaced };
}

/** Where allocation events are logged (a Logger). */
export interface EventLog {
  info(message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
}

/**
 * Logs what the last allocation run changed. Up to `detail` events (Warning included) are logged
 * one per line at info, as they come; more (a start with thousands of Services) are summarised
 * at info, one line per pool with the count of each event, the Services' own lines at debug.
 */
export function logAllocation(log: EventLog, s: AllocationState, detail = 20): void {
  if (s.events.length <= detail) {
    for (const e of s.events) log.info(e.message, { service: e.service, event: e.reason });
    return;
  }
  const poolOf = new Map(s.services.map((v) => [`${v.namespace}/${v.name}`, v.pool]));
  const perPool = new Map<string, Record<AllocationEvent["reason"], number>>();
  for (const e of s.events) {
    log.debug(e.message, { service: e.service, event: e.reason });
    const pool = poolOf.get(e.service) ?? "";
    let c = perPool.get(pool);
    if (c === undefined) {
      c = { IPAllocated: 0, AllocationFailed: 0, IPReleased: 0, Warning: 0 };
      perPool.set(pool, c);
    }
    c[e.reason]++;
  }
  for (const [pool, c] of [...perPool].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    log.info("allocation summary", {
      pool: pool === "" ? null : pool,
      allocated: c.IPAllocated,
      failed: c.AllocationFailed,
      released: c.IPReleased,
      warnings: c.Warning,
      detail: "per-Service lines at debug level (VIPD_LOG_LEVEL=debug)",
    });
}
