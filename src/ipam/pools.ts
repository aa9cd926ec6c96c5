/**
 * IPAddressPools compiled for allocation: parsed ranges with their exact capacities, the
 * address "space" each range is searched in, the order in which pools are tried, and whether a
 * pool serves a given Service (MetalLB's `serviceAllocation`).
 *
 * avoidBuggyIPs: IPv4 addresses ending in .0 or .255 are never handed out by such a pool. To
 * find free addresses without stepping over them one by one, those ranges are searched in a
 * "dense" space that numbers only the .1-.254 addresses (index = (a >> 8) * 254 + (a & 255) - 1).
 */

import { anySelectorMatches, type Labels } from "../config/selector.ts";
import { type Family, formatRange, type Ip, type IpRange, parseRange, rangesOverlap } from "../util/ip.ts";
import type { PoolRefusal } from "./reasons.ts";
import type { IPAddressPool, NamespaceLabels, ServiceAllocation } from "./types.ts";

/** raw4 / raw6: address value itself; dense4: .1-.254 addresses only. */
export type Space = "raw4" | "dense4" | "raw6";

export interface CompiledRange extends IpRange {
  readonly space: Space;
  /** Bounds of the allocatable addresses in `space` coordinates; lo > hi means none. */
  readonly lo: bigint;
  readonly hi: bigint;
}

export interface CompiledPool {
  readonly name: string;
  readonly autoAssign: boolean;
  readonly avoidBuggyIPs: boolean;
  readonly ranges: readonly CompiledRange[];
  readonly capacity: Readonly<Record<Family, bigint>>;
  readonly allocation: ServiceAllocation | undefined;
  readonly source: IPAddressPool;
}

export function isBuggy(ip: Ip): boolean {
  if (ip.family !== 4) return false;
  const o = ip.value & 255n;
  return o === 0n || o === 255n;
}

export function toDense(a: bigint): bigint {
  return (a >> 8n) * 254n + (a & 255n) - 1n;
}

export function fromDense(i: bigint): bigint {
  return (i / 254n) * 256n + (i % 254n) + 1n;
}

function compileRange(r: IpRange, avoidBuggy: boolean): CompiledRange {
  if (r.family === 6) return { ...r, space: "raw6", lo: r.first, hi: r.last };
  if (!avoidBuggy) return { ...r, space: "raw4", lo: r.first, hi: r.last };
  const fo = r.first & 255n;
  const first = fo === 0n ? r.first + 1n : fo === 255n ? r.first + 2n : r.first;
  const lo_ = r.last & 255n;
  const last = lo_ === 255n ? r.last - 1n : lo_ === 0n ? r.last - 2n : r.last;
  if (last < first) return { ...r, space: "dense4", lo: 1n, hi: 0n };
  return { ...r, space: "dense4", lo: toDense(first), hi: toDense(last) };
}

/** The address of `ip` in the space of `r`, or null if `r` does not hand it out. */
export function spaceIndex(r: CompiledRange, ip: Ip): bigint | null {
  if (ip.family !== r.family || ip.value < r.first || ip.value > r.last) return null;
  if (r.space !== "dense4") return ip.value;
  return isBuggy(ip) ? null : toDense(ip.value);
}

export function rangeSpaceToIp(r: CompiledRange, i: bigint): bigint {
  return r.space === "dense4" ? fromDense(i) : i;
}

function priorityOf(p: CompiledPool): number {
  const pr = p.allocation?.priority;
  // MetalLB cannot tell 0 from unset; both mean "no priority" (tried after prioritised pools).
  return pr === undefined || pr === 0 ? Number.POSITIVE_INFINITY : pr;
}

/**
 * The order pools are tried in for automatic assignment: pools with a serviceAllocation first
 * (lower priority number first, unprioritised ones after), then pools without one; ties by name.
 */
export function comparePools(a: CompiledPool, b: CompiledPool): number {
  const ga = a.allocation === undefined ? 1 : 0;
  const gb = b.allocation === undefined ? 1 : 0;
  if (ga !== gb) return ga - gb;
  const pa = priorityOf(a);
  const pb = priorityOf(b);
  if (pa !== pb) return pa < pb ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export type CompileResult =
  | { readonly ok: true; readonly pools: readonly CompiledPool[] }
  | { readonly ok: false; readonly errors: readonly string[] };

/** Parses and orders pools; any bad entry, duplicate name or overlap rejects the whole set. */
export function compilePools(pools: readonly IPAddressPool[]): CompileResult {
  const errors: string[] = [];
  const out: CompiledPool[] = [];
  const seen = new Set<string>();
  const all: { pool: string; range: IpRange }[] = [];
  for (const p of pools) {
    const name = p.metadata.name;
    if (seen.has(name)) errors.push(`pool ${JSON.stringify(name)}: defined more than once`);
    seen.add(name);
    const avoid = p.spec.avoidBuggyIPs ?? false;
    const ranges: CompiledRange[] = [];
    const capacity: Record<Family, bigint> = { 4: 0n, 6: 0n };
    for (const a of p.spec.addresses) {
      const r = parseRange(a);
      if (!r.ok) {
        errors.push(`pool ${JSON.stringify(name)}: ${r.error}`);
        continue;
      }
      for (const o of all) {
        if (rangesOverlap(o.range, r.value))
          errors.push(
            `pool ${JSON.stringify(name)}: ${formatRange(r.value)} overlaps ${formatRange(o.range)} of pool ${JSON.stringify(o.pool)}`,
          );
      }
      all.push({ pool: name, range: r.value });
      const c = compileRange(r.value, avoid);
      ranges.push(c);
      if (c.lo <= c.hi) capacity[c.family] += c.hi - c.lo + 1n;
    }
    out.push({
      name,
      autoAssign: p.spec.autoAssign ?? true,
      avoidBuggyIPs: avoid,
      ranges,
      capacity,
      allocation: p.spec.serviceAllocation,
      source: p,
    });
  }
  if (errors.length > 0) return { ok: false, errors };
  out.sort(comparePools);
  return { ok: true, pools: out };
}

/** The range of `pool` that hands out `ip`, or undefined. */
export function rangeFor(pool: CompiledPool, ip: Ip): CompiledRange | undefined {
  for (const r of pool.ranges) if (spaceIndex(r, ip) !== null) return r;
  return undefined;
}

/** Whether `pool` serves a Service in `namespace` with `labels`; the refusal otherwise. */
export function poolRefusal(
  pool: CompiledPool,
  namespace: string,
  labels: Labels,
  namespaceLabels: NamespaceLabels,
): PoolRefusal | null {
  const sa = pool.allocation;
  if (sa === undefined) return null;
  const names = sa.namespaces ?? [];
  const sels = sa.namespaceSelectors ?? [];
  if (names.length > 0 || sels.length > 0) {
    const byName = names.includes(namespace);
    if (
      !byName &&
      !(sels.length > 0 && sels.some((s) => anySelectorMatches([s], namespaceLabels(namespace))))
    )
      return "Namespace";
  }
  if (!anySelectorMatches(sa.serviceSelectors, labels)) return "ServiceSelectors";
  return null;
}

/**
 * Whether automatic assignment may use `p`: MetalLB tries a pool with a serviceAllocation only
 * for the namespaces and Service selectors it names, so one that names neither (a priority
 * alone) serves explicit requests only.
 */
export const scoped = (p: CompiledPool): boolean => {
  const sa = p.allocation;
  return (
    sa === undefined ||
    (sa.namespaces ?? []).length > 0 ||
    (sa.namespaceSelectors ?? []).length > 0 ||
    (sa.serviceSelectors ?? []).length > 0
  );
};
