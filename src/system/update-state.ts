/**
 * The state of a system update on this node, as the API shows it: one update at a time, its
 * phase (receiving the bundle, checking its signature, installing into the other slot), its
 * progress, and how the last one ended. Pure: the clock is injected; nothing here touches disk.
 */

import type { Progress } from "./rauc.ts";

export type UpdatePhase = "receiving" | "checking" | "installing";

export interface UpdateResult {
  /** "installed": the other slot holds it, a reboot boots it; "refused": nothing changed. */
  result: "installed" | "refused" | "failed";
  /** Error code for refused/failed (e.g. InvalidBundle, PayloadTooLarge). */
  error?: string;
  message: string;
  bundleVersion?: string;
  bundleBytes?: number;
  slot?: string;
  by: string;
  startedAt: string;
  finishedAt: string;
}

export interface UpdateRunning {
  phase: UpdatePhase;
  percent: number;
  message: string;
  bytes: number;
  by: string;
  startedAt: string;
}

/**
 * What the watch stream says of an update (event type `update`): a phase change, progress
 * (receiving: bytes of the declared total, at most one event per percent or per 4 MiB when the
 * total is unknown; installing: RAUC's own progress lines), and the end with its result.
 */
export interface UpdateEvent {
  phase: UpdatePhase | "done";
  percent: number;
  message: string;
  bytes?: number;
  totalBytes?: number | null;
  result?: UpdateResult["result"];
  error?: string;
  bundleVersion?: string;
  slot?: string;
  by: string;
}

const UNKNOWN_TOTAL_STEP = 4 * 1024 * 1024;

export class UpdateTracker {
  private running: UpdateRunning | null = null;
  private last: UpdateResult | null;
  private total: number | null = null;
  private lastStep = -1;

  constructor(
    private readonly now: () => number,
    last: UpdateResult | null = null,
    private readonly onEvent: (e: UpdateEvent) => void = () => {},
  ) {
    this.last = last;
  }

  private emit(extra: Partial<UpdateEvent> = {}): void {
    const r = this.running;
    if (r === null) return;
    this.onEvent({ phase: r.phase, percent: r.percent, message: r.message, by: r.by, ...extra });
  }

  /** Starts an update for `by` (`totalBytes`: the declared size, if any); false when one is running. */
  begin(by: string, totalBytes: number | null = null): boolean {
    if (this.running !== null) return false;
    this.total = totalBytes;
    this.lastStep = -1;
    this.running = {
      phase: "receiving",
      percent: 0,
      message: "receiving the bundle",
      bytes: 0,
      by,
      startedAt: new Date(this.now()).toISOString(),
    };
    this.emit({ bytes: 0, totalBytes: totalBytes });
    return true;
  }

  received(bytes: number): void {
    const r = this.running;
    if (r?.phase !== "receiving") return;
    r.bytes = bytes;
    const total = this.total;
    const step =
      total !== null && total > 0
        ? Math.min(100, Math.floor((bytes * 100) / total))
        : Math.floor(bytes / UNKNOWN_TOTAL_STEP);
    if (total !== null && total > 0) r.percent = step;
    if (step === this.lastStep) return;
    this.lastStep = step;
    r.message = total !== null ? `received ${bytes} of ${total} bytes` : `received ${bytes} bytes`;
    this.emit({ bytes, totalBytes: total });
  }

  phase(phase: UpdatePhase, message: string): void {
    if (this.running === null) return;
    this.running.phase = phase;
    this.running.percent = 0;
    this.running.message = message;
    this.emit();
  }

  progress(p: Progress): void {
    const r = this.running;
    if (r === null) return;
    const percent = Math.max(r.percent, p.percent);
    if (r.phase === "installing" && percent === r.percent && p.message === r.message) return;
    r.phase = "installing";
    r.percent = percent;
    r.message = p.message;
    this.emit();
  }

  /** Ends the running update with its result; returns the result (also kept as the last one). */
  finish(r: Omit<UpdateResult, "by" | "startedAt" | "finishedAt">): UpdateResult {
    const run = this.running;
    const done: UpdateResult = {
      ...r,
      by: run?.by ?? "unknown",
      startedAt: run?.startedAt ?? new Date(this.now()).toISOString(),
      finishedAt: new Date(this.now()).toISOString(),
    };
    this.running = null;
    this.last = done;
    this.onEvent({
      phase: "done",
      percent: done.result === "installed" ? 100 : (run?.percent ?? 0),
      message: done.message,
      result: done.result,
      by: done.by,
      ...(done.error !== undefined ? { error: done.error } : {}),
      ...(done.bundleVersion !== undefined ? { bundleVersion: done.bundleVersion } : {}),
      ...(done.slot !== undefined ? { slot: done.slot } : {}),
      ...(done.bundleBytes !== undefined ? { bytes: done.bundleBytes } : {}),
    });
    return done;
  }

  current(): UpdateRunning | null {
    return this.running === null ? null : { ...this.running };
  }

  lastResult(): UpdateResult | null {
    return this.last;
  }
}

/** Reads a stored last result (JSON written by the driver); null when absent or not one. */
export function parseLastResult(text: string | null): UpdateResult | null {
  if (text === null) return null;
  try {
    const v = JSON.parse(text) as Partial<UpdateResult>;
    if (
      (v.result === "installed" || v.result === "refused" || v.result === "failed") &&
      typeof v.message === "string" &&
      typeof v.startedAt === "string" &&
      typeof v.finishedAt === "string"
    )
      return v as UpdateResult;
  } catch {
    // a torn or foreign file: no last result
  }
  return null;
}
