/**
 * Informer: a local copy of one collection, kept current by list + watch, and robust to everything
 * a watch does in practice:
 *
 * - any error or end of the stream → watch again from the last resourceVersion, with exponential
 *   backoff (the client's own informer stops for good on errors other than 410);
 * - ERROR 410 Gone (as an event, or as the HTTP status) → relist; a relist replaces the store and
 *   reports the differences as events, so consumers never see a gap;
 * - BOOKMARK → only the resourceVersion moves;
 * - no event (bookmarks included) for `inactivityMs` → the stream is presumed dead and restarted
 *   (client-node 1.4.0 has no such timeout, and a half-open TCP stream would never end);
 * - while the API server is unreachable the store keeps the last known state: nothing is
 *   withdrawn because a watch broke.
 *
 * Objects are kept as they were parsed (plain JSON: the list's and the watch's own copies, never
 * cloned again), with `metadata` present and without `metadata.managedFields`, which vipd never
 * reads and which is often the larger part of an object.
 */

import { type Kube, KubeError, type KubeObject, objectKey, type WatchEvent } from "./client.ts";

export type ChangeType = "ADDED" | "MODIFIED" | "DELETED";

export interface InformerOptions {
  /** Restart the watch when nothing arrived for this long (default 60 s). */
  inactivityMs?: number;
  /** Backoff between failed attempts: initial and maximum (default 200 ms .. 10 s). */
  backoffMs?: readonly [number, number];
  /** Server-side watch timeout in seconds (default 300; the watch is simply restarted). */
  watchTimeoutSeconds?: number;
  onChange?: (type: ChangeType, obj: KubeObject, old: KubeObject | undefined) => void;
  onError?: (err: unknown) => void;
}

export class Informer {
  private readonly store = new Map<string, KubeObject>();
  private rv = "";
  private stopWatch: (() => void) | undefined;
  private stopped = true;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inactivity: ReturnType<typeof setTimeout> | undefined;
  private attempt = 0;
  private generation = 0;
  private syncedOnce = false;
  private readonly syncWaiters: (() => void)[] = [];
  /** Counters: lists, watches started, 410s, errors, inactivity restarts. */
  readonly stats = { lists: 0, watches: 0, gone: 0, errors: 0, inactive: 0 };

  constructor(
    private readonly kube: Kube,
    readonly path: string,
    private readonly opts: InformerOptions = {},
  ) {}

  get synced(): boolean {
    return this.syncedOnce;
  }

  get resourceVersion(): string {
    return this.rv;
  }

  /** Resolves after the first successful list. */
  waitSynced(): Promise<void> {
    return this.syncedOnce ? Promise.resolve() : new Promise((r) => this.syncWaiters.push(r));
  }

  list(): KubeObject[] {
    return [...this.store.values()];
  }

  get(key: string): KubeObject | undefined {
    return this.store.get(key);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.relist();
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    clearTimeout(this.timer);
    clearTimeout(this.inactivity);
    this.stopWatch?.();
    this.stopWatch = undefined;
  }

  private retry(err: unknown, relist: boolean): void {
    if (this.stopped) return;
    this.stats.errors++;
    this.opts.onError?.(err);
    const [lo, hi] = this.opts.backoffMs ?? [200, 10_000];
    const delay = Math.min(hi, lo * 2 ** Math.min(this.attempt, 16)) * (0.8 + Math.random() * 0.4);
    this.attempt++;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void (relist ? this.relist() : this.startWatch()), delay);
  }

  private emit(type: ChangeType, obj: KubeObject, old: KubeObject | undefined): void {
    try {
      this.opts.onChange?.(type, obj, old);
    } catch (e) {
      this.opts.onError?.(e);
    }
  }

  private async relist(): Promise<void> {
    const gen = ++this.generation;
    this.stopWatch?.();
    this.stopWatch = undefined;
    let list: Awaited<ReturnType<Kube["list"]>>;
    try {
      this.stats.lists++;
      list = await this.kube.list(this.path);
    } catch (e) {
      if (gen === this.generation) this.retry(e, true);
      return;
    }
    if (gen !== this.generation || this.stopped) return;
    const seen = new Set<string>();
    for (const raw of list.items) {
      const obj = normalise(raw);
      const key = objectKey(obj);
      seen.add(key);
      const old = this.store.get(key);
      if (old?.metadata.resourceVersion === obj.metadata.resourceVersion && old !== undefined) continue;
      this.store.set(key, obj);
      this.emit(old ? "MODIFIED" : "ADDED", obj, old);
    }
    for (const [key, old] of [...this.store]) {
      if (seen.has(key)) continue;
      this.store.delete(key);
      this.emit("DELETED", old, old);
    }
    this.rv = list.metadata.resourceVersion ?? "";
    if (!this.syncedOnce) {
      this.syncedOnce = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    await this.startWatch();
  }

  /** When the open watch last heard something (the inactivity timer checks it when it fires). */
  private heard = 0;

  /** Starts the inactivity timer of watch `gen`; an event only moves `heard` (no timer per event). */
  private armInactivity(gen: number): void {
    clearTimeout(this.inactivity);
    const ms = this.opts.inactivityMs ?? 60_000;
    this.heard = performance.now();
    const check = () => {
      if (gen !== this.generation || this.stopped) return;
      const quiet = performance.now() - this.heard;
      if (quiet < ms) {
        this.inactivity = setTimeout(check, ms - quiet);
        return;
      }
      this.stats.inactive++;
      this.generation++;
      this.stopWatch?.();
      this.stopWatch = undefined;
      void this.startWatch();
    };
    this.inactivity = setTimeout(check, ms);
  }

  private async startWatch(): Promise<void> {
    if (this.stopped) return;
    const gen = ++this.generation;
    this.stats.watches++;
    this.armInactivity(gen);
    let ended = false;
    const end = (err: unknown, relist: boolean) => {
      if (ended || gen !== this.generation) return;
      ended = true;
      clearTimeout(this.inactivity);
      this.stopWatch?.();
      this.stopWatch = undefined;
      if (this.stopped) return;
      if (relist) {
        this.stats.gone++;
        this.generation++;
        void this.relist();
      } else if (err) this.retry(err, false);
      else {
        // A clean end (server-side timeout): watch again at once.
        this.attempt = 0;
        void this.startWatch();
      }
    };
    const onEvent = (e: WatchEvent) => {
      if (ended || gen !== this.generation) return;
      this.heard = performance.now();
      this.attempt = 0;
      if (e.type === "ERROR") {
        const st = e.object as { code?: number; message?: string };
        end(new KubeError(st.code ?? 500, "WatchError", st.message ?? "watch error"), st.code === 410);
        return;
      }
      const obj = normalise(e.object as KubeObject);
      if (obj.metadata?.resourceVersion) this.rv = obj.metadata.resourceVersion;
      if (e.type === "BOOKMARK") return;
      const key = objectKey(obj);
      const old = this.store.get(key);
      if (e.type === "DELETED") {
        if (old === undefined) return;
        this.store.delete(key);
        this.emit("DELETED", obj, old);
      } else {
        this.store.set(key, obj);
        this.emit(old ? "MODIFIED" : "ADDED", obj, old);
      }
    };
    try {
      const stop = await this.kube.watch(
        this.path,
        {
          resourceVersion: this.rv,
          allowWatchBookmarks: "true",
          timeoutSeconds: String(this.opts.watchTimeoutSeconds ?? 300),
        },
        onEvent,
        (err) => {
          const status = (err as { statusCode?: number } | null)?.statusCode;
          end(err ?? null, status === 410);
        },
      );
      if (ended || gen !== this.generation) stop();
      else this.stopWatch = stop;
    } catch (e) {
      end(e, (e as { statusCode?: number }).statusCode === 410);
    }
  }
}

/**
 * The object as the informer keeps it: `metadata` present, `managedFields` dropped. The object is
 * the informer's own (freshly parsed from a list page or a watch event), so it is changed in place.
 */
export function normalise(o: KubeObject): KubeObject {
  o.metadata ??= { name: "" };
  delete o.metadata.managedFields;
  return o;
}
