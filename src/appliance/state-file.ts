/**
 * The state file: what each Service holds, kept in `--state-dir` so that a restart re-adopts the
 * same addresses before allocating anything (a restart never re-addresses a Service).
 *
 * Two files: `assignments.json`, the whole table (written atomically: temp file, fsync, rename),
 * and `assignments.journal`, the changes since, one JSON line each, appended and fdatasync'ed
 * (`HeldFile`). A reload that changes one Service of 10,000 appends one line instead of
 * rewriting the whole table; the table is written whole at a process's first write and when
 * the journal has grown as large as the table. Both are written before the change can be seen
 * (the daemon writes them before it yields to the API): an assignment the API has shown is on
 * disk, as it was with the whole file alone.
 *
 * The journal's first line names the table it extends (`{"base": "INODE:MTIME:SIZE"}`: a table
 * written later by rename is another inode, or the same number reused at another time), so a
 * journal left beside a newer table (a crash between writing the table and emptying the
 * journal) is ignored. A line cut short by a crash ends the journal.
 */

import {
  closeSync,
  fdatasyncSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import type { Held } from "../plan/allocate.ts";
import type { PlannedAssignment } from "../plan/plan-types.ts";
import { sameEnds } from "../util/same-ends.ts";
import { writeAtomic } from "./store.ts";

export const ASSIGNMENTS_FILE = "assignments.json";
export const JOURNAL_FILE = "assignments.journal";

const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((y) => typeof y === "string");

/** One entry of the table (or a journal line's value), or undefined when it has another shape. */
function heldEntry(e: unknown): Held | undefined {
  if (strings(e)) return { ips: e };
  if (typeof e === "object" && e !== null && strings((e as { ips?: unknown }).ips)) {
    const pool = (e as { pool?: unknown }).pool;
    return { ips: (e as { ips: string[] }).ips, pool: typeof pool === "string" ? pool : undefined };
  }
  return undefined;
}

/**
 * What Services held before a restart: `{ "ns/name": { "ips": [...], "pool": "..." } }` (or the
 * older `{ "ns/name": ["ip", ...] }`) with the journal's changes applied; entries of another
 * shape are skipped; empty when unknown.
 */
export function readHeld(stateDir: string | undefined): Record<string, Held> {
  if (stateDir === undefined) return {};
  const out: Record<string, Held> = {};
  let base: string;
  try {
    const file = join(stateDir, ASSIGNMENTS_FILE);
    base = tableId(file);
    const v: unknown = JSON.parse(readFileSync(file, "utf8"));
    if (typeof v !== "object" || v === null || Array.isArray(v)) return {};
    for (const [k, e] of Object.entries(v)) {
      const h = heldEntry(e);
      if (h !== undefined) out[k] = h;
    }
  } catch {
    return {};
  }
  let lines: string[];
  try {
    lines = readFileSync(join(stateDir, JOURNAL_FILE), "utf8").split("\n");
  } catch {
    return out;
  }
  try {
    const head = JSON.parse(lines[0] ?? "") as { base?: unknown };
    if (typeof head.base !== "string" || head.base !== base) return out;
  } catch {
    return out;
  }
  for (const line of lines.slice(1)) {
    let rec: { k?: unknown; v?: unknown };
    try {
      rec = JSON.parse(line) as { k?: unknown; v?: unknown };
    } catch {
      break; // the end, or a line cut short
    }
    if (typeof rec.k !== "string") continue;
    if (rec.v === null) delete out[rec.k];
    else {
      const h = heldEntry(rec.v);
      if (h !== undefined) out[rec.k] = h;
    }
  }
  return out;
}

/** Which table file this is: its inode, modification time and size. */
function tableId(file: string): string {
  const st = statSync(file, { bigint: true });
  return `${st.ino}:${st.mtimeNs}:${st.size}`;
}

/** Writes the whole table atomically (temp file, fsync, rename). Throws on I/O errors. */
export function writeHeld(stateDir: string, text: string): void {
  mkdirSync(stateDir, { recursive: true });
  writeAtomic(join(stateDir, ASSIGNMENTS_FILE), text);
}

/** The table's entry of an assignment (as the whole table's text has it). */
const entryOf = (a: PlannedAssignment) => ({ ips: [...a.ips], pool: a.pool });

/**
 * The state file of one process: the table written whole first, then each change appended to
 * the journal (see the module comment). `whole` makes the table's text.
 */
export class HeldFile {
  /** The assignments on disk (table and journal), by identity: an unchanged one is the same object. */
  private last: readonly PlannedAssignment[] | undefined;
  private journal: number | undefined;
  private lines = 0;
  /** Writes, by kind (tests). */
  readonly counts = { whole: 0, appended: 0 };

  constructor(
    private readonly stateDir: string,
    private readonly whole: (assignments: readonly PlannedAssignment[]) => string,
  ) {}

  /** Puts `assignments` on disk before returning. Throws on I/O errors (then writes whole next). */
  write(assignments: readonly PlannedAssignment[]): void {
    const prev = this.last;
    this.last = undefined;
    if (prev === undefined) {
      this.writeWhole(assignments);
      return;
    }
    const lines = changes(prev, assignments);
    if (lines.length === 0) {
      this.last = assignments;
      return;
    }
    if (this.lines + lines.length > Math.max(1024, assignments.length)) {
      this.writeWhole(assignments);
      return;
    }
    if (this.journal === undefined) throw new Error("no journal"); // cannot happen: opened by writeWhole
    const text = `${lines.join("\n")}\n`;
    writeSync(this.journal, text);
    fdatasyncSync(this.journal);
    this.lines += lines.length;
    this.counts.appended++;
    this.last = assignments;
  }

  close(): void {
    if (this.journal !== undefined) closeSync(this.journal);
    this.journal = undefined;
  }

  private writeWhole(assignments: readonly PlannedAssignment[]): void {
    writeHeld(this.stateDir, this.whole(assignments));
    const base = tableId(join(this.stateDir, ASSIGNMENTS_FILE));
    // The journal now extends this table: emptied, and its first line names the table.
    if (this.journal === undefined) {
      this.journal = openSync(join(this.stateDir, JOURNAL_FILE), "a");
      // Its directory entry is durable too (the first time this process opens it).
      const dir = openSync(this.stateDir, "r");
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    }
    ftruncateSync(this.journal, 0);
    writeSync(this.journal, `${JSON.stringify({ base })}\n`);
    fdatasyncSync(this.journal);
    this.lines = 0;
    this.counts.whole++;
    this.last = assignments;
  }
}

/**
 * The journal lines that take the table from `prev` to `next` (objects compared by identity;
 * each object is in a table once, as the allocator's assignments are, one per key). The same
 * objects at the same place from either end are neither added nor removed: only what lies
 * between is compared (a one-Service reload: one entry of 10,000, not two sets of 10,000).
 */
function changes(prev: readonly PlannedAssignment[], next: readonly PlannedAssignment[]): string[] {
  const m = prev.length;
  const n = next.length;
  const { head: p, tail: q } = sameEnds(prev, next);
  const was = prev.slice(p, m - q);
  const now = next.slice(p, n - q);
  const before = new Set(was);
  const lines: string[] = [];
  const added = new Set<string>();
  for (const a of now)
    if (!before.has(a)) {
      lines.push(JSON.stringify({ k: a.key, v: entryOf(a) }));
      added.add(a.key);
    }
  // Some of `prev` are not in `next`: removed, or replaced by another object for the same key.
  if (now.length - added.size !== was.length) {
    const after = new Set(now);
    for (const a of was)
      if (!after.has(a) && !added.has(a.key)) lines.push(JSON.stringify({ k: a.key, v: null }));
  }
  return lines;
}

/**
 * The state file's text: `JSON.stringify(heldState(...), null, 1)`, written out directly. Not
 * cached per assignment: the whole table is written at a process's first write and then only
 * when the journal has grown as large as it, and 10,000 cached entries (each a string of
 * strings) were ~2.5 MB of the daemon's heap for as long as the assignments lived.
 */
export function heldText(assignments: readonly PlannedAssignment[]): string {
  if (assignments.length === 0) return "{}\n";
  let out = "{\n";
  let sep = "";
  for (const a of assignments) {
    const ips =
      a.ips.length === 0
        ? "[]"
        : a.ips.length === 1
          ? `[\n   ${quoted(a.ips[0] as string)}\n  ]`
          : `[\n   ${a.ips.map(quoted).join(",\n   ")}\n  ]`;
    out += `${sep} ${quoted(a.key)}: {\n  "ips": ${ips},\n  "pool": ${quoted(a.pool)}\n }`;
    sep = ",\n";
  }
  return `${out}\n}\n`;
}

/** JSON.stringify of a string; printable ASCII but `"` and `\` (what it leaves as it is) only quoted. */
const PLAIN = /^[ !#-[\]-~]*$/;
const quoted = (s: string): string => (PLAIN.test(s) ? `"${s}"` : JSON.stringify(s));
