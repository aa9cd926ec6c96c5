/**
 * The seed state of an edge-node image: what vipd-seed (image/seed/main.ts) did with the site's
 * seed partition at this boot — applied it, kept it (unchanged), rejected it (with its
 * `file:line` problems), or found none — written as JSON to the state partition
 * (/var/lib/vipd/seed-state.json) before vipd starts. vipd reads it to show it
 * (GET /api/v1/system/seed, and in GET /api/v1/system) and to stay not ready when a rejected seed
 * left the node without any configuration of its own (a fresh node).
 *
 * Pure apart from `readSeedState` (one file read).
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";

export const SEED_STATE_FILE = "seed-state.json";

export interface SeedState {
  /** When vipd-seed looked at the seed (ISO 8601). */
  checkedAt: string;
  /**
   * "applied": this boot applied a new seed; "unchanged": the seed applied earlier is still
   * there; "rejected": the seed is invalid and was not applied; "empty": the partition holds no
   * manifests; "none": there is no seed partition.
   */
  seed: "applied" | "unchanged" | "rejected" | "empty" | "none";
  /** Digest of the seed found (null: none). */
  digest: string | null;
  /** Digest of the last seed applied, this boot or earlier (null: never). */
  appliedDigest: string | null;
  /** The seed's manifest files. */
  files: string[];
  /** A rejected seed's problems, one `file:line: Kind/name: field: message` each. */
  problems: string[];
  /**
   * /etc/vipd holds a configuration of the site's (an applied seed, or one written through the
   * API); false when it holds only vipd-seed's fallback NodeSettings.
   */
  configured: boolean;
}

const SEEDS = new Set(["applied", "unchanged", "rejected", "empty", "none"]);

/** Parses the state file; null when absent, torn or not one. */
export function parseSeedState(text: string | null): SeedState | null {
  if (text === null) return null;
  let v: Partial<SeedState>;
  try {
    v = JSON.parse(text) as Partial<SeedState>;
  } catch {
    return null;
  }
  if (
    typeof v !== "object" ||
    v === null ||
    typeof v.checkedAt !== "string" ||
    !SEEDS.has(v.seed as string) ||
    !Array.isArray(v.problems) ||
    !Array.isArray(v.files) ||
    typeof v.configured !== "boolean"
  )
    return null;
  return {
    checkedAt: v.checkedAt,
    seed: v.seed as SeedState["seed"],
    digest: typeof v.digest === "string" ? v.digest : null,
    appliedDigest: typeof v.appliedDigest === "string" ? v.appliedDigest : null,
    files: v.files.filter((f): f is string => typeof f === "string"),
    problems: v.problems.filter((p): p is string => typeof p === "string"),
    configured: v.configured,
  };
}

/** The state vipd-seed left in `stateDir`, or null (not an edge image, or not written). */
export function readSeedState(stateDir: string | undefined): SeedState | null {
  if (stateDir === undefined) return null;
  try {
    return parseSeedState(readFileSync(join(stateDir, SEED_STATE_FILE), "utf8"));
  } catch {
    return null;
  }
}

/** Problems quoted in a not-ready reason (the API lists them all). */
const QUOTED = 3;

/**
 * Why the node is not ready because of its seed, or null: a rejected seed on a node that has no
 * configuration of its own. On a node that kept its last good configuration a rejected seed is
 * shown by the API but does not make it not ready (it serves what it had).
 */
export function seedNotReadyReason(s: SeedState | null): string | null {
  if (s === null || s.seed !== "rejected" || s.configured) return null;
  const shown = s.problems.slice(0, QUOTED).join("; ");
  const more = s.problems.length > QUOTED ? ` (and ${s.problems.length - QUOTED} more)` : "";
  return (
    `the site's seed was rejected and this node has no configuration: ${s.problems.length} problem(s): ` +
    `${shown}${more}. Fix the seed and reboot (GET /api/v1/system/seed lists every problem)`
  );
}
