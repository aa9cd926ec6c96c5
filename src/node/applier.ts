/**
 * The plan applier: the one place where a node's plan meets its drivers, for `vipd run` (the
 * appliance Daemon) and `vipd k8s` (the Kubernetes speaker) alike. It owns
 * - the serial queue every state change of the node runs in (one at a time, in order);
 * - handing a plan to every driver, and when one throws (a link that was down, a busy netlink),
 *   asking for the plan again with backoff (0.5 s doubling to 30 s) until every driver took it;
 * - counting and logging layer-2 owner changes (vipd_l2_ownership_changes_total);
 * - announcing every owned VIP again when a member that could not be heard is audible again;
 * - forced failover (declines, src/plan/failover.ts) against the live membership;
 * - the drivers' views for the API (layer 2, BGP, BFD, XDP, health, metrics) and the ETag.
 *
 * Policy stays outside: the caller computes the plan (src/plan/) and decides when to replan.
 * Time and timers are injected, so the retry schedule is tested without sleeping.
 */

import { createHash } from "node:crypto";
import type {
  BfdSessionView,
  BgpPeerView,
  FailoverRefusal,
  FailoverRequest,
  FailoverResult,
  L2View,
  MetricFamily,
  StatusSummary,
  XdpView,
} from "../api/runtime.ts";
import type { Decline } from "../cluster/heartbeat.ts";
import type { Driver } from "../drivers/driver.ts";
import { declineVip, withdrawDecline } from "../plan/failover.ts";
import type { L2Election } from "../plan/plan.ts";
import { EMPTY_NODE_PLAN, type NodePlan } from "../plan/resolve.ts";
import type { Logger } from "../util/log.ts";

/** The clock and timers the applier uses (tests pass their own). */
export interface Timers {
  now(): number;
  setTimeout(f: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const REAL_TIMERS: Timers = {
  now: () => Date.now(),
  setTimeout: (f, ms) => {
    const t = setTimeout(f, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** The first retry after a failed apply, and the longest wait between retries. */
export const RETRY_FIRST_MS = 500;
export const RETRY_MAX_MS = 30_000;

/** What the applier needs of live membership (src/cluster/service.ts provides it). */
export interface ApplierMembership {
  /** Per node (this one included), the VIPs it declines (forced failover). */
  declines?(): ReadonlyMap<string, readonly Decline[]>;
  /** Replaces this node's declines; they travel with its next heartbeat. */
  setDeclines?(declines: readonly Decline[]): void;
  /** Times a member that could not be heard became audible again. */
  reheard?(): number;
}

export type OwnerChange = "acquired" | "released" | "moved";

/** What happened on this node, for the event stream and the logs. */
export type NodeEvent =
  | { type: "owners"; changes: { ip: string; change: OwnerChange; from: string | null; to: string | null }[] }
  | { type: "applied"; ok: boolean; l2: string[]; routes: number; failed: string[] }
  | { type: "assignments"; services: { key: string; ips: readonly string[] }[] }
  | { type: "config"; generation: number; reason: string };

export interface PlanApplierOptions {
  /** This node's name (read at every plan: in the appliance it may come from the configuration). */
  node: () => string;
  log?: Logger | undefined;
  membership?: ApplierMembership | undefined;
  /** Recompute and apply the plan (a retry after a failed apply). */
  retry: (reason: string) => void;
  /**
   * Hand the drivers a plan only when it differs from the last one they all took (Kubernetes
   * mode, which replans on every watch event). The appliance hands them every plan.
   * "identity": the caller keeps every part's object while it does not change (the Kubernetes
   * speaker's incremental planner does); a plan is skipped when each of its parts but the
   * elections is the object of the plan all took last, without writing it as JSON (~15 ms for
   * 10,000 VIPs).
   */
  skipUnchanged?: boolean | "identity";
  timers?: Timers | undefined;
  onEvent?: ((e: NodeEvent) => void) | undefined;
}

/** The owner changes between two elections as this node sees them (pure). */
export function ownerChanges(
  before: readonly L2Election[],
  next: readonly L2Election[],
  self: string,
): { ip: string; change: OwnerChange; from: string | undefined; to: string | undefined }[] {
  const out: { ip: string; change: OwnerChange; from: string | undefined; to: string | undefined }[] = [];
  // The planner gives elections in address order, one per address: one walk of both lists, no
  // map of 10,000 addresses (and an election kept from the last plan is skipped at once).
  if (ascending(before) && ascending(next)) {
    let i = 0;
    for (const e of next) {
      while (i < before.length && (before[i] as L2Election).ip < e.ip) i++;
      const b = before[i];
      if (b === e) continue;
      const from = b !== undefined && b.ip === e.ip ? b.owner : undefined;
      if (from === e.owner) continue;
      const change = e.owner === self ? "acquired" : from === self ? "released" : "moved";
      out.push({ ip: e.ip, change, from, to: e.owner });
    }
    return out;
  }
  const was = new Map(before.map((e) => [e.ip, e.owner]));
  for (const e of next) {
    const from = was.get(e.ip);
    if (from === e.owner) continue;
    const change = e.owner === self ? "acquired" : from === self ? "released" : "moved";
    out.push({ ip: e.ip, change, from, to: e.owner });
  }
  return out;
}

/** Strictly ascending addresses (as text): each address once, in the planner's order. */
function ascending(xs: readonly L2Election[]): boolean {
  for (let i = 1; i < xs.length; i++)
    if (!((xs[i - 1] as L2Election).ip < (xs[i] as L2Election).ip)) return false;
  return true;
}

/** The entity tag of a configuration text (opaque, without quotes). */
export function etagOf(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 32);
}

const planText = (p: NodePlan): string => JSON.stringify({ ...p, elections: undefined });

/** Every part but the elections is the same object (or value) in both plans. */
function sameParts(a: NodePlan, b: NodePlan | undefined): boolean {
  if (b === undefined) return false;
  if (a === b) return true;
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)]))
    if (k !== "elections" && a[k as keyof NodePlan] !== b[k as keyof NodePlan]) return false;
  return true;
}

/** Owner changes logged one line each up to this many; beyond, one summary line (each at debug). */
export const OWNER_LOG_DETAIL = 20;
/**
 * A plan with more entries than this is handed to the drivers with a turn of the event loop
 * before each driver (setImmediate), so requests waiting on the main thread (/livez, the API)
 * are answered between the steps of a large apply (10,000 VIPs), not after all of them.
 */
export const YIELD_ABOVE = 500;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class PlanApplier {
  readonly drivers: Driver[] = [];
  /** Layer-2 owner changes seen by this node, by kind (vipd_l2_ownership_changes_total). */
  readonly ownerChanges = { acquired: 0, released: 0, moved: 0 };
  /** Plans handed to the drivers. */
  applies = 0;
  private current: NodePlan = EMPTY_NODE_PLAN;
  private installed = false;
  /** The text of the last plan every driver took ("" after a failure: the next one is applied). */
  private appliedText = "";
  /** The last plan every driver took (skipUnchanged "identity"; undefined after a failure). */
  private appliedPlan: NodePlan | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private retryTimer: unknown;
  private retryMs = 0;
  private reheardSeen = 0;
  private closing = false;
  private readonly timers: Timers;
  private membership: ApplierMembership | undefined;

  constructor(private readonly opts: PlanApplierOptions) {
    this.timers = opts.timers ?? REAL_TIMERS;
    this.membership = opts.membership;
  }

  /** Live membership (declines, reheard members); set before the first plan is applied. */
  setMembership(m: ApplierMembership | undefined): void {
    this.membership = m;
  }

  get plan(): NodePlan {
    return this.current;
  }

  /** Serialises every state change of the node. */
  serial<T>(f: () => Promise<T>): Promise<T> {
    const next = this.queue.then(f, f);
    this.queue = next.catch(() => {});
    return next;
  }

  /** Resolves when everything queued so far has run. */
  idle(): Promise<void> {
    return this.queue.then(() => {});
  }

  addDriver(d: Driver): void {
    this.drivers.push(d);
  }

  /** Makes `next` the current plan, counting and logging the layer-2 owner changes it brings. */
  install(next: NodePlan): void {
    const self = this.opts.node();
    if (this.installed) {
      const changes = ownerChanges(this.current.elections ?? [], next.elections ?? [], self).map((c) => ({
        ip: c.ip,
        change: c.change,
        from: c.from ?? null,
        to: c.to ?? null,
      }));
      // 10,000 lines (a start or a takeover of a large site) cost the main thread ~250 ms under
      // load, and say less than one line of counts.
      const detail = changes.length <= OWNER_LOG_DETAIL;
      const counts = { acquired: 0, released: 0, moved: 0 };
      for (const c of changes) {
        this.ownerChanges[c.change]++;
        counts[c.change]++;
        const fields = { ip: c.ip, from: c.from, to: c.to };
        if (detail) this.opts.log?.info("layer-2 owner changed", fields);
        else this.opts.log?.debug("layer-2 owner changed", fields);
      }
      if (!detail)
        this.opts.log?.info("layer-2 owner changed for many VIPs", {
          ...counts,
          first: changes.slice(0, 5).map((c) => c.ip),
        });
      if (changes.length > 0) this.opts.onEvent?.({ type: "owners", changes });
    }
    this.installed = true;
    this.current = next;
  }

  /**
   * Hands the current plan to every driver; a failing driver is logged, and the plan is asked
   * for again later (backoff). Returns true when every driver took it.
   */
  async apply(): Promise<boolean> {
    const plan = this.current;
    // The plan's text is needed only to skip an unchanged plan (JSON of 10,000 VIPs: ~100 ms).
    const identity = this.opts.skipUnchanged === "identity";
    const text = this.opts.skipUnchanged === true ? planText(plan) : "";
    const failed: string[] = [];
    const unchanged = identity
      ? sameParts(plan, this.appliedPlan)
      : this.opts.skipUnchanged === true && text === this.appliedText;
    if (!unchanged) {
      this.applies++;
      const large = plan.l2.length + plan.routes.length > YIELD_ABOVE;
      for (const d of this.drivers) {
        if (large) await nextTurn();
        try {
          await d.apply(plan);
        } catch (e) {
          failed.push(d.name);
          this.opts.log?.error("driver failed to apply the plan", {
            driver: d.name,
            error: (e as Error).message,
          });
        }
      }
      this.appliedText = failed.length === 0 ? text : "";
      this.appliedPlan = failed.length === 0 ? plan : undefined;
      this.opts.onEvent?.({
        type: "applied",
        ok: failed.length === 0,
        l2: plan.l2.map((e) => e.ip),
        routes: plan.routes.length,
        failed,
      });
    }
    this.scheduleRetry(failed.length > 0);
    // A member that could not be heard is audible again: what was announced meanwhile may have
    // been lost (a link down, a partition), so every owned VIP is announced once more.
    const heard = this.membership?.reheard?.() ?? 0;
    if (heard !== this.reheardSeen) {
      this.reheardSeen = heard;
      for (const d of this.drivers) d.reannounce?.("a member is audible again");
    }
    return failed.length === 0;
  }

  /**
   * A driver that failed gets the plan again later, with backoff, so the kernel converges to the
   * plan without waiting for the next change — a stale layer-2 entry would otherwise answer for
   * a VIP another node owns, and a VIP gained would stay silent.
   */
  private scheduleRetry(failed: boolean): void {
    if (!failed) {
      this.retryMs = 0;
      return;
    }
    if (this.closing || this.retryTimer !== undefined) return;
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs === 0 ? RETRY_FIRST_MS : this.retryMs * 2);
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = undefined;
      this.opts.retry("retry after a driver failure");
    }, this.retryMs);
  }

  /** The wait before the next retry (0: none scheduled). */
  get retryDelayMs(): number {
    return this.retryTimer === undefined ? 0 : this.retryMs;
  }

  /** Stops retrying (the node is shutting down). */
  halt(): void {
    this.closing = true;
    if (this.retryTimer !== undefined) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  /** Stops retrying and closes every driver (kernel state that must survive stays). */
  async close(): Promise<void> {
    this.halt();
    await this.serial(async () => {
      for (const d of this.drivers) {
        try {
          await d.close();
        } catch (e) {
          this.opts.log?.warn("driver close failed", { driver: d.name, error: (e as Error).message });
        }
      }
    });
  }

  // ---- forced failover ----------------------------------------------------------------------

  /**
   * `POST /api/v1/l2/failover`: this node, the VIP's owner, declines it (all its Service's
   * addresses follow) so the next candidate — or `req.node` when eligible — takes it; `cancel`
   * withdraws the decline. The decline travels with this node's heartbeats, so every node
   * agrees. `key` gives a VIP's election key (its Service's first address); `replan` recomputes
   * and applies the plan. Run it inside `serial` when the caller's replans are serialised there.
   */
  async failover(
    req: FailoverRequest,
    hooks: {
      key: (e: L2Election | undefined, ip: string) => string;
      replan: () => Promise<void>;
      regain?: () => void;
    },
  ): Promise<({ ok: true } & FailoverResult) | FailoverRefusal> {
    const m = this.membership;
    const self = this.opts.node();
    const election = this.current.elections?.find((e) => e.ip === req.ip);
    const key = hooks.key(election, req.ip);
    const mine = m?.declines?.().get(self) ?? [];
    if (req.cancel === true) {
      const rest =
        m?.setDeclines !== undefined && m.declines !== undefined ? withdrawDecline(mine, key) : undefined;
      if (rest !== undefined) {
        // This node regains the VIP: not settled until it has announced it (make before break).
        hooks.regain?.();
        m?.setDeclines?.(rest);
        await hooks.replan();
      }
      return {
        ok: true,
        ip: req.ip,
        cancelled: rest !== undefined,
        declined: (rest ?? mine).map((d) => d.ip),
      };
    }
    const r = declineVip({
      ip: req.ip,
      to: req.node,
      self,
      live: m?.setDeclines !== undefined && m.declines !== undefined,
      election,
      key,
      mine,
    });
    if (!r.ok) return r;
    m?.setDeclines?.(r.declines);
    await hooks.replan();
    const to = this.current.elections?.find((e) => e.ip === req.ip)?.owner;
    this.opts.log?.info("forced failover", { ip: req.ip, from: self, to: to ?? null });
    return {
      ok: true,
      ip: req.ip,
      from: self,
      ...(to !== undefined ? { to } : {}),
      declined: r.declines.map((d) => d.ip),
    };
  }

  // ---- what the API shows -------------------------------------------------------------------

  /** Each driver's health, as GET /status lists it. */
  driverStatus(): StatusSummary["drivers"] {
    return this.drivers.map((d) => {
      const h = d.health();
      return { name: h.name, healthy: h.healthy, ...(h.detail !== undefined ? { detail: h.detail } : {}) };
    });
  }

  /** Why the drivers make this node not ready (none: all healthy). */
  unhealthy(): string[] {
    return this.driverStatus()
      .filter((d) => !d.healthy)
      .map((d) => `driver ${d.name}: ${d.detail ?? "unhealthy"}`);
  }

  l2(): L2View[] {
    return this.drivers.flatMap((d) => d.l2?.() ?? []);
  }

  bgpPeers(): BgpPeerView[] {
    return this.drivers.flatMap((d) => d.bgpPeers?.() ?? []);
  }

  bfdSessions(): BfdSessionView[] {
    return this.drivers.flatMap((d) => d.bfdSessions?.() ?? []);
  }

  xdp(): XdpView {
    return { interfaces: this.drivers.flatMap((d) => d.xdp?.().interfaces ?? []) };
  }

  /** The owner-change counter and every driver's metric families. */
  metrics(): MetricFamily[] {
    return [ownerChangeMetric(this.ownerChanges), ...this.drivers.flatMap((d) => d.metrics?.() ?? [])];
  }
}

export function ownerChangeMetric(owners: Record<OwnerChange, number>): MetricFamily {
  return {
    name: "vipd_l2_ownership_changes_total",
    help: "Layer-2 VIP owner changes seen by this node: acquired (this node became the owner), released (it stopped), moved (between other nodes)",
    type: "counter",
    samples: (["acquired", "released", "moved"] as const).map((change) => ({
      labels: { change },
      value: owners[change],
    })),
  };
}
