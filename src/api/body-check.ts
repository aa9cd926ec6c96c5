/**
 * Checks untrusted manifest text off the main thread, within a budget. The API's
 * `POST /config/validate` and `PUT /config` hand their body here; a Bun Worker (body-worker.ts)
 * pre-scans and parses it, so the main thread — heartbeats, BFD, XDP liveness, `/livez` — never
 * waits for the YAML parser.
 *
 * Budgets:
 * - size, documents, nesting depth and nodes: checked by the pre-scan before the parser runs
 *   (src/config/budget.ts), so the parser's memory is bounded by the text;
 * - time: a job that takes longer than `timeoutMs` terminates its worker (a fresh one is started);
 * - concurrency: one job at a time, at most `maxWaiting` queued; more are refused (`busy`);
 * - output: at most `maxProblems` problems, then "and K more".
 *
 * One worker is kept warm and reused while its jobs stay small; a worker that parsed a large text
 * (its heap grew) or timed out is terminated and replaced, which gives its memory back.
 *
 * @example
 * const checker = new BodyChecker();
 * const v = await checker.check(yamlText, { wantConfig: true });
 * if (v.kind === "valid") apply(v.config);
 * checker.close();
 */

import { BODY_LIMITS, MAX_PROBLEMS, type PrescanReason, type TextLimits } from "../config/budget.ts";
import type { Config, Problem } from "../config/index.ts";
import { siteText } from "../config/site-text.ts";
import { type Handled, WorkerQueue } from "../util/worker-queue.ts";
import type { CheckJob, CheckReply, ConfigSummary } from "./body-protocol.ts";

export type CheckVerdict =
  | { kind: "refused"; reason: PrescanReason; line: number; message: string }
  | { kind: "invalid"; problems: Problem[]; omitted: number }
  | { kind: "valid"; summary: ConfigSummary; config?: Config }
  | { kind: "timeout"; ms: number }
  | { kind: "busy"; waiting: number }
  | { kind: "failed"; message: string };

/** What the worker may answer: a verdict, or a site text (siteText()). */
type WorkerVerdict = CheckVerdict | { kind: "siteText"; text: string };

export interface BodyCheckerOptions {
  limits?: TextLimits;
  /**
   * Time budget of one job, from the moment it starts (default 30 s: a valid 1 MiB set of 8,300
   * Services took 14–17 s in the worker on a 2-core machine with a load average of 20).
   */
  timeoutMs?: number;
  /** Jobs queued behind the running one before new ones are refused (default 4). */
  maxWaiting?: number;
  maxProblems?: number;
  /** A worker that parsed more than this many characters is replaced afterwards (64 KiB). */
  recycleAbove?: number;
}

/**
 * The worker's module. A `bun build --compile` executable holds it only when it is built as a
 * second entry point (`bun build --compile src/main.ts src/api/body-worker.ts`, as image/build.sh
 * does); Bun then names it after its path below the entry points' common folder (src/).
 */
const WORKER_URL = import.meta.url.includes("/$bunfs/")
  ? new URL("./api/body-worker.js", import.meta.url).href
  : new URL("./body-worker.ts", import.meta.url).href;

export class BodyChecker {
  readonly limits: TextLimits;
  readonly timeoutMs: number;
  private readonly maxProblems: number;
  private readonly recycleAbove: number;
  /** One job at a time in one worker, with a time budget (src/util/worker-queue.ts). */
  private readonly queue: WorkerQueue<CheckJob, CheckReply, WorkerVerdict>;
  /** Jobs by outcome, for tests and metrics. */
  readonly counts = { refused: 0, invalid: 0, valid: 0, siteText: 0, timeout: 0, busy: 0, failed: 0 };

  constructor(opts: BodyCheckerOptions = {}) {
    this.limits = opts.limits ?? BODY_LIMITS;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxProblems = opts.maxProblems ?? MAX_PROBLEMS;
    this.recycleAbove = opts.recycleAbove ?? 64 * 1024;
    this.queue = new WorkerQueue<CheckJob, CheckReply, WorkerVerdict>({
      url: WORKER_URL,
      maxWaiting: opts.maxWaiting ?? 4,
      verdicts: {
        busy: (waiting) => ({ kind: "busy", waiting }),
        closed: () => ({ kind: "failed", message: "the API is shutting down" }),
        timeout: (ms) => ({ kind: "timeout", ms }),
        failed: (message) => ({ kind: "failed", message: `the validation worker failed: ${message}` }),
      },
      settled: (v) => this.counts[v.kind]++,
    });
  }

  /**
   * Pre-scans, parses and validates `text` in the worker. Never throws. Bytes (UTF-8, checked by
   * the caller: request-body.ts readYamlBytes) are moved to the worker, not copied, and decoded
   * there: the caller's array is empty (detached) afterwards.
   */
  check(
    text: string | Uint8Array,
    opts: { file?: string; wantConfig?: boolean; timeoutMs?: number } = {},
  ): Promise<CheckVerdict> {
    return this.submit(text, opts) as Promise<CheckVerdict>;
  }

  /**
   * The site objects of `text` (src/config/site-text.ts), made in the worker without a budget
   * check (the text was checked already); undefined when the worker failed, timed out or was busy.
   */
  async siteText(text: string, opts: { timeoutMs?: number } = {}): Promise<string | undefined> {
    const v = await this.submit(text, { ...opts, file: "<site>", op: "siteText" });
    return v.kind === "siteText" ? v.text : undefined;
  }

  private submit(
    text: string | Uint8Array,
    opts: { file?: string; wantConfig?: boolean; timeoutMs?: number; op?: CheckJob["op"] },
  ): Promise<WorkerVerdict> {
    const bytes = typeof text === "string" ? undefined : wholeBuffer(text);
    const size = typeof text === "string" ? text.length : text.byteLength;
    const make = (id: number) => ({
      job: {
        id,
        text: typeof text === "string" ? text : "",
        ...(bytes !== undefined ? { bytes } : {}),
        file: opts.file ?? "<request>",
        limits: this.limits,
        maxProblems: this.maxProblems,
        wantConfig: opts.wantConfig === true,
        ...(opts.op !== undefined ? { op: opts.op } : {}),
      } satisfies CheckJob,
      transfer: bytes !== undefined ? [bytes] : [],
    });
    return this.queue.submit(make, opts.timeoutMs ?? this.timeoutMs, (r) => this.handle(r, size));
  }

  /** A reply's verdict; a worker that parsed a large text is replaced (its heap grew). */
  private handle(r: CheckReply, size: number): Handled<WorkerVerdict> | undefined {
    const keep = !(size > this.recycleAbove && r.kind !== "refused");
    switch (r.kind) {
      case "refused":
        return {
          verdict: { kind: "refused", reason: r.reason as PrescanReason, line: r.line, message: r.message },
          keep: true,
        };
      case "invalid":
        return { verdict: { kind: "invalid", problems: r.problems, omitted: r.omitted }, keep };
      case "valid":
        return {
          verdict: {
            kind: "valid",
            summary: r.summary,
            ...(r.configJson !== undefined ? { config: JSON.parse(r.configJson) as Config } : {}),
          },
          keep,
        };
      case "siteText":
        return { verdict: { kind: "siteText", text: r.text }, keep };
      case "error":
        return { verdict: { kind: "failed", message: r.message }, keep: false };
      case "ready":
        return undefined;
    }
  }

  /** Terminates the worker; queued jobs fail. */
  close(): void {
    this.queue.close();
  }

  /** Starts a worker ahead of the first request (its modules load on its own thread). */
  warm(): void {
    this.queue.warm();
  }
}

/** The ArrayBuffer holding exactly `b` (its own when `b` covers all of it, else a copy), to transfer. */
function wholeBuffer(b: Uint8Array): ArrayBuffer {
  if (b.buffer instanceof ArrayBuffer && b.byteOffset === 0 && b.byteLength === b.buffer.byteLength)
    return b.buffer;
  return b.slice().buffer;
}

/** Below this size the site text is made on the calling thread (a round trip costs more). */
const SITE_TEXT_INLINE = 64 * 1024;
let siteTextChecker: BodyChecker | undefined;

/**
 * `siteText` (src/config/site-text.ts) of a large text in a body worker of its own, so that
 * re-printing 10,000 Services (seconds) never holds the main thread; a small text, or one the
 * worker could not handle (it failed or ran past 120 s), is done on this thread.
 */
export async function siteTextOffThread(text: string): Promise<string> {
  if (text.length < SITE_TEXT_INLINE) return siteText(text);
  siteTextChecker ??= new BodyChecker({ timeoutMs: 120_000, maxWaiting: 64 });
  return (await siteTextChecker.siteText(text)) ?? siteText(text);
}
