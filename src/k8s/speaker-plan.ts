/**
 * The speaker's plan, kept current change by change (Kubernetes mode replans on every watch
 * event: at 10,000 Services a full plan per event is most of the work).
 *
 * The rule is the planner's (src/plan/plan.ts, `computePlan`: the reference the tests compare
 * with, element for element); what changes is the cost. A plan is a set of slots and routes:
 * one slot per VIP (its election, its entry on this node or elsewhere), one route per peer and
 * prefix. A slot depends only on the Services that hold its address, a route only on the
 * Services that contribute to it. So when only some Services changed (their object, their
 * status, their local endpoints), the planner runs on those Services and on the ones that share
 * an address or a route with them (indexes: Services by address, by route), and only the slots
 * and routes they touch are replaced; the rest of the plan is kept, object for object. A change
 * of what every Service shares (pools, advertisements, peers, communities, this node, the
 * members, their conditions or declines, the class) replans every Service, with the Planner's
 * own reuse. Either way, an entry whose content did not change keeps its object, and a plan
 * whose content did not change is the same object as before (the applier skips it by identity).
 *
 * Values in, values out: no I/O, no clock.
 */

import type { Config } from "../config/index.ts";
import { ANNOTATION_ALLOCATED_FROM } from "../ipam/request.ts";
import {
  type BgpRoute,
  type ElectionInputs,
  type L2Election,
  type L2Entry,
  type NodeInfo,
  type Plan,
  type PlannedAssignment,
  Planner,
} from "../plan/plan.ts";

type Service = Config["services"][number];

/** What the controller published for one Service: undefined when vipd does not announce it. */
export function assignmentOf(s: Service, cls: string | undefined): PlannedAssignment | undefined {
  if (s.spec.type !== "LoadBalancer" || (s.spec.loadBalancerClass ?? undefined) !== cls) return undefined;
  const ips: string[] = [];
  for (const i of s.status?.loadBalancer?.ingress ?? [])
    if (i.ip !== undefined && i.ip !== "") ips.push(i.ip);
  if (ips.length === 0) return undefined;
  return {
    key: `${s.metadata.namespace ?? "default"}/${s.metadata.name}`,
    pool: s.metadata.annotations?.[ANNOTATION_ALLOCATED_FROM] ?? "",
    ips,
  };
}

export interface SpeakerPlanInput {
  config: Config;
  loadBalancerClass: string | undefined;
  self: NodeInfo;
  members: readonly NodeInfo[];
  inputs: ElectionInputs;
  /**
   * Keys ("ns/name") of the Services whose object or local endpoints changed since the last
   * call; "all" when unknown (then every Service is read again).
   */
  changed: Iterable<string> | "all";
  /** The Service of `config.services` with this key (default: a scan of the list). */
  service?: ((key: string) => Service | undefined) | undefined;
}

export interface SpeakerPlanResult {
  plan: Plan;
  /** Every assignment, sorted by key (the same array while none changed). */
  assignments: readonly PlannedAssignment[];
  assignmentsChanged: boolean;
  /** Every Service was planned again (a shared input changed, or the first call). */
  full: boolean;
  /** Services planned in this call (full: all). */
  planned: number;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const routeId = (r: { peer: string; prefix: string }): string => `${r.peer}|${r.prefix}`;
const byRoute = (x: BgpRoute, y: BgpRoute): number =>
  x.peer === y.peer ? cmp(x.prefix, y.prefix) : cmp(x.peer, y.peer);

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameEntry(a: L2Entry, b: L2Entry): boolean {
  return (
    a.ip === b.ip &&
    a.owner === b.owner &&
    sameStrings(a.interfaces, b.interfaces) &&
    sameStrings(a.services, b.services) &&
    sameStrings(a.candidates, b.candidates)
  );
}

function sameElection(a: L2Election, b: L2Election): boolean {
  if (
    a.ip !== b.ip ||
    a.owner !== b.owner ||
    !sameStrings(a.services, b.services) ||
    !sameStrings(a.candidates, b.candidates)
  )
    return false;
  if (a.notOwner === b.notOwner) return true;
  if (a.notOwner.length !== b.notOwner.length) return false;
  for (let i = 0; i < a.notOwner.length; i++) {
    const x = a.notOwner[i];
    const y = b.notOwner[i];
    if (x?.node !== y?.node || x?.reason !== y?.reason || x?.message !== y?.message) return false;
  }
  return true;
}

function sameRoute(a: BgpRoute, b: BgpRoute): boolean {
  return (
    a.peer === b.peer &&
    a.prefix === b.prefix &&
    a.localPref === b.localPref &&
    sameStrings(a.communities, b.communities) &&
    sameStrings(a.largeCommunities, b.largeCommunities) &&
    sameStrings(a.services, b.services)
  );
}

function sameAssignment(a: PlannedAssignment | undefined, b: PlannedAssignment | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.key === b.key && a.pool === b.pool && sameStrings(a.ips, b.ips);
}

/**
 * `next` with every element equal to the one of `old` with the same key replaced by that one;
 * `old` itself when nothing differs.
 */
function keepEqual<T>(
  old: readonly T[],
  next: T[],
  key: (x: T) => string,
  same: (a: T, b: T) => boolean,
): T[] {
  const was = new Map<string, T>();
  for (const x of old) was.set(key(x), x);
  let changed = old.length !== next.length;
  for (let i = 0; i < next.length; i++) {
    const x = next[i] as T;
    const o = was.get(key(x));
    if (o !== undefined && (o === x || same(o, x))) next[i] = o;
    if (next[i] !== old[i]) changed = true;
  }
  return changed ? next : (old as T[]);
}

/**
 * `old` (sorted by `order`) with the items of the keys in `updates` replaced: by the update's
 * item (an equal old one is kept), or removed (undefined). `old` itself when nothing differs.
 */
function patch<T>(
  old: readonly T[],
  updates: ReadonlyMap<string, T | undefined>,
  key: (x: T) => string,
  same: (a: T, b: T) => boolean,
  order: (a: T, b: T) => number,
): T[] {
  if (updates.size === 0) return old as T[];
  const added: T[] = [];
  let changed = false;
  const kept: T[] = [];
  const seen = new Set<string>();
  for (const x of old) {
    const k = key(x);
    if (!updates.has(k)) {
      kept.push(x);
      continue;
    }
    seen.add(k);
    const u = updates.get(k);
    if (u !== undefined && same(x, u)) added.push(x);
    else {
      changed = true;
      if (u !== undefined) added.push(u);
    }
  }
  for (const [k, u] of updates)
    if (!seen.has(k) && u !== undefined) {
      added.push(u);
      changed = true;
    }
  if (!changed) return old as T[];
  added.sort(order);
  const out: T[] = new Array(kept.length + added.length);
  let i = 0;
  let j = 0;
  let n = 0;
  while (i < kept.length && j < added.length)
    out[n++] = order(kept[i] as T, added[j] as T) <= 0 ? (kept[i++] as T) : (added[j++] as T);
  while (i < kept.length) out[n++] = kept[i++] as T;
  while (j < added.length) out[n++] = added[j++] as T;
  return out;
}

function addTo(m: Map<string, Set<string>>, k: string, v: string): void {
  let s = m.get(k);
  if (s === undefined) {
    s = new Set();
    m.set(k, s);
  }
  s.add(v);
}

function removeFrom(m: Map<string, Set<string>>, k: string, v: string): void {
  const s = m.get(k);
  if (s?.delete(v) === true && s.size === 0) m.delete(k);
}

/** A change of more Services than this share of all replans every Service (cheaper than by parts). */
const FULL_SHARE = 0.25;

export class SpeakerPlanner {
  /** Every Service vipd announces, by key, and their assignments sorted by key. */
  private readonly services = new Map<string, { svc: Service; a: PlannedAssignment }>();
  private sorted: PlannedAssignment[] = [];
  /** Per address, the Services that hold it; per route (peer|prefix), the Services in it. */
  private readonly holders = new Map<string, Set<string>>();
  private readonly inRoute = new Map<string, Set<string>>();
  /** Per Service, the routes it is in. */
  private readonly routesOf = new Map<string, string[]>();
  private context: unknown[] = [];
  private last: Plan | undefined;
  /** The Planner of full plans (its own reuse across calls), and the one of parts. */
  private readonly whole = new Planner();
  private readonly part = new Planner();

  /** The assignment of a Service vipd announces. */
  assignment(key: string): PlannedAssignment | undefined {
    return this.services.get(key)?.a;
  }

  plan(x: SpeakerPlanInput): SpeakerPlanResult {
    const c = x.config;
    const declines = x.inputs.declines === undefined ? undefined : [...x.inputs.declines];
    const context: unknown[] = [
      c.pools,
      c.l2Advertisements,
      c.bgpAdvertisements,
      c.peers,
      c.communities,
      x.inputs.localEndpoints === undefined,
      JSON.stringify([
        x.loadBalancerClass ?? null,
        x.self,
        x.members,
        x.inputs.known ?? null,
        x.inputs.notReady === undefined ? null : [...x.inputs.notReady],
        x.inputs.networkUnavailable === undefined ? null : [...x.inputs.networkUnavailable],
        declines ?? null,
      ]),
    ];
    const sameContext =
      this.last !== undefined &&
      context.length === this.context.length &&
      context.every((v, i) => v === this.context[i]);
    this.context = context;
    if (!sameContext || x.changed === "all") return this.full(x);
    const keys = new Set(x.changed);
    if (keys.size === 0) return this.result(this.last as Plan, false, false, 0);
    if (keys.size > FULL_SHARE * Math.max(this.services.size, 64)) return this.full(x);
    return this.partial(x, keys);
  }

  private result(plan: Plan, changed: boolean, full: boolean, planned: number): SpeakerPlanResult {
    this.last = plan;
    return { plan, assignments: this.sorted, assignmentsChanged: changed, full, planned };
  }

  /** Every Service planned again (the Planner reuses what it can). */
  private full(x: SpeakerPlanInput): SpeakerPlanResult {
    const before = this.sorted;
    const all: PlannedAssignment[] = [];
    this.services.clear();
    for (const s of x.config.services) {
      const a = assignmentOf(s, x.loadBalancerClass);
      if (a === undefined || this.services.has(a.key)) continue;
      this.services.set(a.key, { svc: s, a });
      all.push(a);
    }
    all.sort((p, q) => cmp(p.key, q.key));
    // The same assignments: the same array (the Planner and the events see nothing new).
    let changed = all.length !== before.length;
    for (let i = 0; !changed && i < all.length; i++)
      changed = !sameAssignment(all[i], before[i] as PlannedAssignment);
    if (changed) this.sorted = all;
    else
      for (const a of before) {
        const e = this.services.get(a.key);
        if (e !== undefined) e.a = a;
      }
    const p = this.whole.plan(x.config, this.sorted, x.self, x.members, x.inputs);
    this.holders.clear();
    for (const a of this.sorted) for (const ip of a.ips) addTo(this.holders, ip, a.key);
    this.inRoute.clear();
    this.routesOf.clear();
    for (const r of p.routes) {
      const id = routeId(r);
      for (const k of r.services) {
        addTo(this.inRoute, id, k);
        const l = this.routesOf.get(k);
        if (l === undefined) this.routesOf.set(k, [id]);
        else l.push(id);
      }
    }
    const old = this.last;
    const plan =
      old === undefined
        ? p
        : this.assemble(old, {
            node: p.node,
            peers: p.peers,
            l2: keepEqual(old.l2, p.l2, (e) => e.ip, sameEntry),
            l2Elsewhere: keepEqual(old.l2Elsewhere, p.l2Elsewhere, (e) => e.ip, sameEntry),
            elections: keepEqual(old.elections ?? [], p.elections ?? [], (e) => e.ip, sameElection),
            routes: keepEqual(old.routes, p.routes, routeId, sameRoute),
          });
    return this.result(plan, changed, true, this.sorted.length);
  }

  /** The previous plan when every part is the same; otherwise a new one of these parts. */
  private assemble(
    old: Plan,
    n: Pick<Plan, "node" | "peers" | "l2" | "l2Elsewhere" | "routes"> & { elections: L2Election[] },
  ): Plan {
    if (
      n.node === old.node &&
      sameStrings(n.peers, old.peers) &&
      n.l2 === old.l2 &&
      n.l2Elsewhere === old.l2Elsewhere &&
      n.elections === old.elections &&
      n.routes === old.routes &&
      old.holdL2 === false
    )
      return old;
    return {
      node: n.node,
      l2: n.l2,
      l2Elsewhere: n.l2Elsewhere,
      peers: sameStrings(n.peers, old.peers) ? old.peers : n.peers,
      holdL2: false,
      elections: n.elections,
      routes: n.routes,
    };
  }

  /** The plan of these Services alone (a configuration holding only them). */
  private planOf(x: SpeakerPlanInput, keys: Iterable<string>): Plan {
    const svcs: Service[] = [];
    const as: PlannedAssignment[] = [];
    for (const k of keys) {
      const e = this.services.get(k);
      if (e === undefined) continue;
      svcs.push(e.svc);
      as.push(e.a);
    }
    as.sort((p, q) => cmp(p.key, q.key));
    const c = x.config;
    const config: Config = {
      pools: c.pools,
      l2Advertisements: c.l2Advertisements,
      bgpAdvertisements: c.bgpAdvertisements,
      peers: c.peers,
      bfdProfiles: c.bfdProfiles,
      communities: c.communities,
      services: svcs,
      namespaces: c.namespaces,
      nodeSettings: c.nodeSettings,
    };
    return this.part.plan(config, as, x.self, x.members, x.inputs);
  }

  /** Only these Services changed: they and the Services sharing an address or a route with them. */
  private partial(x: SpeakerPlanInput, keys: ReadonlySet<string>): SpeakerPlanResult {
    const lookup =
      x.service ??
      ((): ((k: string) => Service | undefined) => {
        const m = new Map<string, Service>();
        for (const s of x.config.services) {
          const k = `${s.metadata.namespace ?? "default"}/${s.metadata.name}`;
          if (!m.has(k)) m.set(k, s);
        }
        return (k) => m.get(k);
      })();
    const ips = new Set<string>();
    const routes = new Set<string>();
    let changed = false;
    for (const k of keys) {
      const had = this.services.get(k);
      const svc = lookup(k);
      const a = svc === undefined ? undefined : assignmentOf(svc, x.loadBalancerClass);
      if (!sameAssignment(had?.a, a)) changed = true;
      if (had !== undefined) {
        for (const ip of had.a.ips) {
          ips.add(ip);
          removeFrom(this.holders, ip, k);
        }
        for (const id of this.routesOf.get(k) ?? []) routes.add(id);
      }
      if (svc === undefined || a === undefined) this.services.delete(k);
      else {
        // An unchanged assignment keeps its object (the Planner compares by content anyway).
        this.services.set(k, { svc, a: had !== undefined && sameAssignment(had.a, a) ? had.a : a });
        for (const ip of a.ips) {
          ips.add(ip);
          addTo(this.holders, ip, k);
        }
      }
    }
    if (changed) this.sorted = this.resort(keys);
    // Nothing held before or now: nothing to plan.
    if (ips.size === 0 && routes.size === 0 && ![...keys].some((k) => this.services.has(k)))
      return this.result(this.last as Plan, changed, false, 0);
    // The routes the changed Services are in now (the plan of them alone names them).
    const own = this.planOf(x, keys);
    for (const r of own.routes) routes.add(routeId(r));
    const group = new Set<string>(keys);
    for (const ip of ips) for (const k of this.holders.get(ip) ?? []) group.add(k);
    for (const id of routes) for (const k of this.inRoute.get(id) ?? []) group.add(k);
    const p = group.size === keys.size ? own : this.planOf(x, group);

    const l2 = new Map<string, L2Entry | undefined>();
    const l2Elsewhere = new Map<string, L2Entry | undefined>();
    const elections = new Map<string, L2Election | undefined>();
    for (const ip of ips) {
      l2.set(ip, undefined);
      l2Elsewhere.set(ip, undefined);
      elections.set(ip, undefined);
    }
    for (const e of p.l2) if (ips.has(e.ip)) l2.set(e.ip, e);
    for (const e of p.l2Elsewhere) if (ips.has(e.ip)) l2Elsewhere.set(e.ip, e);
    for (const e of p.elections ?? []) if (ips.has(e.ip)) elections.set(e.ip, e);
    const newRoutes = new Map<string, BgpRoute | undefined>();
    for (const id of routes) newRoutes.set(id, undefined);
    for (const r of p.routes) {
      const id = routeId(r);
      if (routes.has(id)) newRoutes.set(id, r);
    }
    // The route index follows: the changed Services' routes, and who is in each touched route.
    for (const k of keys) this.routesOf.delete(k);
    for (const [id, r] of newRoutes) {
      if (r === undefined) this.inRoute.delete(id);
      else this.inRoute.set(id, new Set(r.services));
      for (const k of r?.services ?? [])
        if (keys.has(k)) {
          const l = this.routesOf.get(k);
          if (l === undefined) this.routesOf.set(k, [id]);
          else l.push(id);
        }
    }
    const old = this.last as Plan;
    const plan = this.assemble(old, {
      node: old.node,
      peers: old.peers,
      l2: patch(
        old.l2,
        l2,
        (e) => e.ip,
        sameEntry,
        (a, b) => cmp(a.ip, b.ip),
      ),
      l2Elsewhere: patch(
        old.l2Elsewhere,
        l2Elsewhere,
        (e) => e.ip,
        sameEntry,
        (a, b) => cmp(a.ip, b.ip),
      ),
      elections: patch(
        old.elections ?? [],
        elections,
        (e) => e.ip,
        sameElection,
        (a, b) => cmp(a.ip, b.ip),
      ),
      routes: patch(old.routes, newRoutes, routeId, sameRoute, byRoute),
    });
    return this.result(plan, changed, false, group.size);
  }

  /** The sorted assignments after these keys changed (the others kept in place). */
  private resort(keys: ReadonlySet<string>): PlannedAssignment[] {
    const kept = this.sorted.filter((a) => !keys.has(a.key));
    const added: PlannedAssignment[] = [];
    for (const k of keys) {
      const e = this.services.get(k);
      if (e !== undefined) added.push(e.a);
    }
    added.sort((p, q) => cmp(p.key, q.key));
    const out: PlannedAssignment[] = [];
    let j = 0;
    for (const a of kept) {
      while (j < added.length && cmp((added[j] as PlannedAssignment).key, a.key) < 0)
        out.push(added[j++] as PlannedAssignment);
      out.push(a);
    }
    while (j < added.length) out.push(added[j++] as PlannedAssignment);
    return out;
  }
}
