/**
 * The driver of per-VIP Lease fencing (see fence.ts for the rules and why they are safe): one
 * coordination.k8s.io/v1 Lease per VIP in vipd's namespace. For the VIPs this node wins it reads
 * the Lease, acquires it when free or expired (a PUT carrying the resourceVersion it read, so of
 * two racing nodes exactly one wins; the other gets 409), renews it while it wins, and hands it
 * back (holder "") once it no longer wins and its entry is gone. It tells the speaker (onChange)
 * whenever the set of VIPs it may announce changes, including when a hold runs out unrenewed.
 */

import type { MetricFamily } from "../api/runtime.ts";
import type { Logger } from "../util/log.ts";
import { type Kube, KubeError, type KubeObject, microTime, PATHS, parseKubeTime } from "./client.ts";
import {
  decideFencing,
  type FenceAction,
  type FenceDecision,
  type FenceTiming,
  type FenceVerdict,
  fenceTiming,
  type LeaseKnowledge,
  type LeaseRecord,
  leaseName,
} from "./fence.ts";
import type { LeaseSpec } from "./lease.ts";
import { plainError } from "./outage.ts";

export interface LeaseFenceOptions {
  namespace: string;
  /** This node's identity in the Leases (its node name). */
  identity: string;
  durationS: number;
  /** Called when the set of VIPs that may be announced changed. */
  onChange: () => void;
  /** Re-read Leases this node waits for at least this often (default: duration / 4, at most 1 s). */
  pollMs?: number;
  now?: () => number;
  log?: Logger | undefined;
}

function recordOf(o: KubeObject, fallbackS: number): LeaseRecord {
  const s = (o.spec ?? {}) as LeaseSpec;
  return {
    holder: s.holderIdentity ?? "",
    durationS: s.leaseDurationSeconds ?? fallbackS,
    renewTime: parseKubeTime(s.renewTime),
    resourceVersion: o.metadata.resourceVersion,
  };
}

const sameRecord = (a: LeaseRecord | null | undefined, b: LeaseRecord | null): boolean =>
  a === b ||
  (a != null &&
    b !== null &&
    a.holder === b.holder &&
    a.durationS === b.durationS &&
    (a.renewTime === b.renewTime || (Number.isNaN(a.renewTime) && Number.isNaN(b.renewTime))));

export class LeaseFence {
  readonly timing: FenceTiming;
  private elected = new Set<string>();
  private readonly leases = new Map<string, LeaseKnowledge>();
  private readonly objects = new Map<string, KubeObject>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private again = false;
  private stopped = false;
  private lastAnnounce = "";
  private readonly now: () => number;
  private lastErrorLog = Number.NEGATIVE_INFINITY;
  private errorsSinceLog = 0;
  readonly stats = { acquired: 0, renewed: 0, released: 0, conflicts: 0, errors: 0 };

  constructor(
    private readonly kube: Kube,
    private readonly opts: LeaseFenceOptions,
  ) {
    this.timing = fenceTiming(opts.durationS);
    this.now = opts.now ?? Date.now;
  }

  private get pollMs(): number {
    return this.opts.pollMs ?? Math.min(1000, Math.floor((this.opts.durationS * 1000) / 4));
  }

  /** The VIPs this node won the election for (the speaker calls this on every plan). */
  setElected(ips: Iterable<string>): void {
    const next = new Set(ips);
    if (next.size === this.elected.size && [...next].every((ip) => this.elected.has(ip))) return;
    this.elected = next;
    this.kick(0);
  }

  decision(): FenceDecision {
    return decideFencing({
      self: this.opts.identity,
      now: this.now(),
      elected: this.elected,
      leases: this.leases,
      timing: this.timing,
    });
  }

  /** The elected VIPs this node holds the Lease of, now. */
  mayAnnounce(): Set<string> {
    return new Set(this.decision().announce);
  }

  /** Per elected VIP: held, acquiring, or waiting for whom until when. */
  verdicts(): FenceVerdict[] {
    return this.decision().verdicts;
  }

  start(): void {
    this.kick(0);
  }

  /** Stops; with `release`, hands back every Lease held (call after the entries are removed). */
  async stop(release: boolean): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!release) return;
    for (const [ip, k] of this.leases)
      if (k.renewedAt !== undefined && k.record?.holder === this.opts.identity)
        await this.act({ kind: "release", ip }).catch(() => {});
  }

  private kick(delayMs: number): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), Math.max(0, delayMs));
  }

  private async run(): Promise<void> {
    this.running = true;
    let d: FenceDecision | undefined;
    try {
      do {
        this.again = false;
        d = await this.pass();
      } while (this.again && !this.stopped);
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    const next = Math.min(this.now() + this.pollMs, d?.wakeAt ?? Number.POSITIVE_INFINITY);
    this.timer = setTimeout(() => void this.run(), Math.max(0, next - this.now()));
  }

  /** One round: refresh what is not ours, decide, act, tell the speaker if the answer changed. */
  private async pass(): Promise<FenceDecision> {
    for (const ip of this.elected) {
      const k = this.leases.get(ip);
      if (k?.renewedAt !== undefined && k.record?.holder === this.opts.identity) continue;
      await this.read(ip).catch((e) => this.error("read", ip, e));
    }
    for (const a of this.decision().actions) await this.act(a).catch((e) => this.error(a.kind, a.ip, e));
    const d = this.decision();
    const text = d.announce.join(",");
    if (text !== this.lastAnnounce) {
      this.lastAnnounce = text;
      this.opts.onChange();
    }
    return d;
  }

  private error(what: string, ip: string, e: unknown): void {
    this.stats.errors++;
    const now = this.now();
    if (now - this.lastErrorLog < 60_000) {
      this.errorsSinceLog++;
      return;
    }
    this.lastErrorLog = now;
    this.opts.log?.warn("lease fencing: request failed", {
      what,
      ip,
      error: plainError(e, this.kube.server),
      ...(this.errorsSinceLog > 0 ? { alsoFailedSinceLastLine: this.errorsSinceLog } : {}),
    });
    this.errorsSinceLog = 0;
  }

  private path(ip: string): string {
    return `${PATHS.leases(this.opts.namespace)}/${leaseName(ip)}`;
  }

  /** Records what the API server has; `observedAt` moves only when the record changed. */
  private observe(ip: string, o: KubeObject | null, renewedAt?: number): void {
    const rec = o === null ? null : recordOf(o, this.opts.durationS);
    const k = this.leases.get(ip);
    const changed = k === undefined || !sameRecord(k.record, rec);
    const mine = rec?.holder === this.opts.identity;
    this.leases.set(ip, {
      record: rec,
      observedAt: changed ? this.now() : (k?.observedAt ?? this.now()),
      renewedAt: renewedAt ?? (mine ? k?.renewedAt : undefined),
    });
    if (o === null) this.objects.delete(ip);
    else this.objects.set(ip, o);
  }

  private async read(ip: string): Promise<void> {
    try {
      this.observe(ip, await this.kube.get(this.path(ip)));
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) this.observe(ip, null);
      else throw e;
    }
  }

  private spec(prev: LeaseSpec | undefined, now: number, takeover: boolean): LeaseSpec {
    const base: LeaseSpec = {
      ...prev,
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: this.opts.durationS,
      renewTime: microTime(now),
    };
    if (takeover) {
      base.acquireTime = microTime(now);
      base.leaseTransitions = (prev?.leaseTransitions ?? 0) + (prev?.holderIdentity ? 1 : 0);
    }
    return base;
  }

  private async act(a: FenceAction): Promise<void> {
    const sentAt = this.now();
    const cur = this.objects.get(a.ip);
    try {
      if (a.kind === "acquire" && cur === undefined) {
        const o = await this.kube.create<KubeObject>(PATHS.leases(this.opts.namespace), {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: {
            name: leaseName(a.ip),
            namespace: this.opts.namespace,
            labels: { "app.kubernetes.io/managed-by": "vipd", "vipd.io/lease": "l2-vip" },
            annotations: { "vipd.io/vip": a.ip },
          },
          spec: this.spec(undefined, sentAt, true),
        });
        this.observe(a.ip, o, sentAt);
        this.stats.acquired++;
        this.opts.log?.info("lease fencing: acquired", { ip: a.ip });
        return;
      }
      if (cur === undefined) return;
      const prev = cur.spec as LeaseSpec | undefined;
      if (a.kind === "release") {
        const o = await this.kube.replace<KubeObject>(this.path(a.ip), {
          ...cur,
          spec: { ...prev, holderIdentity: "", leaseDurationSeconds: 1, renewTime: microTime(sentAt) },
        });
        this.observe(a.ip, o);
        this.leases.delete(a.ip);
        this.objects.delete(a.ip);
        this.stats.released++;
        this.opts.log?.info("lease fencing: released", { ip: a.ip });
        return;
      }
      const o = await this.kube.replace<KubeObject>(this.path(a.ip), {
        ...cur,
        spec: this.spec(prev, sentAt, a.kind === "acquire" && prev?.holderIdentity !== this.opts.identity),
      });
      this.observe(a.ip, o, sentAt);
      if (a.kind === "acquire") {
        this.stats.acquired++;
        this.opts.log?.info("lease fencing: acquired", { ip: a.ip, from: prev?.holderIdentity ?? "" });
      } else this.stats.renewed++;
    } catch (e) {
      if (e instanceof KubeError && (e.status === 409 || e.status === 404)) {
        // Someone else wrote it first (or it went away): read it again and decide afresh.
        this.stats.conflicts++;
        if (a.kind === "release") this.leases.delete(a.ip);
        await this.read(a.ip).catch(() => {});
        const k = this.leases.get(a.ip);
        if (k !== undefined && k.record?.holder !== this.opts.identity)
          this.leases.set(a.ip, { ...k, renewedAt: undefined });
        this.again = true;
        return;
      }
      throw e;
    }
  }

  /** Counters for /metrics. */
  metrics(): MetricFamily[] {
    const d = this.decision();
    const count = (s: string) => d.verdicts.filter((v) => v.state === s).length;
    return [
      {
        name: "vipd_l2_lease_operations_total",
        help: "Per-VIP Lease fencing: Lease writes by kind (acquired, renewed, released), conflicts and errors",
        type: "counter",
        samples: Object.entries(this.stats).map(([op, value]) => ({ labels: { op }, value })),
      },
      {
        name: "vipd_l2_lease_vips",
        help: "Elected VIPs by Lease state (Held: announced; Acquiring; Waiting: another node holds it)",
        type: "gauge",
        samples: ["Held", "Acquiring", "Waiting"].map((state) => ({
          labels: { state },
          value: count(state),
        })),
      },
    ];
  }
}
