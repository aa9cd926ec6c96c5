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

export class UpdateTracker {
  private running: UpdateRunning | null = null;
  private last: UpdateResult | null;

  constructor(
    private readonly now: () => number,
    last: UpdateResult | null = null,
  ) {
    this.last = last;
  }

  /** Starts an update for `by`; false when one is already running. */
  begin(by: string): boolean {
    if (this.running !== null) return false;
    this.running = {
      phase: "receiving",
      percent: 0,
      message: "receiving the bundle",
      bytes: 0,
      by,
      startedAt: new Date(this.now()).toISOString(),
    };
    return true;
  }

  received(bytes: number): void {
    if (this.running?.phase === "receiving") this.running.bytes = bytes;
  }

  phase(phase: UpdatePhase, message: string): void {
    if (this.running === null) return;
    this.running.phase = phase;
    this.running.message = message;
  }

  progress(p: Progress): void {
    if (this.running === null) return;
    this.running.phase = "installing";
    this.running.percent = Math.max(this.running.percent, p.percent);
    this.running.message = p.message;
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
