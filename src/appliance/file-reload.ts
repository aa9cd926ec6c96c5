/**
 * File reloads off the main thread: the manifest files' joined text goes to a worker of its own
 * (file-worker.ts), kept alive for its per-document cache, which pre-scans it (FILE_LIMITS),
 * parses and validates only the documents that changed, and answers with what changed since the
 * Config this side holds (config-delta.ts) — for one changed Service of 10,000, one object, not
 * the whole Config as JSON. This side applies it to its copy and hands on the new Config with the
 * change, so the daemon's work can follow the change too.
 *
 * One job at a time, at most `maxWaiting` queued; a job that runs past its time budget terminates
 * the worker (the next one starts without a cache and answers with the whole Config): the
 * pump is src/util/worker-queue.ts, shared with the API's body checker.
 */

import { FILE_LIMITS, MAX_PROBLEMS, type PrescanReason, type TextLimits } from "../config/budget.ts";
import type { Config, Problem } from "../config/index.ts";
import { type Handled, WorkerQueue } from "../util/worker-queue.ts";
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

export class FileReloader {
  /** One job at a time in one worker, with a time budget (src/util/worker-queue.ts). */
  private readonly queue: WorkerQueue<FileJob, FileReply, FileVerdict>;
  /** The last valid Config and its number in the worker (0: the worker has none of ours). */
  private held: Config | undefined;
  private seq = 0;
  /** Answers by kind, for tests. */
  readonly counts = { full: 0, delta: 0 };

  constructor(private readonly opts: { limits?: TextLimits; timeoutMs?: number; maxWaiting?: number } = {}) {
    this.queue = new WorkerQueue<FileJob, FileReply, FileVerdict>({
      url: WORKER_URL,
      maxWaiting: opts.maxWaiting ?? 8,
      verdicts: {
        busy: (waiting) => ({ kind: "busy", waiting }),
        closed: () => ({ kind: "failed", message: "vipd is shutting down" }),
        timeout: (ms) => ({ kind: "timeout", ms }),
        failed: (message) => ({ kind: "failed", message: `the file worker failed: ${message}` }),
      },
      // A new worker starts without a cache: it answers with the whole Config.
      onRetire: () => {
        this.seq = 0;
        this.held = undefined;
      },
    });
  }

  /** Pre-scans, parses and validates `text` in the worker. Never throws. */
  check(text: string, opts: { file?: string; timeoutMs?: number } = {}): Promise<FileVerdict> {
    const make = (id: number) => ({
      job: {
        id,
        text,
        file: opts.file ?? "<files>",
        limits: this.opts.limits ?? FILE_LIMITS,
        maxProblems: MAX_PROBLEMS,
        // Read when the job starts: the Config the jobs before it left.
        have: this.seq,
      } satisfies FileJob,
    });
    return this.queue.submit(make, opts.timeoutMs ?? this.opts.timeoutMs ?? 120_000, (r) => this.handle(r));
  }

  /** Terminates the worker; queued jobs fail. */
  close(): void {
    this.queue.close();
  }

  private handle(r: FileReply): Handled<FileVerdict> | undefined {
    switch (r.kind) {
      case "ready":
        return undefined;
      case "refused":
        return {
          verdict: { kind: "refused", reason: r.reason as PrescanReason, line: r.line, message: r.message },
          keep: true,
        };
      case "invalid":
        return { verdict: { kind: "invalid", problems: r.problems, omitted: r.omitted }, keep: true };
      case "full": {
        const config = JSON.parse(r.configJson) as Config;
        this.held = config;
        this.seq = r.seq;
        this.counts.full++;
        return { verdict: { kind: "valid", config }, keep: true };
      }
      case "delta": {
        const base = this.held;
        // Cannot happen (the worker answers a delta against what this side named): start over.
        if (base === undefined || r.base !== this.seq)
          return {
            verdict: { kind: "failed", message: "the file worker answered against another Config" },
            keep: false,
          };
        const delta = JSON.parse(r.deltaJson) as ConfigDelta;
        const config = applyDelta(base, delta);
        this.held = config;
        this.seq = r.seq;
        this.counts.delta++;
        return { verdict: { kind: "valid", config, change: { base, delta } }, keep: true };
      }
      case "error":
        return { verdict: { kind: "failed", message: r.message }, keep: false };
    }
  }
}
