/**
 * The controller's merge patches, waiting as data: one entry per target (`status:ns/name`,
 * `meta:ns/name`, `pool:ns/name`) holding the path, the JSON body and the resourceVersion the
 * decision was based on. At most `concurrency` per priority are handed to the client at once;
 * the rest wait here. After a burst of 10,000 new Services as many statuses and annotations
 * wait: as data they cost ~200 bytes each, where a pending request (its promises, closures, the
 * patch object and the Service version it was made from) cost several kilobytes and kept an old
 * version of every Service alive until it was sent.
 *
 * A newer decision for a target that is still waiting replaces the waiting one (only the last
 * is sent); a target is never written twice at once (a new body waits until the one in flight
 * is answered), so the last decision is the one that lands.
 */

import { type Kube, KubeError } from "./client.ts";

interface Entry {
  path: string;
  body: string;
  basis: string;
}

export interface PatchQueueOptions {
  /** Patches handed to the client at once, per priority (default 128 normal, 32 low). */
  concurrency?: { normal: number; low: number };
  /** A write failed (other than 404: the object was deleted meanwhile). */
  onError: (target: string, err: unknown) => void;
  /** A write was answered (for idle waiters). */
  onSettled: () => void;
}

export class PatchQueue {
  private readonly waiting = { normal: new Map<string, Entry>(), low: new Map<string, Entry>() };
  /** Targets in flight: the body being written. */
  private readonly inFlight = new Map<string, string>();
  private readonly sending = { normal: 0, low: 0 };
  private readonly concurrency: { normal: number; low: number };
  /** Writes done, by target: the body written and the resourceVersion it was based on. */
  readonly done = new Map<string, { body: string; basis: string }>();

  constructor(
    private readonly kube: Kube,
    private readonly opts: PatchQueueOptions,
  ) {
    this.concurrency = opts.concurrency ?? { normal: 128, low: 32 };
  }

  /** Writes waiting or in flight. */
  get size(): number {
    return this.waiting.normal.size + this.waiting.low.size + this.inFlight.size;
  }

  /** True when this body is already waiting or in flight for `target`. */
  has(target: string, body: string): boolean {
    return (
      this.inFlight.get(target) === body ||
      this.waiting.normal.get(target)?.body === body ||
      this.waiting.low.get(target)?.body === body
    );
  }

  /**
   * The object of `target` is now at `rv`: a write done from another version is forgotten (it
   * only stops the same write from being sent again before the informer sees its result).
   */
  settle(target: string, rv: string): void {
    const d = this.done.get(target);
    if (d !== undefined && d.basis !== rv) this.done.delete(target);
  }

  /** Queues a merge patch (replacing one still waiting for the same target). */
  put(target: string, path: string, body: string, basis: string, low: boolean): void {
    const q = low ? this.waiting.low : this.waiting.normal;
    q.delete(target); // a replaced decision goes to the end, as a new write would
    q.set(target, { path, body, basis });
    this.pump(low ? "low" : "normal");
  }

  private pump(kind: "normal" | "low"): void {
    const q = this.waiting[kind];
    if (q.size === 0 || this.sending[kind] >= this.concurrency[kind]) return;
    for (const [target, e] of q) {
      if (this.sending[kind] >= this.concurrency[kind]) break;
      if (this.inFlight.has(target)) continue; // after the write in flight is answered
      q.delete(target);
      this.sending[kind]++;
      this.inFlight.set(target, e.body);
      void this.send(kind, target, e);
    }
  }

  private async send(kind: "normal" | "low", target: string, e: Entry): Promise<void> {
    try {
      // A merge patch carries no resourceVersion, yet the API server answers 409 when another
      // write to the same object (our status and annotation patches) lands at the same moment:
      // such a patch is safe to send again.
      for (let attempt = 0; ; attempt++) {
        try {
          await this.kube.mergePatchText(e.path, e.body, kind);
          break;
        } catch (err) {
          if (!(err instanceof KubeError && err.status === 409) || attempt >= 4) throw err;
          await Bun.sleep(10 * (attempt + 1));
        }
      }
      this.done.set(target, { body: e.body, basis: e.basis });
    } catch (err) {
      if (!(err instanceof KubeError && err.status === 404)) this.opts.onError(target, err); // 404: deleted meanwhile
    } finally {
      this.sending[kind]--;
      this.inFlight.delete(target);
      this.pump("normal");
      this.pump("low");
      this.opts.onSettled();
    }
  }
}
