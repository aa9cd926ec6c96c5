/**
 * The state file: what each Service holds, kept in `--state-dir` so that a restart re-adopts the
 * same addresses before allocating anything (a restart never re-addresses a Service).
 */

import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Held } from "../plan/allocate.ts";
import { writeAtomic } from "./store.ts";

export const ASSIGNMENTS_FILE = "assignments.json";

/**
 * What Services held before a restart: `{ "ns/name": { "ips": [...], "pool": "..." } }` (or the
 * older `{ "ns/name": ["ip", ...] }`); entries of another shape are skipped; empty when unknown.
 */
export function readHeld(stateDir: string | undefined): Record<string, Held> {
  if (stateDir === undefined) return {};
  try {
    const v: unknown = JSON.parse(readFileSync(join(stateDir, ASSIGNMENTS_FILE), "utf8"));
    if (typeof v !== "object" || v === null || Array.isArray(v)) return {};
    const out: Record<string, Held> = {};
    const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((y) => typeof y === "string");
    for (const [k, e] of Object.entries(v)) {
      if (strings(e)) out[k] = { ips: e };
      else if (typeof e === "object" && e !== null && strings((e as { ips?: unknown }).ips)) {
        const pool = (e as { pool?: unknown }).pool;
        out[k] = { ips: (e as { ips: string[] }).ips, pool: typeof pool === "string" ? pool : undefined };
      }
    }
    return out;
  } catch {
    return {};
  }
}

/** Writes the assignments atomically (temp file, fsync, rename). Throws on I/O errors. */
export function writeHeld(stateDir: string, text: string): void {
  mkdirSync(stateDir, { recursive: true });
  writeAtomic(join(stateDir, ASSIGNMENTS_FILE), text);
}
