/**
 * The daemon: the spine of `vipd run`. It owns the current configuration, runs the allocator,
 * computes this node's plan and hands it to the drivers; it is also the `ApiRuntime` the HTTP
 * API reads from. One direction of flow: config → allocate → plan → drivers.
 *
 * Applying is serialised: reloads (SIGHUP, file change, API PUT) queue behind each other, and an
 * invalid configuration is reported and leaves the running one untouched.
 */

import { createHash } from "node:crypto";
import { hostname } from "node:os";
import type {
  Problem as ApiProblem,
  ApiRuntime,
  ApplyOutcome,
  BfdSessionView,
  BgpPeerView,
  ClusterMemberView,
  FailoverRefusal,
  FailoverRequest,
  FailoverResult,
  L2View,
  MetricFamily,
  PoolView,
  ServiceView,
  StatusSummary,
  XdpView,
} from "../api/runtime.ts";
import type { Decline } from "../cluster/heartbeat.ts";
import { boundProblems, FILE_LIMITS, prescanProblem, prescanYaml } from "../config/budget.ts";
import { type Config, configFromText, type Problem } from "../config/index.ts";
import { loadText, sortProblems } from "../config/load.ts";
import { buildConfig } from "../config/validate.ts";
import type { Driver } from "../drivers/driver.ts";
import { type AllocationState, allocate, emptyAllocation, heldState } from "../plan/allocate.ts";
import { declineVip, withdrawDecline } from "../plan/failover.ts";
import { HANDOVER_ACK_MARGIN_MS, type Held, handover } from "../plan/handover.ts";
import {
  computePlan,
  EMPTY_PLAN,
  type L2Election,
  type L2Entry,
  type NodeInfo,
  type Plan,
} from "../plan/plan.ts";
import type { Logger } from "../util/log.ts";
import { daemonMetrics } from "./metrics.ts";
import { startOnlyChanges } from "./restart.ts";
import { readHeld, writeHeld } from "./state-file.ts";
import { joinSources, readManifestSources, writableTarget, writeAtomic } from "./store.ts";

export interface DaemonOptions {
  configPaths: string[];
  /** --node-name; otherwise NodeSettings.spec.nodeName; otherwise the host name. */
  nodeName?: string | undefined;
  version: string;
  log: Logger;
  /** Directory for state that must survive a restart (assignments); none when undefined. */
  stateDir?: string | undefined;
  now?: () => number;
}

export function toApiProblem(p: Problem): ApiProblem {
  return {
    file: p.file,
    line: p.line,
    ...(p.kind ? { kind: p.kind } : {}),
    ...(p.name ? { name: p.name } : {}),
    field: p.field,
    message: p.message,
    pointer: `/${p.doc ?? 0}${p.pointer}`,
  };
}

export { ASSIGNMENTS_FILE } from "./state-file.ts";

/** What the daemon needs of live membership (src/cluster/service.ts provides it). */
export interface MembershipView {
  alive(): string[];
  ready(): boolean;
  holdReason(): "start" | "pause" | "partition";
  /** Per node (this one included), the VIPs it declines (forced failover). */
  declines?(): ReadonlyMap<string, readonly Decline[]>;
  /** Replaces this node's declines; they travel with its next heartbeat (sent at once). */
  setDeclines?(declines: readonly Decline[]): void;
  /** Heartbeat and member-state metric families. */
  metrics?(): MetricFamily[];
  /**
   * How many times a member that could not be heard (unknown, dead) became audible again. When
   * it grows, this node announces every VIP it owns once more: the frames it sent while the
   * two could not hear each other (its own link down, a partition) may not have arrived.
   */
  reheard?(): number;
  /** Tells the members whether this node's data path matches its latest plan (make before break). */
  setSettled?(settled: boolean): void;
  /** `node` said it is settled in a heartbeat it sent at or after `wallMs` (wall clock, ms). */
  settledSince?(node: string, wallMs: number): boolean;
  /** Replan (onChange) when one of these members becomes settled. */
  awaitSettled?(nodes: ReadonlySet<string>): void;
  /** Every member as this node sees it (GET /api/v1/cluster/members). */
  members?(): ClusterMemberView[];
}

/** Kubernetes mode's input to the layer-2 election (see Daemon.setClusterView). */
export interface ClusterView {
  /** Every node of the cluster with its labels (replaces NodeSettings.spec.members). */
  nodes?: NodeInfo[] | undefined;
  /** Nodes whose NetworkUnavailable condition is True. */
  networkUnavailable?: ReadonlySet<string> | undefined;
  /** Per Service key ("ns/name"), the nodes with a ready local endpoint. */
  localEndpoints?: ReadonlyMap<string, ReadonlySet<string>> | undefined;
}

/** The result of a forced-failover request (`POST /api/v1/l2/failover`). */
export type FailoverOutcome =
  | { ok: true; ip: string; from: string; to: string | undefined; declined: string[] }
  | { ok: false; status: 404 | 409 | 422; error: FailoverRefusal["error"]; message: string };

function etagOf(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 32);
}

export class Daemon implements ApiRuntime {
  readonly drivers: Driver[] = [];
  private cfg: Config | undefined;
  /** The first configuration applied: what the start-only settings were read from. */
  private startCfg: Config | undefined;
  private text = "";
  private generation = 0;
  private alloc: AllocationState = emptyAllocation();
  private plan: Plan = EMPTY_PLAN;
  private readonly startedAt: number;
  /** Reloads of the manifests on disk (start, SIGHUP, file change), by outcome. */
  private readonly reloads = { applied: 0, unchanged: 0, rejected: 0 };
  private lastReloadOk = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;
  private heldText = "";
  private membership: MembershipView | undefined;
  private clusterView: ClusterView = {};
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private retryMs = 0;
  private closing = false;
  /** Layer-2 owner changes seen by this node, by kind (vipd_l2_ownership_changes_total). */
  private readonly ownerChanges = { acquired: 0, released: 0, moved: 0 };
  /** VIPs lost to another live node, still answered until the hold ends (make before break). */
  private held = new Map<string, Held<L2Entry>>();
  private holdTimer: ReturnType<typeof setTimeout> | undefined;
  private holdWake = Number.POSITIVE_INFINITY;
  /** membership.reheard() when the drivers last announced everything. */
  private reheardSeen = 0;
  /** Replans asked for and not applied yet (this node is "settled" when none is, see replan). */
  private unapplied = 0;

  constructor(private readonly opts: DaemonOptions) {
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
  }

  addDriver(d: Driver): void {
    this.drivers.push(d);
  }

  get node(): NodeInfo {
    const ns = this.cfg?.nodeSettings?.spec;
    return {
      // $HOSTNAME is a shell variable, rarely exported to a daemon: ask the kernel.
      name: this.opts.nodeName ?? ns?.nodeName ?? process.env.HOSTNAME ?? hostname(),
      labels: ns?.labels ?? {},
    };
  }

  get currentConfig(): Config | undefined {
    return this.cfg;
  }

  get currentPlan(): Plan {
    return this.plan;
  }

  /** Serialises every state change. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const next = this.queue.then(f, f);
    this.queue = next.catch(() => {});
    return next;
  }

  /** (Re)reads the configured paths. An invalid set is logged and the running config kept. */
  reload(reason: string): Promise<{ ok: boolean; problems: Problem[] }> {
    return this.serial(async () => {
      // A path that does not exist (or cannot be read) rejects the set, as `vipd validate` would:
      // applying the rest would release every Service the missing file declares.
      const { sources, problems: readProblems } = readManifestSources(this.opts.configPaths);
      // The same budgets as a request body (scaled for files): a file that nests too deep or holds
      // too many documents is refused before the YAML parser runs.
      const loaded = sources.map((s) => {
        const scan = prescanYaml(s.text, FILE_LIMITS);
        return scan.ok ? loadText(s.text, s.file) : { objects: [], problems: [prescanProblem(scan, s.file)] };
      });
      const built = buildConfig(loaded.flatMap((l) => l.objects));
      const problems = sortProblems([
        ...readProblems,
        ...loaded.flatMap((l) => l.problems),
        ...built.problems,
      ]);
      if (problems.length === 0 && sources.length === 0)
        problems.push({
          file: this.opts.configPaths.join(","),
          line: 0,
          field: "-",
          message: "no manifest files found",
          pointer: "",
        });
      if (problems.length > 0) {
        this.reloads.rejected++;
        this.lastReloadOk = false;
        const shown = boundProblems(problems);
        this.opts.log.error("configuration rejected", {
          reason,
          problems: shown.problems.map(
            (p) => `${p.file}:${p.line}: ${p.kind ? `${p.kind}/${p.name}: ` : ""}${p.field}: ${p.message}`,
          ),
          keptGeneration: this.generation,
        });
        return { ok: false, problems };
      }
      const text = joinSources(sources);
      this.lastReloadOk = true;
      if (this.cfg !== undefined && text === this.text) {
        this.reloads.unchanged++;
        return { ok: true, problems: [] };
      }
      this.reloads.applied++;
      this.text = text;
      await this.applyConfigObject(built.config, reason);
      return { ok: true, problems: [] };
    });
  }

  private async applyConfigObject(config: Config, reason: string): Promise<void> {
    const prev = this.cfg;
    this.startCfg ??= config;
    this.cfg = config;
    this.generation++;
    const held = this.alloc.allocator === undefined ? readHeld(this.opts.stateDir) : {};
    this.alloc = allocate(config, this.alloc, held);
    this.persistHeld();
    for (const w of this.alloc.events) this.opts.log.info(w.message, { service: w.service, event: w.reason });
    this.setPlan(this.makePlan(config));
    this.opts.log.info("configuration applied", {
      reason,
      generation: this.generation,
      services: config.services.length,
      assigned: this.alloc.assignments.length,
      l2: this.plan.l2.length,
      routes: this.plan.routes.length,
    });
    const later = prev === undefined ? [] : startOnlyChanges(prev, config);
    if (later.length > 0)
      this.opts.log.warn("some changes take effect only after vipd restarts", {
        generation: this.generation,
        changes: later,
      });
    await this.applyPlan();
  }

  private persistHeld(): void {
    if (this.opts.stateDir === undefined) return;
    const text = `${JSON.stringify(heldState(this.alloc), null, 1)}\n`;
    if (text === this.heldText) return;
    try {
      writeHeld(this.opts.stateDir, text);
      this.heldText = text;
    } catch (e) {
      this.opts.log.warn("cannot persist assignments", { error: (e as Error).message });
    }
  }

  /** Every configured member of the site, this node first (its labels from NodeSettings). */
  private knownMembers(): NodeInfo[] {
    const self = this.node;
    const fromK8s = this.clusterView.nodes;
    if (fromK8s !== undefined) {
      const me = fromK8s.find((n) => n.name === self.name) ?? self;
      return [me, ...fromK8s.filter((n) => n.name !== self.name)];
    }
    const others = (this.cfg?.nodeSettings?.spec.members ?? [])
      .filter((m) => m.name !== self.name)
      .map((m) => ({ name: m.name, labels: m.labels }));
    return [self, ...others];
  }

  private members(): NodeInfo[] {
    const all = this.knownMembers();
    if (this.membership === undefined) return all;
    const alive = new Set(this.membership.alive());
    return all.filter((n) => alive.has(n.name));
  }

  /**
   * In a cluster, a node that is not ready (just started, or resumed after a pause) owns nothing,
   * and what a previous run left in the XDP map is removed, not held: a process that restarts
   * after a crash has been declared dead by the others, who own its VIPs by then.
   */
  private makePlan(config: Config): Plan {
    const m = this.membership;
    const notReady = m !== undefined && !m.ready() ? new Set([this.node.name]) : undefined;
    const known = this.knownMembers();
    const self = known[0] ?? this.node;
    const plan = computePlan(config, this.alloc.assignments, self, this.members(), {
      known,
      notReady,
      declines: m?.declines?.(),
      networkUnavailable: this.clusterView.networkUnavailable,
      localEndpoints: this.clusterView.localEndpoints,
    });
    return this.withHandover({ ...plan, holdL2: false }, notReady === undefined);
  }

  /**
   * Make before break (src/plan/handover.ts): a VIP this node lost to another live node stays
   * in the plan's `l2Handover` for HANDOVER_HOLD_MS, so it keeps answering until the new owner
   * has announced; a replan at the hold's end lets it go.
   */
  private withHandover(plan: Plan, selfReady: boolean): Plan {
    const owners = new Map((plan.elections ?? []).map((e) => [e.ip, e.owner]));
    const r = handover<L2Entry>({
      prevOwned: this.plan.l2,
      held: this.held,
      nextOwned: plan.l2,
      ownerOf: (ip) => owners.get(ip),
      self: plan.node,
      selfReady,
      now: this.now(),
      // The new owner's settled heartbeat, sent after it could have learned of its gain.
      acknowledged: (h) => this.membership?.settledSince?.(h.to, h.since + HANDOVER_ACK_MARGIN_MS) === true,
    });
    this.held = r.held;
    this.membership?.awaitSettled?.(new Set([...r.held.values()].map((h) => h.to)));
    if (r.wakeAt !== undefined && r.wakeAt < this.holdWake && !this.closing) {
      clearTimeout(this.holdTimer);
      this.holdWake = r.wakeAt;
      this.holdTimer = setTimeout(
        () => {
          this.holdTimer = undefined;
          this.holdWake = Number.POSITIVE_INFINITY;
          void this.replan("hand-over hold ended").catch(() => {});
        },
        Math.max(0, r.wakeAt - this.now()),
      );
      this.holdTimer.unref?.();
    }
    if (r.held.size === 0) return plan;
    return { ...plan, l2Handover: [...r.held.values()].map((h) => ({ ...h.entry, owner: h.to })) };
  }

  /** Installs a new plan, counting and logging the layer-2 owner changes it brings. */
  private setPlan(next: Plan): void {
    const before = new Map((this.plan.elections ?? []).map((e) => [e.ip, e.owner]));
    const first = this.plan === EMPTY_PLAN;
    const self = this.node.name;
    for (const e of next.elections ?? []) {
      const was = before.get(e.ip);
      if (first || was === e.owner) continue;
      const kind = e.owner === self ? "acquired" : was === self ? "released" : "moved";
      this.ownerChanges[kind]++;
      this.opts.log.info("layer-2 owner changed", { ip: e.ip, from: was ?? null, to: e.owner ?? null });
    }
    this.plan = next;
  }

  /**
   * Kubernetes mode: what the cluster says about nodes (the Node list with its labels, the
   * NetworkUnavailable condition) and endpoints (per Service, the nodes with a ready local
   * endpoint, for externalTrafficPolicy: Local). Replaces the previous view and replans.
   * Appliance mode never calls it: members and labels come from NodeSettings.
   */
  setClusterView(view: ClusterView): Promise<void> {
    this.clusterView = view;
    return this.replan("cluster view changed");
  }

  /** Live membership: who counts for the layer-2 election. Set before the first plan is applied. */
  setMembership(m: MembershipView | undefined): void {
    this.membership = m;
  }

  /**
   * Recomputes and applies the plan (membership changed, or a release before shutdown). Until it
   * is applied this node's heartbeats say "not settled": marked here, synchronously, so the
   * heartbeat sent right after the membership change that caused it already says so.
   */
  replan(reason: string, opts: { releaseL2?: boolean } = {}): Promise<void> {
    this.unapplied++;
    this.membership?.setSettled?.(false);
    return this.serial(async () => {
      // This run applies what every replan asked for so far; one asked for later runs after it.
      this.unapplied--;
      await this.replanNow(reason, opts);
    });
  }

  private async replanNow(reason: string, opts: { releaseL2?: boolean }): Promise<void> {
    {
      if (this.cfg === undefined) {
        this.membership?.setSettled?.(this.unapplied === 0);
        return;
      }
      const next = this.makePlan(this.cfg);
      if (opts.releaseL2) this.held.clear();
      this.setPlan(opts.releaseL2 ? { ...next, l2: [], l2Handover: undefined, holdL2: false } : next);
      this.opts.log.info("plan recomputed", {
        reason,
        members: this.members().map((n) => n.name),
        l2: this.plan.l2.map((e) => e.ip),
        hold: this.plan.holdL2,
        ...(this.held.size > 0 ? { handingOver: [...this.held.keys()] } : {}),
      });
      await this.applyPlan();
    }
  }

  /** Hands the current plan to every driver; a failing driver is logged and marked unhealthy. */
  private async applyPlan(): Promise<void> {
    let failed = false;
    for (const d of this.drivers) {
      try {
        await d.apply(this.plan);
      } catch (e) {
        failed = true;
        this.opts.log.error("driver failed to apply the plan", {
          driver: d.name,
          error: (e as Error).message,
        });
      }
    }
    this.scheduleRetry(failed);
    // Settled: nothing more to apply, and every driver took the plan (gains announced).
    this.membership?.setSettled?.(!failed && this.unapplied === 0);
    const reheard = this.membership?.reheard?.() ?? 0;
    if (reheard !== this.reheardSeen) {
      this.reheardSeen = reheard;
      for (const d of this.drivers) d.reannounce?.("a member is audible again");
    }
  }

  /**
   * A driver that failed (a link that was down, a busy netlink) gets the plan again later, with
   * backoff (0.5 s doubling to 30 s), so the kernel converges to the plan without waiting for the
   * next change — a stale layer-2 entry would otherwise answer for a VIP another node owns.
   */
  private scheduleRetry(failed: boolean): void {
    if (!failed) {
      this.retryMs = 0;
      return;
    }
    if (this.closing || this.retryTimer !== undefined) return;
    this.retryMs = Math.min(30_000, this.retryMs === 0 ? 500 : this.retryMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.replan("retry after a driver failure").catch(() => {});
    }, this.retryMs);
    this.retryTimer.unref?.();
  }

  /** Hands the current plan to the drivers again (after drivers were added). */
  applyCurrentPlan(): Promise<void> {
    return this.serial(() => this.applyPlan());
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.holdTimer);
    this.retryTimer = undefined;
    await this.serial(async () => {
      for (const d of this.drivers) {
        try {
          await d.close();
        } catch (e) {
          this.opts.log.warn("driver close failed", { driver: d.name, error: (e as Error).message });
        }
      }
    });
  }

  // ---- ApiRuntime ---------------------------------------------------------------------------

  ready(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (this.cfg === undefined) reasons.push("no configuration loaded");
    for (const d of this.drivers) {
      const h = d.health();
      if (!h.healthy) reasons.push(`driver ${h.name}: ${h.detail ?? "unhealthy"}`);
    }
    return { ready: reasons.length === 0, reasons };
  }

  /** Settings changed since this process started that wait for a restart (GET /status, PUT 202). */
  pendingRestart(): string[] {
    return this.startCfg !== undefined && this.cfg !== undefined
      ? startOnlyChanges(this.startCfg, this.cfg)
      : [];
  }

  status(): StatusSummary {
    return {
      pendingRestart: this.pendingRestart(),
      node: this.node.name,
      version: this.opts.version,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeSeconds: Math.max(0, (this.now() - this.startedAt) / 1000),
      configGeneration: this.generation,
      // Configuration loaded; driver health is listed separately (and /readyz weighs both).
      ready: this.cfg !== undefined,
      drivers: this.drivers.map((d) => {
        const h = d.health();
        return { name: h.name, healthy: h.healthy, ...(h.detail !== undefined ? { detail: h.detail } : {}) };
      }),
    };
  }

  services(): ServiceView[] {
    return this.alloc.services;
  }

  pools(): PoolView[] {
    return this.alloc.pools;
  }

  l2(): L2View[] {
    const fromDrivers = this.drivers.flatMap((d) => d.l2?.() ?? []);
    if (fromDrivers.length > 0) return fromDrivers;
    return [];
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

  metrics(): MetricFamily[] {
    return [
      ...this.alloc.metrics,
      ...daemonMetrics(this.reloads, this.lastReloadOk, this.ownerChanges),
      ...(this.membership?.metrics?.() ?? []),
      ...this.drivers.flatMap((d) => d.metrics?.() ?? []),
    ];
  }

  config(): { etag: string; yaml: string } {
    return { etag: etagOf(this.text), yaml: this.text };
  }

  validateConfig(yaml: string): ApiProblem[] {
    const r = configFromText(yaml, "<request>");
    return r.ok ? [] : r.problems.map(toApiProblem);
  }

  applyConfig(yaml: string): Promise<ApplyOutcome> {
    const r = configFromText(yaml, "<request>");
    if (!r.ok) return Promise.resolve({ ok: false, problems: r.problems.map(toApiProblem) });
    return this.applyChecked(yaml, r.config);
  }

  /** Admin API tokens in the current configuration (the API's lockout guard). */
  configAdminTokens(): number {
    return this.cfg?.nodeSettings?.spec.api.tokens.filter((t) => t.role === "admin").length ?? 0;
  }

  /** `PUT /api/v1/config` after the API validated `yaml` (to `config`) off the main thread. */
  applyChecked(yaml: string, config: Config): Promise<ApplyOutcome> {
    return this.serial(async () => {
      const target = writableTarget(this.opts.configPaths);
      if ("reason" in target)
        return {
          ok: false,
          problems: [{ file: "<request>", line: 0, field: "-", message: target.reason, pointer: "" }],
        };
      writeAtomic(target.file, yaml);
      this.lastReloadOk = true;
      this.text = yaml;
      await this.applyConfigObject(config, "api");
      const pendingRestart = this.pendingRestart();
      return { ok: true, etag: etagOf(yaml), ...(pendingRestart.length > 0 ? { pendingRestart } : {}) };
    });
  }

  /** Live membership as this node sees it ([] without a cluster key). */
  clusterMembers(): ClusterMemberView[] {
    return this.membership?.members?.() ?? [];
  }

  /** Per VIP: owner, candidates, and why each other member is not the owner. */
  l2Elections(): L2Election[] {
    return this.plan.elections ?? [];
  }

  /**
   * Forced failover: this node, the VIP's current owner, declines it (all its Service's
   * addresses follow), so the next candidate — or `to`, when it is an eligible candidate — takes
   * it. The decline travels with this node's heartbeats, so every node agrees; it lasts until
   * `cancelFailover` or a restart of this process.
   */
  failover(ip: string, to?: string): Promise<FailoverOutcome> {
    return this.serial(async () => {
      const m = this.membership;
      const self = this.node.name;
      const e = this.l2Elections().find((x) => x.ip === ip);
      const key = this.declineKey(e, ip);
      const r = declineVip({
        ip,
        to,
        self,
        live: m?.setDeclines !== undefined && m.declines !== undefined,
        election: e,
        key,
        mine: m?.declines?.().get(self) ?? [],
      });
      if (!r.ok) return r;
      m?.setDeclines?.(r.declines);
      this.setPlan(this.makePlan(this.cfg as Config));
      await this.applyPlan();
      const now = this.l2Elections().find((x) => x.ip === ip);
      this.opts.log.info("forced failover", { ip, from: self, to: now?.owner ?? null });
      return { ok: true, ip, from: self, to: now?.owner, declined: r.declines.map((d) => d.ip) };
    });
  }

  /** Withdraws this node's decline of `ip` (its Service's first address), if any. */
  cancelFailover(ip: string): Promise<boolean> {
    return this.serial(async () => {
      const m = this.membership;
      if (m?.setDeclines === undefined || m.declines === undefined) return false;
      const e = this.l2Elections().find((x) => x.ip === ip);
      const rest = withdrawDecline(m.declines().get(this.node.name) ?? [], this.declineKey(e, ip));
      if (rest === undefined) return false;
      // This node regains the VIP: not settled until it has announced it (make before break).
      m.setSettled?.(false);
      m.setDeclines(rest);
      if (this.cfg !== undefined) {
        this.setPlan(this.makePlan(this.cfg));
        await this.applyPlan();
      }
      return true;
    });
  }

  /** The election key of a VIP's addresses: its Service's first address. */
  private declineKey(e: L2Election | undefined, ip: string): string {
    const svc = e?.services[0];
    return svc !== undefined ? (this.alloc.assignments.find((a) => a.key === svc)?.ips[0] ?? ip) : ip;
  }

  /** `POST /api/v1/l2/failover`. */
  async l2Failover(req: FailoverRequest): Promise<({ ok: true } & FailoverResult) | FailoverRefusal> {
    if (req.cancel === true) {
      const cancelled = await this.cancelFailover(req.ip);
      const mine = this.membership?.declines?.().get(this.node.name) ?? [];
      return { ok: true, ip: req.ip, cancelled, declined: mine.map((d) => d.ip) };
    }
    const r = await this.failover(req.ip, req.node);
    if (!r.ok) return { ok: false, status: r.status, error: r.error, message: r.message };
    return {
      ok: true,
      ip: r.ip,
      from: r.from,
      ...(r.to !== undefined ? { to: r.to } : {}),
      declined: r.declined,
    };
  }
}
