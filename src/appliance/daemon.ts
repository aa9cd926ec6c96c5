/**
 * The daemon: the spine of `vipd run`. It owns the current configuration, runs the allocator,
 * computes this node's plan and hands it to the plan applier (src/node/applier.ts, shared with
 * Kubernetes mode), which gives it to the drivers; it is also the `ApiRuntime` the HTTP API reads
 * from. One direction of flow: config → allocate → plan → drivers.
 *
 * Applying is serialised (the applier's queue): reloads (SIGHUP, file change, API PUT) queue
 * behind each other, and an invalid configuration is reported and leaves the running one untouched.
 */

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
import { toApiProblem } from "../api/runtime.ts";
import type { Decline } from "../cluster/heartbeat.ts";
import { boundProblems } from "../config/budget.ts";
import { type Config, configFromText, type Problem } from "../config/index.ts";
import type { Driver } from "../drivers/driver.ts";
import { etagOf, type NodeEvent, PlanApplier, type Timers } from "../node/applier.ts";
import { type AllocationState, allocate, emptyAllocation, logAllocation } from "../plan/allocate.ts";
import { HANDOVER_ACK_MARGIN_MS, type Held, handover } from "../plan/handover.ts";
import { computePlan, type L2Election, type L2Entry, type NodeInfo, type Plan } from "../plan/plan.ts";
import { type NodePlan, resolvePlan } from "../plan/resolve.ts";
import { type SiteRuntime, siteApply } from "../site/runtime.ts";
import type { SiteView } from "../site/view.ts";
import type { Logger } from "../util/log.ts";
import { type ConfigDelta, changedServices } from "./config-delta.ts";
import { reloadMetrics } from "./metrics.ts";
import { startOnlyChanges } from "./restart.ts";
import { HeldFile, heldText, readHeld } from "./state-file.ts";
import { loadManifests, writableTarget, writeAtomic } from "./store.ts";
import type { FileStamp, GateVerdict, ReadOutcome } from "./watch.ts";

export interface DaemonOptions {
  configPaths: string[];
  /** --node-name; otherwise NodeSettings.spec.nodeName; otherwise the host name. */
  nodeName?: string | undefined;
  version: string;
  log: Logger;
  /** Directory for state that must survive a restart (assignments); none when undefined. */
  stateDir?: string | undefined;
  now?: () => number;
  /** Timers for the applier's retries (tests pass their own). */
  timers?: Timers | undefined;
  /** What happened (owner changes, plans applied, configuration generations), for the event stream. */
  onEvent?: ((e: NodeEvent) => void) | undefined;
  /** What the node still waits for while it starts (GET /readyz lists it). */
  progress?: { waitingFor(): string[] } | undefined;
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

export class Daemon implements ApiRuntime {
  private readonly applier: PlanApplier;
  private cfg: Config | undefined;
  /** The first configuration applied: what the start-only settings were read from. */
  private startCfg: Config | undefined;
  private text = "";
  private generation = 0;
  private alloc: AllocationState = emptyAllocation();
  private readonly startedAt: number;
  /** Reloads of the manifests on disk (start, SIGHUP, file change), by outcome. */
  private readonly reloads = { applied: 0, unchanged: 0, rejected: 0 };
  private lastReloadOk = false;
  private readonly now: () => number;
  /** The state file (table and journal), once something was written. */
  private heldFile: HeldFile | undefined;
  private membership: MembershipView | undefined;
  /** Started with a cluster key, its membership not set yet (see expectMembership). */
  private awaitingMembership = false;
  /** The site this node belongs to (src/site): it decides the configuration and the table. */
  private siteRt: SiteRuntime | undefined;
  /** The configuration read from this node's files (with a site: its NodeSettings and seed). */
  private localCfg: Config | undefined;
  private closing = false;
  /** VIPs lost to another live node, still answered until the hold ends (make before break). */
  private held = new Map<string, Held<L2Entry>>();
  private holdTimer: ReturnType<typeof setTimeout> | undefined;
  private holdWake = Number.POSITIVE_INFINITY;
  /** Replans asked for and not applied yet (this node is "settled" when none is, see replan). */
  private unapplied = 0;

  constructor(private readonly opts: DaemonOptions) {
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    this.applier = new PlanApplier({
      node: () => this.node.name,
      log: opts.log,
      retry: (reason) => void this.replan(reason).catch(() => {}),
      timers: opts.timers,
      onEvent: opts.onEvent,
    });
  }

  get drivers(): readonly Driver[] {
    return this.applier.drivers;
  }

  addDriver(d: Driver): void {
    this.applier.addDriver(d);
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
    return this.applier.plan;
  }

  private get plan(): NodePlan {
    return this.applier.plan;
  }

  /** Serialises every state change (the applier's queue). */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    return this.applier.serial(f);
  }

  /**
   * (Re)reads the configured paths. An invalid set is logged and the running config kept. With
   * `gate` (the file watcher's, src/appliance/watch.ts), what was read is applied or reported
   * only when the gate says the files were complete; otherwise nothing happens and the answer
   * says when to read them again (`retryInMs`).
   */
  reload(
    reason: string,
    gate?: (stamps: readonly FileStamp[], outcome: ReadOutcome) => GateVerdict,
  ): Promise<{ ok: boolean; problems: Problem[]; retryInMs?: number | undefined }> {
    return this.serial(async () => {
      // A path that does not exist (or cannot be read) rejects the set, as `vipd validate` would:
      // applying the rest would release every Service the missing file declares.
      // Read here; pre-scanned (file budgets), parsed and validated in the file worker, so a large
      // or hostile file does not hold this thread (src/appliance/store.ts). The text applied last,
      // read again, is not checked again.
      const loaded = await loadManifests(this.opts.configPaths, {
        unchangedFrom: this.cfg !== undefined ? this.text : undefined,
      });
      const { text, config: loadedConfig, problems, change, stamps } = loaded;
      const invalid = problems.length > 0 || (loadedConfig === undefined && loaded.unchanged !== true);
      const unchanged = !invalid && this.cfg !== undefined && text === this.text;
      const verdict = gate?.(stamps, invalid ? "invalid" : unchanged ? "unchanged" : "valid") ?? {};
      if (verdict.retryInMs !== undefined) return { ok: false, problems, retryInMs: verdict.retryInMs };
      if (invalid || (loadedConfig === undefined && !unchanged)) {
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
      this.lastReloadOk = true;
      if (unchanged || loadedConfig === undefined) {
        this.reloads.unchanged++;
        return { ok: true, problems: [] };
      }
      this.reloads.applied++;
      this.text = text;
      this.siteRt?.setLocal(loadedConfig, text);
      // What changed since the Config applied last, when that is the one the change is from.
      const since = change !== undefined && change.base === this.localCfg ? change.delta : undefined;
      await this.applyConfigObject(loadedConfig, reason, since);
      return { ok: true, problems: [] };
    });
  }

  private async applyConfigObject(local: Config, reason: string, delta?: ConfigDelta): Promise<void> {
    // With a site, its objects and table replace this node's own (src/site/runtime.ts).
    this.localCfg = local;
    const site = this.siteRt ? siteApply(this.siteRt, local, this.alloc) : undefined;
    const config = site?.config ?? local;
    const prev = this.cfg;
    this.startCfg ??= config;
    this.cfg = config;
    this.generation++;
    const held = this.alloc.allocator === undefined ? readHeld(this.opts.stateDir) : {};
    const before = this.alloc;
    // A file reload's delta names the Services that changed: the others are not compared again.
    const changed =
      delta !== undefined && prev !== undefined && site === undefined
        ? changedServices(prev, delta)
        : undefined;
    this.alloc = site?.alloc ?? allocate(config, this.alloc, held, { changed });
    // Assignments change only with an allocation event (warnings aside): without one, the state
    // file and the watchers already have them, and 10,000 of them are not written out again.
    const moved =
      site !== undefined ||
      (this.alloc.assignments !== before.assignments &&
        (before.allocator === undefined || this.alloc.events.some((e) => e.reason !== "Warning")));
    if (moved) this.persistHeld();
    // Thousands of events (a start) are summarised per pool; per-Service lines at debug level.
    logAllocation(this.opts.log, this.alloc);
    // Logged and counted: the events (10,000 at a start) are not kept until the next reload.
    if (this.alloc.events.length > 0) this.alloc = { ...this.alloc, events: [] };
    this.opts.onEvent?.({ type: "config", generation: this.generation, reason });
    if (moved)
      this.opts.onEvent?.({
        type: "assignments",
        // The assignments themselves (key and addresses), not 10,000 copies of them.
        services: this.alloc.assignments,
      });
    this.applier.install(this.makePlan(config));
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

  /**
   * The assignments on disk before the change can be seen: the first time whole, then the
   * changes appended to the journal (src/appliance/state-file.ts), so a one-Service reload writes
   * one line, not 10,000 entries.
   */
  private persistHeld(): void {
    if (this.opts.stateDir === undefined) return;
    try {
      this.heldFile ??= new HeldFile(this.opts.stateDir, heldText);
      this.heldFile.write(this.alloc.assignments);
    } catch (e) {
      this.opts.log.warn("cannot persist assignments", { error: (e as Error).message });
    }
  }

  /** Every configured member of the site, this node first (its labels from NodeSettings). */
  private knownMembers(): NodeInfo[] {
    const self = this.node;
    const others = (this.cfg?.nodeSettings?.spec.members ?? [])
      .filter((m) => m.name !== self.name)
      .map((m) => ({ name: m.name, labels: m.labels }));
    return [self, ...others];
  }

  /**
   * A node started with a cluster key whose live membership has not started yet sees no member
   * alive but itself, and itself not ready: its elections (GET /api/v1/l2/elections, the owner
   * log lines) do not show an owner picked from members it has not heard.
   */
  expectMembership(): void {
    this.awaitingMembership = this.membership === undefined;
  }

  private members(): NodeInfo[] {
    const all = this.knownMembers();
    if (this.awaitingMembership) return [];
    if (this.membership === undefined) return all;
    const alive = new Set(this.membership.alive());
    return all.filter((n) => alive.has(n.name));
  }

  /**
   * In a cluster, a node that is not ready (just started, or resumed after a pause) owns nothing,
   * and what a previous run left in the XDP map is removed, not held: a process that restarts
   * after a crash has been declared dead by the others, who own its VIPs by then.
   */
  private makePlan(config: Config): NodePlan {
    const m = this.membership;
    const notReady =
      this.awaitingMembership || (m !== undefined && !m.ready()) ? new Set([this.node.name]) : undefined;
    const known = this.knownMembers();
    const self = known[0] ?? this.node;
    const plan = computePlan(config, this.alloc.assignments, self, this.members(), {
      known,
      notReady,
      declines: m?.declines?.(),
    });
    return resolvePlan(this.withHandover({ ...plan, holdL2: false }, notReady === undefined), config);
  }

  /**
   * Make before break (src/plan/handover.ts): a VIP this node lost to another live node stays
   * in the plan's `l2Handover` for HANDOVER_HOLD_MS, so it keeps answering until the new owner
   * has announced; a replan at the hold's end lets it go.
   */
  private withHandover(plan: Plan, selfReady: boolean): Plan {
    // Asked for the VIPs this node lost or holds only: made on the first question.
    let owners: Map<string, string | undefined> | undefined;
    const ownerOf = (ip: string): string | undefined => {
      owners ??= new Map((plan.elections ?? []).map((e) => [e.ip, e.owner]));
      return owners.get(ip);
    };
    const r = handover<L2Entry>({
      prevOwned: this.plan.l2,
      held: this.held,
      nextOwned: plan.l2,
      ownerOf,
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

  /** Appliance site mode: the site decides the configuration and the assignment table. */
  setSite(site: SiteRuntime | undefined): void {
    this.siteRt = site;
  }

  /** Applies this node's configuration again with the site's current snapshot. */
  applySite(reason: string): Promise<void> {
    return this.serial(async () => {
      if (this.localCfg !== undefined) await this.applyConfigObject(this.localCfg, reason);
    });
  }

  /** GET /api/v1/site: undefined when this node is not part of a site. */
  site(): SiteView | undefined {
    return this.siteRt?.view();
  }

  /** Live membership: who counts for the layer-2 election. Set before the first plan is applied. */
  setMembership(m: MembershipView | undefined): void {
    this.membership = m;
    this.awaitingMembership = false;
    this.applier.setMembership(m);
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
      this.applier.install(opts.releaseL2 ? { ...next, l2: [], l2Handover: undefined, holdL2: false } : next);
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

  /** Hands the current plan to the drivers (the applier retries a failed one with backoff). */
  private async applyPlan(): Promise<void> {
    const ok = await this.applier.apply();
    // Settled: nothing more to apply, and every driver took the plan (gains announced).
    this.membership?.setSettled?.(ok && this.unapplied === 0);
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.holdTimer);
    await this.applier.close();
    this.heldFile?.close();
  }

  // ---- ApiRuntime ---------------------------------------------------------------------------

  ready(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (this.cfg === undefined) reasons.push("no configuration loaded");
    reasons.push(...this.applier.unhealthy());
    return { ready: reasons.length === 0, reasons };
  }

  /** What the node still waits for while it starts (none once it has started). */
  waitingFor(): string[] {
    return [...(this.opts.progress?.waitingFor() ?? []), ...(this.siteRt?.waitingFor() ?? [])];
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
      drivers: this.applier.driverStatus(),
    };
  }

  services(): ServiceView[] {
    return this.alloc.services;
  }

  pools(): PoolView[] {
    return this.alloc.pools;
  }

  l2(): L2View[] {
    return this.applier.l2();
  }

  bgpPeers(): BgpPeerView[] {
    return this.applier.bgpPeers();
  }

  bfdSessions(): BfdSessionView[] {
    return this.applier.bfdSessions();
  }

  xdp(): XdpView {
    return this.applier.xdp();
  }

  metrics(): MetricFamily[] {
    const [owners, ...drivers] = this.applier.metrics();
    return [
      ...this.alloc.metrics,
      ...reloadMetrics(this.reloads, this.lastReloadOk),
      ...(owners ? [owners] : []),
      ...(this.membership?.metrics?.() ?? []),
      ...(this.siteRt?.metrics() ?? []),
      ...drivers,
    ];
  }

  config(): { etag: string; yaml: string } {
    if (this.siteRt) return { etag: this.siteRt.etag(), yaml: this.siteRt.text() };
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
    // A site PUT holds no NodeSettings: it cannot remove this node's tokens.
    if (this.siteRt) return 0;
    return this.cfg?.nodeSettings?.spec.api.tokens.filter((t) => t.role === "admin").length ?? 0;
  }

  /** `PUT /api/v1/config` after the API validated `yaml` (to `config`) off the main thread. */
  applyChecked(yaml: string, config: Config): Promise<ApplyOutcome> {
    // A site member: the write goes to the site (its allocator), for every member.
    if (this.siteRt) return this.siteRt.put(yaml, config);
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
   * Forced failover (`POST /api/v1/l2/failover`): this node, the VIP's current owner, declines
   * it, or withdraws that decline (src/node/applier.ts). It lasts until cancelled or a restart.
   */
  l2Failover(req: FailoverRequest): Promise<({ ok: true } & FailoverResult) | FailoverRefusal> {
    return this.serial(() =>
      this.applier.failover(req, {
        key: (e, ip) => this.declineKey(e, ip),
        // This node regains a VIP: not settled until it has announced it (make before break).
        regain: () => this.membership?.setSettled?.(false),
        replan: async () => {
          if (this.cfg === undefined) return;
          this.applier.install(this.makePlan(this.cfg));
          await this.applyPlan();
        },
      }),
    );
  }

  /** The election key of a VIP's addresses: its Service's first address. */
  private declineKey(e: L2Election | undefined, ip: string): string {
    const svc = e?.services[0];
    return svc !== undefined ? (this.alloc.assignments.find((a) => a.key === svc)?.ips[0] ?? ip) : ip;
  }
}
