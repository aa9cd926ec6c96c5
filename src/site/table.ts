/**
 * The site's one truth, as a value: a snapshot is the site configuration (the MetalLB objects and
 * Services, as YAML text; NodeSettings stay per node) at a site generation, plus the assignment
 * table the allocating member computed for it. Pure: canonical forms, stable digests, the order
 * of versions, and the list of Services whose addresses differ between two tables.
 *
 * Version order (documented in README → Site): a snapshot is identified by (generation,
 * allocator). Of two versions the one with the higher generation is newer; at equal generation
 * (two sides of a partition each wrote once) the one made by the lower allocator name wins. Every
 * member applies the same order, so after a partition heals all adopt the same snapshot.
 */

import { createHash } from "node:crypto";

/** One row of the assignment table: a Service ("ns/name") and the addresses it holds. */
export interface SiteAssignment {
  readonly key: string;
  readonly pool: string;
  readonly ips: readonly string[];
}

export interface Version {
  readonly generation: number;
  readonly allocator: string;
}

export interface Snapshot extends Version {
  /** The site configuration (multi-document YAML without NodeSettings). */
  readonly config: string;
  /** Sorted by key; each row's ips in the order the allocator gave them. */
  readonly table: readonly SiteAssignment[];
  /**
   * The versions this snapshot descends from, oldest first, at most LINEAGE_MAX (its own not
   * included). Adopting a snapshot whose lineage does not hold ours is a partition heal.
   */
  readonly lineage: readonly string[];
}

export const LINEAGE_MAX = 64;

export function versionId(v: Version): string {
  return `${v.generation}@${v.allocator}`;
}

/** Whether `a` is newer than `b` (undefined: no snapshot at all, older than any). */
export function newer(a: Version | undefined, b: Version | undefined): boolean {
  if (a === undefined) return false;
  if (b === undefined) return true;
  if (a.generation !== b.generation) return a.generation > b.generation;
  return a.allocator < b.allocator;
}

export function sameVersion(a: Version | undefined, b: Version | undefined): boolean {
  return a?.generation === b?.generation && a?.allocator === b?.allocator;
}

/** The table in canonical order (by key), rows copied. */
export function canonicalTable(rows: readonly SiteAssignment[]): SiteAssignment[] {
  return [...rows]
    .map((r) => ({ key: r.key, pool: r.pool, ips: [...r.ips] }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function hash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/** A stable digest of the table (16 hex digits): equal tables, equal digests, whatever the row order. */
export function tableDigest(rows: readonly SiteAssignment[]): string {
  return hash(JSON.stringify(canonicalTable(rows).map((r) => [r.key, r.pool, r.ips])));
}

/** A digest of the configuration text (16 hex digits). */
export function configDigest(text: string): string {
  return hash(text);
}

export interface AddressChange {
  readonly service: string;
  readonly from: readonly string[];
  readonly to: readonly string[];
}

/**
 * Services that held addresses in `before` and hold other ones (or none) in `after`. A Service
 * new in `after` is not a change: nobody's clients used it yet.
 */
export function addressChanges(
  before: readonly SiteAssignment[],
  after: readonly SiteAssignment[],
): AddressChange[] {
  const next = new Map(after.map((r) => [r.key, r.ips]));
  const out: AddressChange[] = [];
  for (const r of canonicalTable(before)) {
    const to = next.get(r.key) ?? [];
    if (to.join(",") !== r.ips.join(",")) out.push({ service: r.key, from: [...r.ips], to: [...to] });
  }
  return out;
}

/** The next snapshot after `prev`, made by `allocator`. */
export function nextSnapshot(
  prev: Snapshot | undefined,
  allocator: string,
  config: string,
  table: readonly SiteAssignment[],
): Snapshot {
  const lineage = prev === undefined ? [] : [...prev.lineage, versionId(prev)].slice(-LINEAGE_MAX);
  return {
    generation: (prev?.generation ?? 0) + 1,
    allocator,
    config,
    table: canonicalTable(table),
    lineage,
  };
}

/** Whether `snap` descends from (or is) version `v`. */
export function descends(snap: Snapshot, v: Version): boolean {
  return sameVersion(snap, v) || snap.lineage.includes(versionId(v));
}

/**
 * Checks a value read from disk or the wire is a well-formed snapshot; returns it canonicalised,
 * or a message saying what is wrong.
 */
export function parseSnapshot(v: unknown): { ok: true; snapshot: Snapshot } | { ok: false; message: string } {
  if (typeof v !== "object" || v === null) return { ok: false, message: "not an object" };
  const o = v as Record<string, unknown>;
  if (!Number.isSafeInteger(o.generation) || (o.generation as number) < 1)
    return { ok: false, message: "generation must be a positive integer" };
  if (typeof o.allocator !== "string" || o.allocator.length === 0 || o.allocator.length > 253)
    return { ok: false, message: "allocator must be a member name" };
  if (typeof o.config !== "string") return { ok: false, message: "config must be text" };
  if (!Array.isArray(o.table)) return { ok: false, message: "table must be a list" };
  const rows: SiteAssignment[] = [];
  const keys = new Set<string>();
  for (const [i, r] of o.table.entries()) {
    const x = r as Record<string, unknown> | null;
    if (
      typeof x !== "object" ||
      x === null ||
      typeof x.key !== "string" ||
      typeof x.pool !== "string" ||
      !Array.isArray(x.ips) ||
      !x.ips.every((ip) => typeof ip === "string")
    )
      return { ok: false, message: `table[${i}] must be {key, pool, ips}` };
    if (keys.has(x.key)) return { ok: false, message: `table[${i}]: ${x.key} is listed twice` };
    keys.add(x.key);
    rows.push({ key: x.key, pool: x.pool, ips: x.ips as string[] });
  }
  const lineage = o.lineage ?? [];
  if (!Array.isArray(lineage) || !lineage.every((l) => typeof l === "string") || lineage.length > LINEAGE_MAX)
    return { ok: false, message: `lineage must be a list of at most ${LINEAGE_MAX} versions` };
  return {
    ok: true,
    snapshot: {
      generation: o.generation as number,
      allocator: o.allocator,
      config: o.config,
      table: canonicalTable(rows),
      lineage: lineage as string[],
    },
  };
}
