/**
 * The site's allocation function: the assignment table for a site configuration, continuing from
 * the previous table. It is the appliance allocator (src/plan/allocate.ts over src/ipam) run on a
 * fresh Allocator that first adopts `prev` (as a restart adopts the state file), so the result
 * depends only on (configuration, previous table) — never on which member runs it or what that
 * member did before. That is what lets any member take over allocating without re-addressing.
 */

import { type Config, configFromText, formatProblem } from "../config/index.ts";
import { allocate, emptyAllocation, type Held } from "../plan/allocate.ts";
import type { AllocateFn } from "./state.ts";
import type { SiteAssignment } from "./table.ts";

/** The table as the allocator's `held` input. */
export function tableAsHeld(table: readonly SiteAssignment[]): Record<string, Held> {
  return Object.fromEntries(table.map((r) => [r.key, { ips: r.ips, pool: r.pool }]));
}

/** Allocates `config` (already validated) continuing from `prev`. */
export function allocateTable(config: Config, prev: readonly SiteAssignment[] | undefined): SiteAssignment[] {
  const r = allocate(config, emptyAllocation(), tableAsHeld(prev ?? []));
  return r.assignments.map((a) => ({ key: a.key, pool: a.pool, ips: [...a.ips] }));
}

/**
 * An AllocateFn for the site reducer. `nodeSettings` is this member's own (the site text holds
 * none); only its loadBalancerClass matters to the allocator, and it must be the same on every
 * member of a site.
 */
export function siteAllocate(nodeSettings: () => Config["nodeSettings"]): AllocateFn {
  return (text, prev) => {
    const r = configFromText(text, "<site>");
    if (!r.ok) {
      const first = r.problems.slice(0, 3).map(formatProblem).join("; ");
      return { ok: false, message: `the site configuration is invalid: ${first}` };
    }
    try {
      return { ok: true, table: allocateTable({ ...r.config, nodeSettings: nodeSettings() }, prev) };
    } catch (e) {
      return { ok: false, message: `allocation failed: ${(e as Error).message}` };
    }
  };
}
