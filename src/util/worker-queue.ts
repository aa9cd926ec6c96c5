/**
 * One Bun Worker fed one job at a time, with a time budget per job and a bounded queue: the pump
 * the API's body checker (src/api/body-check.ts) and the appliance's file reloader
 * (src/appliance/file-reload.ts) share.
 *
 * - `submit` queues a job; with a job running and `maxWaiting` queued it answers `busy` at once;
 *   after `close` it answers `closed` at once.
 * - The job is made when it starts (`make(id)`), so it can carry what the previous job left.
 * - Each message whose `id` is the job's goes to `reply`, which answers the verdict and whether the
 *   worker may be kept (undefined: not the answer yet, wait for another message). Messages with
 *   another id (a "ready" message, a late answer of a job that timed out) are ignored.
 * - A job that runs past its time budget, or a worker error, terminates the worker (`onRetire`
 *   is told); the next job starts a fresh one.
 *
 * @example
 * const q = new WorkerQueue<Job, Reply, Verdict>({ url, maxWaiting: 4, verdicts });
 * const v = await q.submit((id) => ({ job: { id, text } }), 30_000, (r) => ({ verdict: r, keep: true }));
 */

export interface WorkerQueueVerdicts<V> {
  /** The queue is full: `waiting` jobs wait behind the running one. */
  busy(waiting: number): V;
  /** The queue was closed (before or while the job waited). */
  closed(): V;
  /** The job ran past its budget (`ms` since it started). */
  timeout(ms: number): V;
  /** The worker failed (an error event). */
  failed(message: string): V;
}

export interface WorkerQueueOptions<V> {
  /** The worker's module URL. */
  url: string;
  /** Jobs queued behind the running one before more are refused. */
  maxWaiting: number;
  verdicts: WorkerQueueVerdicts<V>;
  /** Told of each verdict a job ended with (busy refusals included; not `closed`). */
  settled?: ((v: V) => void) | undefined;
  /** Told when the worker is terminated (a timeout, a failure, a reply that asked, close). */
  onRetire?: (() => void) | undefined;
}

/** A job's reply handled: its verdict, and whether the worker is kept for the next job. */
export interface Handled<V> {
  verdict: V;
  keep: boolean;
}

interface Pending<M extends { id: number }, R extends { id: number }, V> {
  make(id: number): { job: M; transfer?: ArrayBuffer[] | undefined };
  timeoutMs: number;
  reply(r: R): Handled<V> | undefined;
  resolve(v: V): void;
}

export class WorkerQueue<M extends { id: number }, R extends { id: number }, V> {
  private worker: Worker | undefined;
  private running = false;
  private readonly queue: Pending<M, R, V>[] = [];
  private nextId = 1;
  private closed = false;

  constructor(private readonly opts: WorkerQueueOptions<V>) {}

  /** Whether a job runs now. */
  get busy(): boolean {
    return this.running;
  }

  /** Queues a job; never throws. */
  submit(make: Pending<M, R, V>["make"], timeoutMs: number, reply: Pending<M, R, V>["reply"]): Promise<V> {
    if (this.closed) return Promise.resolve(this.opts.verdicts.closed());
    if (this.running && this.queue.length >= this.opts.maxWaiting) {
      const v = this.opts.verdicts.busy(this.queue.length);
      this.opts.settled?.(v);
      return Promise.resolve(v);
    }
    return new Promise((resolve) => {
      this.queue.push({ make, timeoutMs, reply, resolve });
      this.pump();
    });
  }

  /** Starts a worker ahead of the first job (its modules load on its own thread). */
  warm(): void {
    if (!this.closed && this.worker === undefined) this.worker = this.spawn();
  }

  /** Terminates the worker; queued jobs answer `closed`. */
  close(): void {
    this.closed = true;
    this.retire();
    for (const p of this.queue.splice(0)) p.resolve(this.opts.verdicts.closed());
  }

  private spawn(): Worker {
    const w = new Worker(this.opts.url);
    w.unref();
    return w;
  }

  private retire(): void {
    this.worker?.terminate();
    this.worker = undefined;
    this.opts.onRetire?.();
  }

  private pump(): void {
    if (this.running || this.closed) return;
    const next = this.queue.shift();
    if (next === undefined) return;
    this.running = true;
    this.worker ??= this.spawn();
    const w = this.worker;
    const id = this.nextId++;
    const { job, transfer } = next.make(id);
    const t0 = performance.now();
    let settled = false;
    const finish = (v: V, keepWorker: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      w.removeEventListener("message", onMessage);
      w.removeEventListener("error", onError);
      if (!keepWorker && this.worker === w) this.retire();
      this.opts.settled?.(v);
      this.running = false;
      next.resolve(v);
      this.pump();
    };
    const onMessage = (ev: MessageEvent<R>) => {
      if (ev.data.id !== id) return; // "ready", or a late answer from an earlier job
      const h = next.reply(ev.data);
      if (h !== undefined) finish(h.verdict, h.keep);
    };
    const onError = (ev: ErrorEvent) => finish(this.opts.verdicts.failed(ev.message), false);
    const timer = setTimeout(
      () => finish(this.opts.verdicts.timeout(performance.now() - t0), false),
      next.timeoutMs,
    );
    w.addEventListener("message", onMessage);
    w.addEventListener("error", onError);
    w.postMessage(job, transfer ?? []);
  }
}
