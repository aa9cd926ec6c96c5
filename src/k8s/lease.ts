/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: the
 * holder renews `renewTime` every `retryMs`; another candidate takes the Lease over only when
 * `renewTime + leaseDurationSeconds` has passed, with a PUT carrying the resourceVersion it read,
 * so of two candidates racing exactly one wins (the other gets 409 Conflict). A holder that has
 * not managed to renew for `renewDeadlineMs` steps down on its own. Times are MicroTime.
 */

import { type Kube, KubeError, type KubeObject, microTime, PATHS, parseKubeTime } from "./client.ts";

export interface LeaseOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationS?: number;
  renewDeadlineMs?: number;
  retryMs?: number;
  now?: () => number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  onError?: (err: unknown) => void;
  /** The API server answered a campaign round (whoever holds the Lease). */
  onRenewed?: () => void;
}

/** The spec of a coordination.k8s.io/v1 Lease, as vipd reads and writes it. */
export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export class LeaseElector {
  private leading = false;
  private lastRenew = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = true;
  private readonly now: () => number;

  constructor(
    private readonly kube: Kube,
    private readonly opts: LeaseOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.tick();
  }

  /** Stops campaigning; a leader releases the Lease (so a successor need not wait it out). */
  async stop(release = true): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.leading) {
      this.setLeading(false);
      if (release) {
        try {
          const cur = await this.kube.get(this.path());
          const spec = (cur.spec ?? {}) as LeaseSpec;
          if (spec.holderIdentity === this.opts.identity)
            await this.kube.replace(this.path(), {
              ...cur,
              spec: {
                ...spec,
                holderIdentity: "",
                leaseDurationSeconds: 1,
                renewTime: microTime(this.now()),
              },
            });
        } catch {}
      }
    }
  }

  private path(): string {
    return `${PATHS.leases(this.opts.namespace)}/${this.opts.name}`;
  }

  private setLeading(v: boolean): void {
    if (v === this.leading) return;
    this.leading = v;
    if (v) this.opts.onStartedLeading();
    else this.opts.onStoppedLeading();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      const ok = await this.tryAcquireOrRenew();
      this.opts.onRenewed?.();
      if (ok) {
        this.lastRenew = this.now();
        this.setLeading(true);
      } else this.setLeading(false);
    } catch (e) {
      this.opts.onError?.(e);
      if (this.leading && this.now() - this.lastRenew > (this.opts.renewDeadlineMs ?? 10_000))
        this.setLeading(false);
    }
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.opts.retryMs ?? 2000);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.now();
    const duration = this.opts.leaseDurationS ?? 15;
    const mine: LeaseSpec = {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: duration,
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    let cur: KubeObject;
    try {
      cur = await this.kube.get(this.path());
    } catch (e) {
      if (!(e instanceof KubeError && e.status === 404)) throw e;
      try {
        await this.kube.create(PATHS.leases(this.opts.namespace), {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: this.opts.name, namespace: this.opts.namespace },
          spec: mine,
        });
        return true;
      } catch (e2) {
        if (e2 instanceof KubeError && e2.status === 409) return false;
        throw e2;
      }
    }
    const spec = (cur.spec ?? {}) as LeaseSpec;
    const holder = spec.holderIdentity ?? "";
    const expires = parseKubeTime(spec.renewTime) + (spec.leaseDurationSeconds ?? duration) * 1000;
    if (holder !== this.opts.identity && holder !== "" && !(expires < now)) return false;
    const next: LeaseSpec =
      holder === this.opts.identity
        ? { ...spec, renewTime: microTime(now), leaseDurationSeconds: duration }
        : { ...mine, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 };
    try {
      await this.kube.replace(this.path(), { ...cur, spec: next });
      return true;
    } catch (e) {
      if (e instanceof KubeError && e.status === 409) return false;
      throw e;
    }
  }
}
