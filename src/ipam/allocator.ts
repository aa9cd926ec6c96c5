/**
 * The allocator: which external IPs each LoadBalancer Service gets. MetalLB-compatible semantics
 * (its `internal/allocator` and controller `service.go` are the reference for behaviour):
 *
 * - explicit requests (spec.loadBalancerIP, metallb.io/loadBalancerIPs) are honoured or refused
 *   with a reason, never substituted; metallb.io/address-pool pins the pool;
 * - otherwise the lowest address the Service may use, trying pools in order (serviceAllocation
 *   pools by priority first, then the rest, ties by name), autoAssign: false pools only on request;
 * - dual-stack takes both families from one pool; PreferDualStack settles for one family and
 *   later adds the other from the same pool when it can;
 * - an existing assignment is kept as long as it is valid; a pool change that would take an
 *   in-use address away strands the assignment (kept, reported) instead of re-addressing it.
 *
 * Pure: no I/O, no clock; state changes only through the methods below. Bad input changes nothing.
 *
 * Deliberate differences from MetalLB: pools of equal rank are tried by name (MetalLB: Go map
 * order, i.e. random); a pool whose serviceAllocation sets only a priority serves every Service
 * (MetalLB never auto-assigns from it); a pool change strands instead of re-addressing; a refused
 * request leaves the current assignment in place; without ClusterIPs (a bare appliance) families
 * come from spec.ipFamilies, the requested IPs or the policy; PreferDualStack may request one IP.
 *
 * @example
 * const a = new Allocator();
 * a.setPools([{ metadata: { name: "lan" }, spec: { addresses: ["192.0.2.0/24"] } }]);
 * const r = a.allocate(service); // { ok: true, ips: ["192.0.2.0"], pool: "lan", ... }
 */

import { type Family, type Ip, parseIp } from "../util/ip.ts";
import { AddressBook, type Claimant } from "./book.ts";
import { ipText } from "./format.ts";
import { type CompiledPool, compilePools, isBuggy, poolRefusal } from "./pools.ts";
import type { AllocReason, AllocWarning, ReallocationCause } from "./reasons.ts";
import {
  ANNOTATION_ALLOCATED_FROM,
  basics,
  ownershipRefusal,
  parseRequest,
  type Request,
  serviceKey,
} from "./request.ts";
import { TombMap } from "./tombmap.ts";
import type { Assignment, IPAddressPool, Labels, NamespaceLabels, PoolUsage, Service } from "./types.ts";

export type AllocResult =
  | {
      readonly ok: true;
      readonly key: string;
      readonly ips: readonly string[];
      readonly pool: string;
      /** False when the Service already held exactly these IPs. */
      readonly changed: boolean;
      readonly warnings: readonly AllocWarning[];
    }
  | {
      readonly ok: false;
      readonly key: string;
      readonly reason: AllocReason;
      readonly warnings: readonly AllocWarning[];
      /** The Service is not vipd's (type or class); any assignment it had was released. */
      readonly notOurs: boolean;
      /** What the Service still holds despite the refusal (nothing is taken away on failure). */
      readonly kept: Assignment | null;
    };

export type SetPoolsResult =
  | { readonly ok: true; readonly stranded: readonly AllocReason[] }
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
}

interface Allocation extends Claimant {
  pool: string;
  readonly ips: readonly Ip[];
  readonly namespace: string;
  readonly labels: Labels;
  stranded: AllocReason | null;
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

export class Allocator {
  private readonly cls: string | null;
  private nsLabels: NamespaceLabels;
  private pools: readonly CompiledPool[] = [];
  private byName = new Map<string, CompiledPool>();
  private readonly allocs = new TombMap<string, Allocation>();
  private readonly book = new AddressBook();

  constructor(opts: AllocatorOptions = {}) {
    this.cls = opts.loadBalancerClass ?? null;
    this.nsLabels = opts.namespaceLabels ?? (() => undefined);
  }

  /**
   * Replaces the pools. Invalid pools are refused as a whole (nothing changes). Assignments the
   * new pools no longer allow are kept as they are and reported as stranded.
   */
  setPools(pools: readonly IPAddressPool[]): SetPoolsResult {
    const c = compilePools(pools);
    if (!c.ok) return c;
    this.pools = c.pools;
    this.byName = new Map(c.pools.map((p) => [p.name, p]));
    this.book.setPools(c.pools);
    return { ok: true, stranded: this.restrand() };
  }

  /** Replaces the namespace label lookup (namespaceSelectors); re-checks assignments like setPools. */
  setNamespaceLabels(lookup: NamespaceLabels): SetPoolsResult {
    this.nsLabels = lookup;
    return { ok: true, stranded: this.restrand() };
  }

  private restrand(): AllocReason[] {
    const out: AllocReason[] = [];
    for (const a of [...this.allocs.values()].sort(byKey)) {
      const pc = this.poolCheck(a.ips, a);
      if (pc.ok) {
        a.pool = pc.pool.name;
        a.stranded = null;
      } else {
        a.stranded = pc.reason;
        out.push(this.strandedReason(a, pc.reason));
      }
    }
    return out;
  }

  private strandedReason(a: Allocation, cause: AllocReason): AllocReason {
    return { kind: "Stranded", service: a.key, ips: a.ips.map(ipText), pool: a.pool, cause };
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
    // A non-stranded allocation's addresses are handed out by its pool.
    const hint = a.stranded === null ? a.pool : null;
    for (const ip of a.ips) this.book.add(ip, a, hint);
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
      stranded: a.stranded !== null,
    };
  }

  /** Frees the Service's IPs. False if it held none. */
  release(key: string): boolean {
    const a = this.allocs.get(key);
    if (a === undefined) return false;
    this.remove(a);
    return true;
  }

  /**
   * Gives `svc` its IPs: keeps a valid existing assignment, or allocates anew. On refusal the
   * Service keeps whatever it held (reported in `kept`), except when it is not vipd's at all.
   */
  allocate(svc: Service): AllocResult {
    const key = serviceKey(svc);
    const parsed = parseRequest(svc, this.cls);
    if (!parsed.ok) {
      if (parsed.notOurs) this.release(key);
      const held = this.allocs.get(key);
      return {
        ok: false,
        key,
        reason: parsed.reason,
        warnings: parsed.warnings,
        notOurs: parsed.notOurs,
        kept: held === undefined ? null : this.toAssignment(held),
      };
    }
    const req = parsed.request;
    const warnings = parsed.warnings;
    const existing = this.allocs.get(key);
    if (existing === undefined) return this.fresh(req, warnings, null);
    const cause = this.judge(existing, req);
    if (cause !== null) {
      this.remove(existing);
      const r = this.fresh(req, warnings, { from: existing.ips.map(ipText), cause });
      if (!r.ok) this.insert(existing);
      return r.ok ? r : { ...r, kept: this.toAssignment(existing) };
    }
    // Keep: refresh what sharing depends on (ports, keys, labels) and maybe add a family.
    let ips = existing.ips;
    let changed = false;
    if (
      existing.stranded === null &&
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
      this.insert({ ...this.claim(req), ips, pool: existing.pool, stranded: existing.stranded });
    }
    if (existing.stranded !== null)
      warnings.push({ kind: "KeptStranded", reason: this.strandedReason(existing, existing.stranded) });
    return { ok: true, key, ips: ips.map(ipText), pool: existing.pool, changed, warnings };
  }

  private claim(req: Request): Omit<Allocation, "ips" | "pool" | "stranded"> {
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
    const who = { ...this.claim(req) };
    if (a.stranded === null) {
      const pc = this.poolCheck(a.ips, who);
      if (!pc.ok) return { kind: "NoLongerValid", reason: pc.reason };
    } else {
      // Still stranded unless the pools (or the Service's labels) now allow it again.
      const pc = this.poolCheck(a.ips, who);
      if (pc.ok) {
        a.pool = pc.pool.name;
        a.stranded = null;
      }
    }
    const sr = this.sharingReason(a.ips, who);
    if (sr !== null) return { kind: "NoLongerValid", reason: sr };
    return null;
  }

  /** Allocates for a Service holding nothing (its old assignment, if any, already removed). */
  private fresh(
    req: Request,
    warnings: AllocWarning[],
    replacing: { from: readonly string[]; cause: ReallocationCause } | null,
  ): AllocResult {
    const fail = (reason: AllocReason): AllocResult => ({
      ok: false,
      key: req.key,
      reason,
      warnings,
      notOurs: false,
      kept: null,
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
    this.insert({ ...who, ips, pool: pool.name, stranded: null });
    if (replacing !== null)
      warnings.push({ kind: "Reallocated", from: replacing.from, cause: replacing.cause });
    return { ok: true, key: req.key, ips: ips.map(ipText), pool: pool.name, changed: true, warnings };
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
      if (!p.autoAssign || poolRefusal(p, req.namespace, req.labels, this.nsLabels) !== null) continue;
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
   * Rebuilds assignments from what Services already hold (status.loadBalancer.ingress), for
   * Services with no assignment yet. Addresses the current pools no longer allow are adopted as
   * stranded (never re-addressed); addresses that conflict with an earlier (by key) holder are
   * refused and left for `allocate` to replace.
   */
  restore(services: readonly Service[]): RestoreResult {
    const adopted: string[] = [];
    const refused: { key: string; ips: string[]; reason: AllocReason }[] = [];
    const sorted = services
      .map((s) => ({ key: serviceKey(s), s }))
      .filter(({ key, s }) => !this.allocs.has(key) && (s.status?.loadBalancer?.ingress?.length ?? 0) > 0)
      .sort(byKey);
    for (const { key, s } of sorted) {
      if (ownershipRefusal(s, this.cls) !== null) continue;
      const texts = (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? "").filter((t) => t !== "");
      if (texts.length === 0) continue;
      const ips = texts.map(parseIp);
      const bad = texts.find((_, i) => ips[i] === null);
      const refuse = (reason: AllocReason) => refused.push({ key, ips: texts, reason });
      if (bad !== undefined) {
        refuse({
          kind: "InvalidRequestedIPs",
          ips: texts,
          detail: `${JSON.stringify(bad)} in status is not an IP address`,
        });
        continue;
      }
      const good = ips as Ip[];
      if (good.length > 2 || (good.length === 2 && good[0]!.family === good[1]!.family)) {
        refuse({
          kind: "InvalidRequestedIPs",
          ips: texts,
          detail: "status holds more than one address per family",
        });
        continue;
      }
      const b = basics(s);
      const sr = this.sharingReason(good, b);
      if (sr !== null) {
        refuse(sr);
        continue;
      }
      const pc = this.poolCheck(good, b);
      const pool = pc.ok ? pc.pool.name : (s.metadata.annotations?.[ANNOTATION_ALLOCATED_FROM] ?? "");
      this.insert({ ...b, ips: good, pool, stranded: pc.ok ? null : pc.reason });
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
      const key = serviceKey(s);
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
    const restored = this.restore([...ours.values()]);
    const refusedByKey = new Map(restored.refused.map((r) => [r.key, r]));
    const order = [...ours.entries()]
      .map(([key, s]) => ({ key, s, held: this.allocs.has(key) ? 0 : 1 }))
      .sort((a, b) => a.held - b.held || byKey(a, b));
    const results = order.map(({ key, s }) => {
      const r = this.allocate(s);
      const refusal = refusedByKey.get(key);
      if (refusal === undefined) return r;
      return {
        ...r,
        warnings: [
          ...r.warnings,
          { kind: "StatusNotAdopted", ips: refusal.ips, reason: refusal.reason } as const,
        ],
      };
    });
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

  /** Every stranded assignment with why (for the API and Events), by key. */
  stranded(): AllocReason[] {
    return [...this.allocs.values()]
      .sort(byKey)
      .flatMap((a) => (a.stranded === null ? [] : [this.strandedReason(a, a.stranded)]));
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
