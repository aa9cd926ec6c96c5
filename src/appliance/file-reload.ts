/**
 * File reloads off the main thread: the manifest files' joined text goes to a worker of its own
 * (file-worker.ts), kept alive for its per-document cache, which pre-scans it (FILE_LIMITS),
 * parses and validates only the documents that changed, and answers with what changed since the
 * Config this side holds (config-delta.ts) — for one changed Service of 10,000, one object, not
 * the whole Config as JSON. This side applies it to its copy and hands on the new Config with the
 * change, so the daemon's work can follow the change too.
 *
 * One job at a time, at most `maxWaiting` queued; a job that runs past its time budget terminates
 * the worker (the next one starts without a cache and answers with the whole Config).
 */

import { FILE_LIMITS, MAX_PROBLEMS, type PrescanReason, type TextLimits } from "../config/budget.ts";
import type { Config, Problem } from "../config/index.ts";
import { applyDelta, type ConfigDelta } from "./config-delta.ts";

export interface FileJob {
  id: number;
  text: string;
  /** Source name in problems (their lines are the joined text's; the caller maps them back). */
  file: string;
  limits: TextLimits;
  maxProblems: number;
  /** The number of the Config this side holds (0: none): a delta is made against it only. */
  have: number;
}

export type FileReply =
  | { id: number; kind: "ready" }
  | { id: number; kind: "refused"; reason: string; line: number; message: string }
  | { id: number; kind: "invalid"; problems: Problem[]; omitted: number }
  /** The Config numbered `seq`, as JSON text (one string crosses threads as one copy). */
  | { id: number; kind: "full"; seq: number; configJson: string }
  /** What changed from Config `base` to Config `seq` (config-delta.ts), as JSON text. */
  | { id: number; kind: "delta"; seq: number; base: number; deltaJson: string }
  | { id: number; kind: "error"; message: string };

/** A valid set's change from the Config the previous valid reload gave (`base`). */
export interface FileChange {
  base: Config;
  delta: ConfigDelta;
}

export type FileVerdict =
  | { kind: "refused"; reason: PrescanReason; line: number; message: string }
  | { kind: "invalid"; problems: Problem[]; omitted: number }
  | { kind: "valid"; config: Config; change?: FileChange | undefined }
  | { kind: "timeout"; ms: number }
  | { kind: "busy"; waiting: number }
  | { kind: "failed"; message: string };

/**
 * The worker's module. A `bun build --compile` executable holds it only when it is built as an
 * extra entry point (`bun build --compile src/main.ts src/appliance/file-worker.ts ...`); Bun
 * then names it after its path below the entry points' common folder (src/).
 */
const WORKER_URL = import.meta.url.includes("/$bunfs/")
  ? new URL("./appliance/file-worker.js", import.meta.url).href
  : new URL("./file-worker.ts", import.meta.url).href;

interface Pending {
  text: string;
  file: string;
  timeoutMs: number;
  resolve(v: FileVerdict): void;
}

export class FileReloader {
  private worker: Worker | undefined;
  private running = false;
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;
  /** The last valid Config and its number in the worker (0: the worker has none of ours). */
  private held: Config | undefined;
  private seq = 0;
  /** Answers by kind, for tests. */
  readonly counts = { full: 0, delta: 0 };

  constructor(private readonly opts: { limits?: TextLimits; timeoutMs?: number; maxWaiting?: number } = {}) {}

  /** Pre-scans, parses and validates `text` in the worker. Never throws. */
  check(text: string, opts: { file?: string; timeoutMs?: number } = {}): Promise<FileVerdict> {
    if (this.closed) return Promise.resolve({ kind: "failed", message: "vipd is shutting down" });
    const maxWaiting = this.opts.maxWaiting ?? 8;
    if (this.running && this.queue.length >= maxWaiting)
      return Promise.resolve({ kind: "busy", waiting: this.queue.length });
    return new Promise((resolve) => {
      this.queue.push({
        text,
        file: opts.file ?? "<files>",
        timeoutMs: opts.timeoutMs ?? this.opts.timeoutMs ?? 120_000,
        resolve,
      });
      this.pump();
    });
  }

  /** Terminates the worker; queued jobs fail. */
  close(): void {
    this.closed = true;
    this.retire();
    for (const p of this.queue.splice(0)) p.resolve({ kind: "failed", message: "vipd is shutting down" });
  }

  private retire(): void {
    this.worker?.terminate();
    this.worker = undefined;
    this.seq = 0;
    this.held = undefined;
  }

  private pump(): void {
    if (this.running || this.closed) return;
    const next = this.queue.shift();
    if (next === undefined) return;
    this.running = true;
    if (this.worker === undefined) {
      this.worker = new Worker(WORKER_URL);
      this.worker.unref();
    }
    const w = this.worker;
    const id = this.nextId++;
    const t0 = performance.now();
    let settled = false;
    const finish = (v: FileVerdict, keepWorker: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      w.removeEventListener("message", onMessage);
      w.removeEventListener("error", onError);
      if (!keepWorker && this.worker === w) this.retire();
      this.running = false;
      next.resolve(v);
      this.pump();
    };
    const onMessage = (ev: MessageEvent<FileReply>) => {
      const r = ev.data;
      if (r.id !== id) return; // "ready", or a late answer from an earlier job
      switch (r.kind) {
        case "refused":
          finish(
            { kind: "refused", reason: r.reason as PrescanReason, line: r.line, message: r.message },
            true,
          );
          break;
        case "invalid":
          finish({ kind: "invalid", problems: r.problems, omitted: r.omitted }, true);
          break;
        case "full": {
          const config = JSON.parse(r.configJson) as Config;
          this.held = config;
          this.seq = r.seq;
          this.counts.full++;
          finish({ kind: "valid", config }, true);
          break;
        }
        case "delta": {
          const base = this.held;
          if (base === undefined || r.base !== this.seq) {
            // Cannot happen (the worker answers a delta against what this side named): start over.
            finish({ kind: "failed", message: "the file worker answered against another Config" }, false);
            break;
          }
          const delta = JSON.parse(r.deltaJson) as ConfigDelta;
          const config = applyDelta(base, delta);
          this.held = config;
          this.seq = r.seq;
          this.counts.delta++;
          finish({ kind: "valid", config, change: { base, delta } }, true);
          break;
        }
        case "error":
          finish({ kind: "failed", message: r.message }, false);
          break;
      }
    };
    const onError = (ev: ErrorEvent) => {
      finish({ kind: "failed", message: `the file worker failed: ${ev.message}` }, false);
    };
    const timer = setTimeout(
      () => finish({ kind: "timeout", ms: performance.now() - t0 }, false),
      next.timeoutMs,
    );
    w.addEventListener("message", onMessage);
    w.addEventListener("error", onError);
    w.postMessage({
      id,
      text: next.text,
      file: next.file,
      limits: this.opts.limits ?? FILE_LIMITS,
      maxProblems: MAX_PROBLEMS,
      have: this.seq,
    } satisfies FileJob);
  }
}
