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
import { Allocator } from "../ipam/allocator.ts";
import { reasonMessage, replacedMessage, warningMessage } from "../ipam/reasons.ts";
import type { PlannedAssignment } from "./plan.ts";

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

export function allocate(
  config: Config,
  prev: AllocationState,
  held: Readonly<Record<string, readonly string[] | Held>> = {},
): AllocationState {
  const cls = config.nodeSettings?.spec.loadBalancerClass;
  const nsLabels = new Map(config.namespaces.map((n) => [n.metadata.name, n.metadata.labels ?? {}]));
  const allocator =
    prev.allocator ?? new Allocator({ loadBalancerClass: cls, namespaceLabels: (ns) => nsLabels.get(ns) });
  const events: AllocationEvent[] = [];
  // Unchanged pools and namespaces leave every assignment as valid as it was: no re-check.
  const inputs = {
    pools: JSON.stringify(config.pools.map((p) => [p.metadata.name, p.metadata.labels, p.spec])),
    namespaces: JSON.stringify(config.namespaces.map((n) => [n.metadata.name, n.metadata.labels])),
  };
  if (prev.allocator === undefined || prev.inputs?.namespaces !== inputs.namespaces)
    allocator.setNamespaceLabels((ns) => nsLabels.get(ns));
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

  const views: ServiceView[] = [];
  for (const res of r.results) {
    const [namespace, name] = res.key.split("/") as [string, string];
    const warnings = res.warnings.map(warningMessage);
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
  for (const key of r.released)
    events.push({ service: key, reason: "IPReleased", message: "released its addresses" });
  const counts = { ...prev.counts };
  for (const e of events) if (e.reason !== "Warning") counts[e.reason]++;

  const assignments: PlannedAssignment[] = allocator
    .assignments()
    .map((a) => ({ key: a.key, pool: a.pool, ips: [...a.ips] }));

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
  return { allocator, assignments, services: views, pools, metrics, events, counts, inputs };
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
