/**
 * Reloads on file change without a fixed debounce (src/appliance/run.ts watches; this decides
 * when a change is read and whether what was read may be applied).
 *
 * - A change event to a manifest (`*.yaml`, `*.yml`, `*.json`, or a name that may be a
 *   directory) starts a reload at once; one to any other name (an editor's temp or swap file)
 *   starts one after `otherMs`, so that a write-then-rename save is read once, at its rename.
 * - Events that arrive while a reload runs coalesce into one follow-up reload.
 * - Every file read is stamped (inode, size, mtime: `FileStamp`, taken with the read). Before a
 *   reload applies anything, `gate` checks the stamps:
 *   - a file that changed since it was read (stat differs): nothing is applied, the reload runs
 *     again (superseded);
 *   - a file written in place (the same inode as the last read of that path, or a path not
 *     read before) or empty, and modified less than `settleMs` ago: nothing is applied yet, the
 *     reload runs again once the file has been quiet for `settleMs` — an editor's truncate+write
 *     is never applied half-written, as long as it does not pause for `settleMs` mid-write (the
 *     same bound the old 150 ms debounce gave);
 *   - a file that replaced the path by rename (another inode than the last read's): applied at
 *     once — a rename is atomic, its file was complete before it (the fast path: what `PUT
 *     /api/v1/config`, editors' safe saves and configuration tools do);
 *   - a set that does not parse or validate, with a file modified less than `settleMs` ago: read
 *     again after the settle time before it is reported as rejected (a torn write).
 */

import { statSync } from "node:fs";
import { basename } from "node:path";

/** A manifest file as it was read: what tells whether it changed since. */
export interface FileStamp {
  file: string;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
}

/** What a reload found, as the gate weighs it. */
export type ReadOutcome = "valid" | "invalid" | "unchanged";

/** The gate's answer: apply (or report) what was read, or read again after `retryInMs`. */
export type GateVerdict = { retryInMs?: number | undefined };

/** A reload as the watcher calls it (Daemon.reload with the gate). */
export type GatedReload = (
  reason: string,
  gate: (stamps: readonly FileStamp[], outcome: ReadOutcome) => GateVerdict,
) => Promise<{ retryInMs?: number | undefined }>;

/** How long an in-place write must have been quiet before it is applied (ms). */
export const SETTLE_MS = 150;
/** A change to a name that is not a manifest: read after this long (ms). */
export const OTHER_NAME_MS = 150;
/** A file that changed while it was being read and checked: read again after this long (ms). */
const SUPERSEDED_MS = 5;

/** Whether a changed name can be a manifest or a directory holding some (dot names never are). */
export function manifestName(name: string | null | undefined): boolean {
  if (name === null || name === undefined) return true;
  const b = basename(name);
  if (b.startsWith(".")) return false;
  return /\.(ya?ml|json)$/.test(b) || !b.includes(".");
}

export interface ConfigWatchOptions {
  reload: GatedReload;
  settleMs?: number;
  otherMs?: number;
  /** Wall clock (ms), compared with file mtimes. */
  now?: () => number;
  stat?: (file: string) => { ino: bigint; size: bigint; mtimeNs: bigint } | undefined;
  onError?: (e: Error) => void;
}

const statNow = (file: string) => {
  try {
    const s = statSync(file, { bigint: true });
    return { ino: s.ino, size: s.size, mtimeNs: s.mtimeNs };
  } catch {
    return undefined;
  }
};

export class ConfigWatch {
  private running = false;
  private again: string | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private closed = false;
  /** Each path as its last read that ended in a verdict found it. */
  private readonly last = new Map<string, FileStamp>();
  private readonly settleMs: number;
  private readonly otherMs: number;
  private readonly now: () => number;
  private readonly stat: NonNullable<ConfigWatchOptions["stat"]>;
  /** Reloads run, by what started them (tests). */
  readonly counts = { runs: 0, retries: 0 };
  /** Resolves when no reload runs or waits (tests). */
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: ConfigWatchOptions) {
    this.settleMs = opts.settleMs ?? SETTLE_MS;
    this.otherMs = opts.otherMs ?? OTHER_NAME_MS;
    this.now = opts.now ?? Date.now;
    this.stat = opts.stat ?? statNow;
  }

  /** The reads of a reload that did not go through `gate` (the start's): their inodes count. */
  record(stamps: readonly FileStamp[]): void {
    for (const s of stamps) this.last.set(s.file, s);
  }

  /** A change event (`name`: the changed name, when the watcher says), or SIGHUP (`now`). */
  kick(reason: string, name?: string | null, opts: { now?: boolean } = {}): void {
    if (this.closed) return;
    if (opts.now === true || manifestName(name)) this.schedule(reason, 0);
    else this.schedule(reason, this.otherMs);
  }

  /** Stops: no reload starts after this. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.wake();
  }

  /** Resolves once no reload runs, waits or is due (tests). */
  idle(): Promise<void> {
    if (!this.busy()) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private busy(): boolean {
    return !this.closed && (this.running || this.timer !== undefined || this.again !== undefined);
  }

  private wake(): void {
    if (this.busy()) return;
    for (const r of this.idleWaiters.splice(0)) r();
  }

  private schedule(reason: string, ms: number): void {
    if (this.running) {
      // Coalesced: one follow-up after the reload that runs (sooner when this one is sooner).
      if (ms === 0) this.again = reason;
      else if (this.again === undefined) this.setTimer(reason, ms);
      return;
    }
    if (ms === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      void this.run(reason);
      return;
    }
    this.setTimer(reason, ms);
  }

  private setTimer(reason: string, ms: number): void {
    const at = performance.now() + ms;
    if (this.timer !== undefined && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      if (this.running) this.again ??= reason;
      else void this.run(reason);
    }, ms);
    this.timer.unref?.();
  }

  private async run(reason: string): Promise<void> {
    if (this.closed) return;
    this.running = true;
    this.counts.runs++;
    let retryInMs: number | undefined;
    try {
      retryInMs = (await this.opts.reload(reason, (stamps, outcome) => this.gate(stamps, outcome))).retryInMs;
    } catch (e) {
      this.opts.onError?.(e as Error);
    }
    this.running = false;
    if (this.closed) return this.wake();
    const again = this.again;
    this.again = undefined;
    if (again !== undefined) void this.run(again);
    else if (retryInMs !== undefined) {
      this.counts.retries++;
      this.setTimer(reason, retryInMs);
    }
    this.wake();
  }

  /** See the module comment. */
  gate(stamps: readonly FileStamp[], outcome: ReadOutcome): GateVerdict {
    const now = this.now();
    let wait = 0;
    for (const s of stamps) {
      const cur = this.stat(s.file);
      if (cur === undefined || cur.ino !== s.ino || cur.size !== s.size || cur.mtimeNs !== s.mtimeNs)
        return { retryInMs: SUPERSEDED_MS };
      if (outcome === "unchanged") continue;
      const last = this.last.get(s.file);
      // As the last read found it: not written since.
      if (last !== undefined && last.ino === s.ino && last.size === s.size && last.mtimeNs === s.mtimeNs)
        continue;
      // Not replaced by rename since the last read: written in place (or new, or empty).
      const inPlace = last === undefined || last.ino === s.ino || s.size === 0n;
      const age = now - Number(s.mtimeNs / 1_000_000n);
      if ((inPlace || outcome === "invalid") && age < this.settleMs)
        wait = Math.max(wait, this.settleMs - age);
    }
    if (wait > 0) return { retryInMs: Math.ceil(wait) };
    this.record(stamps);
    return {};
  }
}
