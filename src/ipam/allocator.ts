/**
 * The allocator: which external IPs each LoadBalancer Service gets. MetalLB-compatible semantics
 * (its `internal/allocator` and controller `service.go` `convergeBalancer` are the reference):
 *
 * - explicit requests (spec.loadBalancerIP, metallb.io/loadBalancerIPs) are honoured or refused
 *   with a reason, never substituted; metallb.io/address-pool pins the pool;
 * - otherwise the lowest address the Service may use, trying pools in order (serviceAllocation
 *   pools that serve the Service by priority first, then pools without serviceAllocation, ties
 *   by name); autoAssign: false pools, and pools whose serviceAllocation names no namespace and
 *   no selector, only on request;
 * - dual-stack takes both families from one pool; PreferDualStack settles for one family and
 *   later adds the other from the same pool when it can;
 * - stability: an assignment (or an address adopted from a Service's status) is kept, across any
 *   change and any restart, as long as it is still valid — in a pool that hands it out (not a
 *   .0/.255 of an avoidBuggyIPs pool), a pool that serves the Service, shareable with its
 *   co-holders, of the Service's families, and what the Service requests;
 * - otherwise it is released (reported in `replaced`, with why) and the Service is allocated
 *   anew, or left without addresses with the reason — as MetalLB clears and re-converges. A pool
 *   change releases what the new pools no longer allow at once (`setPools` lists them), so the
 *   addresses are free for the reconcile that follows.
 *
 * Pure: no I/O, no clock; state changes only through the methods below. Bad input changes nothing.
 *
 * Deliberate differences from MetalLB (none changes an outcome MetalLB could produce) are listed,
 * with why, in README.md under "MetalLB compatibility" → Allocation.
 *
 * @example
 * const a = new Allocator();
 * a.setPools([{ metadata: { name: "lan" }, spec: { addresses: ["192.0.2.0/24"] } }]);
 * const r = a.allocate(service); // { ok: true, ips: ["192.0.2.0"], pool: "lan", ... }
 */

import { type Family, type Ip, parseIp } from "../util/ip.ts";
import { AddressBook, type Claimant } from "./book.ts";
import { ipText } from "./format.ts";
import { type CompiledPool, compilePools, isBuggy, poolRefusal, scoped } from "./pools.ts";
import type { AllocReason, AllocWarning, ReallocationCause, Replaced } from "./reasons.ts";
import { basics, ownershipRefusal, parseRequest, type Request, serviceKey } from "./request.ts";
import { TombMap } from "./tombmap.ts";
import type { Assignment, IPAddressPool, Labels, NamespaceLabels, PoolUsage, Service } from "./types.ts";

export type AllocResult =
  | {
      readonly ok: true;
      readonly key: string;
      readonly ips: readonly string[];
      readonly pool: string;
      /** False when the Service already held exactly these IPs (or adopted them from its status). */
      readonly changed: boolean;
      readonly warnings: readonly AllocWarning[];
      /** What the Service held before and gave up in this call, with why; null if nothing. */
      readonly replaced: Replaced | null;
    }
  | {
      readonly ok: false;
      readonly key: string;
      readonly reason: AllocReason;
      readonly warnings: readonly AllocWarning[];
      /** The Service is not vipd's (type or class); any assignment it had was released. */
      readonly notOurs: boolean;
      /**
       * What the Service still holds despite the refusal: only after a syntactically invalid
       * request (as MetalLB); a request that cannot be met releases what the Service held.
       */
      readonly kept: Assignment | null;
      /** What the Service held before and gave up in this call, with why; null if nothing. */
      readonly replaced: Replaced | null;
    };

/** An assignment the new pools (or namespace labels) no longer allow: released at once. */
export interface Invalidated {
  readonly key: string;
  readonly ips: readonly string[];
  readonly reason: AllocReason;
}

export type SetPoolsResult =
  | { readonly ok: true; readonly invalidated: readonly Invalidated[] }
  | { readonly ok: false; readonly errors: readonly string[] };

export interface RestoreResult {
  readonly adopted: readonly string[];
  readonly refused: readonly {
    readonly key: string;
    readonly ips: readonly string[];
    readonly reason: AllocReason;
  }[];
}

export interface ReconcileResult {
  /** One result per Service that is vipd's, existing assignments first, each group by key. */
  readonly results: readonly AllocResult[];
  /** Services that lost their assignment: deleted, or no longer vipd's. */
  readonly released: readonly string[];
  /** Services in the input that are not vipd's, with why. */
  readonly ignored: readonly { readonly key: string; readonly reason: AllocReason }[];
}

export interface AllocatorOptions {
  /** vipd handles Services of this loadBalancerClass; when unset, classless Services. */
  readonly loadBalancerClass?: string | undefined;
  readonly namespaceLabels?: NamespaceLabels | undefined;
  /**
   * A Service's key ("ns/name"; default `serviceKey`). A caller that keeps one string per Service
   * object passes its own: allocations, results and the caller then share it (10,000 Services:
   * not two more strings each).
   */
  readonly keyOf?: ((svc: Service) => string) | undefined;
}

interface Allocation extends Claimant {
  pool: string;
  readonly ips: readonly Ip[];
  readonly namespace: string;
  readonly labels: Labels;
}

type PoolCheck =
  | { readonly ok: true; readonly pool: CompiledPool }
  | { readonly ok: false; readonly reason: AllocReason };

const sameIps = (a: readonly Ip[], b: readonly Ip[]): boolean =>
  a.length === b.length && a.every((x) => b.some((y) => y.family === x.family && y.value === x.value));

const sameLabels = (a: Labels, b: Labels): boolean => {
  if (a === b) return true;
  const ka = Object.keys(a ?? {});
  return ka.length === Object.keys(b ?? {}).length && ka.every((k) => a?.[k] === b?.[k]);
};

/** Whether an allocation already records everything sharing and eligibility depend on. */
const sameClaim = (a: Allocation, r: Request): boolean =>
  a.sharingKey === r.sharingKey &&
  a.backendKey === r.backendKey &&
  a.ports.length === r.ports.length &&
  a.ports.every((p, i) => p === r.ports[i]) &&
  sameLabels(a.labels, r.labels);

const byKey = (a: { key: string }, b: { key: string }): number =>
  a.key < b.key ? -1 : a.key > b.key ? 1 : 0;

/**
 * Refusals after which MetalLB clears what the Service holds (its convergeBalancer clears on a
 * RequireDualStack Service without two ClusterIPs, and on requested IPs of the wrong family);
 * any other unreadable request returns before clearing, keeping the current addresses.
 */
const CLEARS: ReadonlySet<AllocReason["kind"]> = new Set(["DualStackUnavailable", "RequestedFamilyMismatch"]);

export class Allocator {
  private readonly cls: string | null;
  private nsLabels: NamespaceLabels;
  private pools: readonly CompiledPool[] = [];
  private byName = new Map<string, CompiledPool>();
  private readonly allocs = new TombMap<string, Allocation>();
  private readonly book = new AddressBook();
  /**
   * What Services lost without a call about them (a pool change, a status not adopted), reported
   * as `replaced` by their next `allocate`. Only ever for keys without an allocation.
   */
  private readonly lost = new Map<string, Replaced>();
  private readonly keyOf: (svc: Service) => string;

  constructor(opts: AllocatorOptions = {}) {
    this.cls = opts.loadBalancerClass ?? null;
    this.keyOf = opts.keyOf ?? serviceKey;
    this.nsLabels = opts.namespaceLabels ?? (() => undefined);
  }

  /**
   * Replaces the pools. Invalid pools are refused as a whole (nothing changes). Assignments the
   * new pools no longer allow are released at once and listed; each Service's next `allocate`
   * re-addresses it (or says why it cannot) and reports the release in `replaced`.
   */
  setPools(pools: readonly IPAddressPool[]): SetPoolsResult {
    const c = compilePools(pools);
    if (!c.ok) return c;
    this.pools = c.pools;
    this.byName = new Map(c.pools.map((p) => [p.name, p]));
    this.book.setPools(c.pools);
    return { ok: true, invalidated: this.recheck() };
  }

  /** Replaces the namespace label lookup (namespaceSelectors); re-checks assignments like setPools. */
  setNamespaceLabels(lookup: NamespaceLabels): SetPoolsResult {
    this.nsLabels = lookup;
    return { ok: true, invalidated: this.recheck() };
  }

  private recheck(): Invalidated[] {
    const out: Invalidated[] = [];
    for (const a of [...this.allocs.values()].sort(byKey)) {
      const pc = this.poolCheck(a.ips, a);
      if (pc.ok) {
        a.pool = pc.pool.name;
        continue;
      }
      this.remove(a);
      const from = a.ips.map(ipText);
      this.lost.set(a.key, { from, cause: { kind: "NoLongerValid", reason: pc.reason } });
      out.push({ key: a.key, ips: from, reason: pc.reason });
    }
    return out;
  }

  /** The one pool that hands out all of `ips` and serves the Service, or why there is none. */
  private poolCheck(ips: readonly Ip[], who: { namespace: string; labels: Labels; key: string }): PoolCheck {
    let pool: CompiledPool | undefined;
    const names: string[] = [];
    for (const ip of ips) {
      const p = this.pools.find((x) =>
        x.ranges.some((r) => r.family === ip.family && r.first <= ip.value && ip.value <= r.last),
      );
      if (p === undefined) return { ok: false, reason: { kind: "NotInAnyPool", ip: ipText(ip) } };
      if (p.avoidBuggyIPs && isBuggy(ip))
        return { ok: false, reason: { kind: "BuggyIP", ip: ipText(ip), pool: p.name } };
      if (!names.includes(p.name)) names.push(p.name);
      pool = p;
    }
    if (pool === undefined)
      return { ok: false, reason: { kind: "NoAvailableIPs", pool: null, families: [] } };
    if (names.length > 1)
      return { ok: false, reason: { kind: "SplitAcrossPools", ips: ips.map(ipText), pools: names } };
    const why = poolRefusal(pool, who.namespace, who.labels, this.nsLabels);
    if (why !== null)
      return { ok: false, reason: { kind: "PoolNotAllowed", pool: pool.name, service: who.key, why } };
    return { ok: true, pool };
  }

  private sharingReason(ips: readonly Ip[], c: Claimant): AllocReason | null {
    for (const ip of ips) {
      const r = this.book.refusal(ip, c);
      if (r !== null)
        return { kind: "NotShareable", ip: ipText(ip), holders: r.holders, conflict: r.conflict };
    }
    return null;
  }

  private insert(a: Allocation): void {
    this.allocs.set(a.key, a);
    // An allocation's addresses are always handed out by its pool.
    for (const ip of a.ips) this.book.add(ip, a, a.pool);
  }

  private remove(a: Allocation): void {
    this.allocs.delete(a.key);
    for (const ip of a.ips) this.book.remove(ip, a);
  }

  private toAssignment(a: Allocation): Assignment {
    return {
      key: a.key,
      pool: a.pool,
      ips: a.ips.map(ipText),
      ports: a.ports,
      sharingKey: a.sharingKey,
      backendKey: a.backendKey,
    };
  }

  /** Frees the Service's IPs (it was deleted). False if it held none. */
  release(key: string): boolean {
    this.lost.delete(key);
    const a = this.allocs.get(key);
    if (a === undefined) return false;
    this.remove(a);
    return true;
  }

  /**
   * Gives `svc` its IPs: keeps a still-valid existing assignment, or releases it and allocates
   * anew (`replaced` says what was released and why). A request that cannot be met leaves the
   * Service without addresses; only a syntactically invalid one keeps them (`kept`).
   */
  allocate(svc: Service): AllocResult {
    const key = this.keyOf(svc);
    const parsed = parseRequest(svc, this.cls, key);
    const lost = this.lost.get(key) ?? null;
    this.lost.delete(key);
    const existing = this.allocs.get(key);
    if (!parsed.ok) {
      const fail = (kept: Assignment | null, replaced: Replaced | null): AllocResult => ({
        ok: false,
        key,
        reason: parsed.reason,
        warnings: parsed.warnings,
        notOurs: parsed.notOurs,
        kept,
        replaced,
      });
      if (parsed.notOurs) {
        this.release(key);
        return fail(null, null);
      }
      if (existing !== undefined && CLEARS.has(parsed.reason.kind)) {
        this.remove(existing);
        return fail(null, {
          from: existing.ips.map(ipText),
          cause: { kind: "NoLongerValid", reason: parsed.reason },
        });
      }
      return fail(existing === undefined ? null : this.toAssignment(existing), lost);
    }
    const req = parsed.request;
    const warnings = parsed.warnings;
    if (existing === undefined) return this.fresh(req, warnings, lost);
    const cause = this.judge(existing, req);
    if (cause !== null) {
      this.remove(existing);
      return this.fresh(req, warnings, { from: existing.ips.map(ipText), cause });
    }
    // Keep: refresh what sharing depends on (ports, keys, labels) and maybe add a family.
    let ips = existing.ips;
    let changed = false;
    if (
      req.policy === "PreferDualStack" &&
      req.families.length === 2 &&
      ips.length === 1 &&
      req.requested === null
    ) {
      const other = req.families.find((f) => f !== ips[0]!.family) as Family;
      const pool = this.byName.get(existing.pool);
      const ip = pool === undefined ? null : this.book.lowestInPool(pool, other, { ...req });
      if (ip === null)
        warnings.push({ kind: "AdditionalFamilyUnavailable", pool: existing.pool, family: other });
      else {
        ips = req.families[0] === other ? [ip, ips[0]!] : [ips[0]!, ip];
        changed = true;
      }
    }
    if (changed || !sameClaim(existing, req)) {
      this.remove(existing);
      this.insert({ ...this.claim(req), ips, pool: existing.pool });
    }
    return { ok: true, key, ips: ips.map(ipText), pool: existing.pool, changed, warnings, replaced: null };
  }

  private claim(req: Request): Omit<Allocation, "ips" | "pool"> {
    return {
      key: req.key,
      ports: req.ports,
      sharingKey: req.sharingKey,
      backendKey: req.backendKey,
      namespace: req.namespace,
      labels: req.labels,
    };
  }

  /** Why an existing assignment must be replaced for `req`, or null to keep it. */
  private judge(a: Allocation, req: Request): ReallocationCause | null {
    if (req.requested !== null && !sameIps(a.ips, req.requested)) return { kind: "RequestedIPsChanged" };
    if (req.pool !== null && req.pool !== a.pool) return { kind: "RequestedPoolChanged", pool: req.pool };
    const famOk =
      a.ips.every((ip) => req.families.includes(ip.family)) &&
      (a.ips.length === req.families.length || req.policy === "PreferDualStack");
    if (!famOk) return { kind: "FamiliesChanged" };
    const who = this.claim(req);
    const pc = this.poolCheck(a.ips, who);
    if (!pc.ok) return { kind: "NoLongerValid", reason: pc.reason };
    const sr = this.sharingReason(a.ips, who);
    if (sr !== null) return { kind: "NoLongerValid", reason: sr };
    return null;
  }

  /** Allocates for a Service holding nothing (its old assignment, if any, already removed). */
  private fresh(req: Request, warnings: AllocWarning[], replaced: Replaced | null): AllocResult {
    const fail = (reason: AllocReason): AllocResult => ({
      ok: false,
      key: req.key,
      reason,
      warnings,
      notOurs: false,
      kept: null,
      replaced,
    });
    if (this.pools.length === 0) return fail({ kind: "NoPools" });
    const who = this.claim(req);
    let ips: readonly Ip[];
    let pool: CompiledPool;
    if (req.requested !== null) {
      if (req.pool !== null && !this.byName.has(req.pool))
        return fail({ kind: "UnknownPool", pool: req.pool });
      const pc = this.poolCheck(req.requested, who);
      if (!pc.ok) return fail(pc.reason);
      if (req.pool !== null && pc.pool.name !== req.pool)
        return fail({
          kind: "WrongPool",
          ips: req.requested.map(ipText),
          requested: req.pool,
          actual: pc.pool.name,
        });
      const sr = this.sharingReason(req.requested, who);
      if (sr !== null) return fail(sr);
      ips = req.requested;
      pool = pc.pool;
    } else if (req.pool !== null) {
      const p = this.byName.get(req.pool);
      if (p === undefined) return fail({ kind: "UnknownPool", pool: req.pool });
      const why = poolRefusal(p, req.namespace, req.labels, this.nsLabels);
      if (why !== null) return fail({ kind: "PoolNotAllowed", pool: p.name, service: req.key, why });
      const found = this.pick(p, req);
      if (found === null) return fail({ kind: "NoAvailableIPs", pool: p.name, families: req.families });
      ips = found;
      pool = p;
    } else {
      const best = this.best(req);
      if (typeof best === "string") {
        return fail(
          best === "none"
            ? { kind: "NoEligiblePool", service: req.key }
            : { kind: "NoAvailableIPs", pool: null, families: req.families },
        );
      }
      ips = best.ips;
      pool = best.pool;
    }
    this.insert({ ...who, ips, pool: pool.name });
    return {
      ok: true,
      key: req.key,
      ips: ips.map(ipText),
      pool: pool.name,
      changed: true,
      warnings,
      replaced,
    };
  }

  /** IPs for `req` from one pool, per its families and policy, or null. */
  private pick(p: CompiledPool, req: Request): Ip[] | null {
    const found = req.families.map((f) => this.book.lowestInPool(p, f, req));
    const got = found.filter((x): x is Ip => x !== null);
    if (got.length === req.families.length) return got;
    if (req.policy === "PreferDualStack" && got.length > 0) return got;
    return null;
  }

  /**
   * MetalLB's choice across auto-assign pools: the first pool with every wanted family; under
   * PreferDualStack, failing that, the first with the primary family, then the secondary.
   */
  private best(req: Request): { pool: CompiledPool; ips: Ip[] } | "none" | "full" {
    let primary: { pool: CompiledPool; ips: Ip[] } | null = null;
    let secondary: { pool: CompiledPool; ips: Ip[] } | null = null;
    let eligible = false;
    const prefer = req.policy === "PreferDualStack" && req.families.length === 2;
    for (const p of this.pools) {
      if (!p.autoAssign || !scoped(p) || poolRefusal(p, req.namespace, req.labels, this.nsLabels) !== null)
        continue;
      eligible = true;
      const a = this.book.lowestInPool(p, req.families[0]!, req);
      if (req.families.length === 1) {
        if (a !== null) return { pool: p, ips: [a] };
        continue;
      }
      if (a === null && !prefer) continue;
      const b = this.book.lowestInPool(p, req.families[1]!, req);
      if (a !== null && b !== null) return { pool: p, ips: [a, b] };
      if (a !== null && primary === null) primary = { pool: p, ips: [a] };
      if (b !== null && secondary === null) secondary = { pool: p, ips: [b] };
    }
    if (prefer) {
      if (primary !== null) return primary;
      if (secondary !== null) return secondary;
    }
    return eligible ? "full" : "none";
  }

  /**
   * Adopts what Services already hold (status.loadBalancer.ingress) for Services with no
   * assignment yet, in key order — MetalLB's "the status is the end state of convergence".
   * Only a still-valid address is adopted (in a pool that hands it out and serves the Service,
   * shareable with the holders adopted before it); any other is refused, and the Service's next
   * `allocate` re-addresses it and reports the refusal in `replaced`.
   */
  restore(services: readonly Service[]): RestoreResult {
    const adopted: string[] = [];
    const refused: { key: string; ips: string[]; reason: AllocReason }[] = [];
    const sorted = services
      .map((s) => ({ key: this.keyOf(s), s }))
      .filter(({ key, s }) => !this.allocs.has(key) && (s.status?.loadBalancer?.ingress?.length ?? 0) > 0)
      .sort(byKey);
    for (const { key, s } of sorted) {
      if (ownershipRefusal(s, this.cls) !== null) continue;
      const texts = (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? "").filter((t) => t !== "");
      if (texts.length === 0) continue;
      const ips = texts.map(parseIp);
      const bad = texts.find((_, i) => ips[i] === null);
      if (bad !== undefined) {
        refused.push({
          key,
          ips: texts,
          reason: {
            kind: "InvalidRequestedIPs",
            ips: texts,
            detail: `${JSON.stringify(bad)} in status is not an IP address`,
          },
        });
        continue;
      }
      const good = ips as Ip[];
      const refuse = (reason: AllocReason) => {
        refused.push({ key, ips: texts, reason });
        // A pool change may have said why already; that is the better story.
        if (!this.lost.has(key))
          this.lost.set(key, { from: good.map(ipText), cause: { kind: "NoLongerValid", reason } });
      };
      if (good.length > 2 || (good.length === 2 && good[0]!.family === good[1]!.family)) {
        refuse({
          kind: "InvalidRequestedIPs",
          ips: texts,
          detail: "status holds more than one address per family",
        });
        continue;
      }
      const b = basics(s, [], key);
      const pc = this.poolCheck(good, b);
      if (!pc.ok) {
        refuse(pc.reason);
        continue;
      }
      const sr = this.sharingReason(good, b);
      if (sr !== null) {
        refuse(sr);
        continue;
      }
      this.insert({ ...b, ips: good, pool: pc.pool.name });
      adopted.push(key);
    }
    return { adopted, refused };
  }

  /**
   * Converges on the whole desired Service set: releases Services that are gone or no longer
   * vipd's, adopts what Services already hold, keeps valid assignments and allocates the rest,
   * in a deterministic order (Services already holding IPs first, then by key).
   */
  reconcile(services: readonly Service[]): ReconcileResult {
    const ours = new Map<string, Service>();
    const ignored: { key: string; reason: AllocReason }[] = [];
    for (const s of services) {
      const key = this.keyOf(s);
      const why = ownershipRefusal(s, this.cls);
      if (why === null) ours.set(key, s);
      else ignored.push({ key, reason: why });
    }
    const released: string[] = [];
    for (const a of [...this.allocs.values()].sort(byKey)) {
      if (!ours.has(a.key)) {
        this.remove(a);
        released.push(a.key);
      }
    }
    for (const k of [...this.lost.keys()]) if (!ours.has(k)) this.lost.delete(k);
    this.restore([...ours.values()]);
    const order = [...ours.entries()]
      .map(([key, s]) => ({ key, s, held: this.allocs.has(key) ? 0 : 1 }))
      .sort((a, b) => a.held - b.held || byKey(a, b));
    const results = order.map(({ s }) => this.allocate(s));
    return { results, released, ignored: ignored.sort(byKey) };
  }

  assignment(key: string): Assignment | undefined {
    const a = this.allocs.get(key);
    return a === undefined ? undefined : this.toAssignment(a);
  }

  /** Every assignment, by key. */
  assignments(): Assignment[] {
    return [...this.allocs.values()].sort(byKey).map((a) => this.toAssignment(a));
  }

  /** Services holding an address (more than one only when shared). */
  holders(ip: string): string[] {
    const p = parseIp(ip);
    return p === null ? [] : this.book.holders(p);
  }

  /** Exact per-family usage of a pool, or undefined if there is no such pool. */
  usage(pool: string): PoolUsage | undefined {
    const p = this.byName.get(pool);
    if (p === undefined) return undefined;
    const fam = (f: Family) => {
      const assigned = BigInt(this.book.assigned(pool, f));
      return { assigned, available: p.capacity[f] - assigned, capacity: p.capacity[f] };
    };
    return { 4: fam(4), 6: fam(6) };
  }

  /** Pool names in the order they are tried. */
  poolNames(): string[] {
    return this.pools.map((p) => p.name);
  }

  /** Internal size measure: runs of taken addresses (memory grows with this, not pool size). */
  get runs(): number {
    return this.book.runs;
  }
}
