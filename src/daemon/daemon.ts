/**
 * The daemon: the spine of `vipd run`. It owns the current configuration, runs the allocator,
 * computes this node's plan and hands it to the drivers; it is also the `ApiRuntime` the HTTP
 * API reads from. One direction of flow: config → allocate → plan → drivers.
 *
 * Applying is serialised: reloads (SIGHUP, file change, API PUT) queue behind each other, and an
 * invalid configuration is reported and leaves the running one untouched.
 */

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type {
  Problem as ApiProblem,
  ApiRuntime,
  ApplyOutcome,
  BfdSessionView,
  BgpPeerView,
  L2View,
  MetricFamily,
  PoolView,
  ServiceView,
  StatusSummary,
  XdpView,
} from "../api/runtime.ts";
import { type Config, configFromText, type Problem } from "../config/index.ts";
import { loadText, sortProblems } from "../config/load.ts";
import { buildConfig } from "../config/validate.ts";
import type { Logger } from "../util/log.ts";
import { type AllocationState, allocate, emptyAllocation, heldMap } from "./allocate.ts";
import type { Driver } from "./driver.ts";
import { computePlan, EMPTY_PLAN, type NodeInfo, type Plan } from "./plan.ts";
import {
  joinSources,
  type ManifestSource,
  readManifestSources,
  writableTarget,
  writeAtomic,
} from "./store.ts";

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

export const ASSIGNMENTS_FILE = "assignments.json";

/** What the daemon needs of live membership (src/cluster/service.ts provides it). */
export interface MembershipView {
  alive(): string[];
  ready(): boolean;
  holdReason(): "start" | "pause";
}

/** What Services held before a restart: `{ "ns/name": ["ip", ...] }`; empty when unknown. */
function readHeld(stateDir: string | undefined): Record<string, string[]> {
  if (stateDir === undefined) return {};
  try {
    const v: unknown = JSON.parse(readFileSync(join(stateDir, ASSIGNMENTS_FILE), "utf8"));
    if (typeof v !== "object" || v === null || Array.isArray(v)) return {};
    const out: Record<string, string[]> = {};
    for (const [k, ips] of Object.entries(v)) {
      if (Array.isArray(ips) && ips.every((x) => typeof x === "string")) out[k] = ips as string[];
    }
    return out;
  } catch {
    return {};
  }
}

function etagOf(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 32);
}

export class Daemon implements ApiRuntime {
  readonly drivers: Driver[] = [];
  private cfg: Config | undefined;
  private sources: ManifestSource[] = [];
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
      const loaded = sources.map((s) => loadText(s.text, s.file));
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
        this.opts.log.error("configuration rejected", {
          reason,
          problems: problems.map(
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
      this.sources = sources;
      this.text = text;
      await this.applyConfigObject(built.config, reason);
      return { ok: true, problems: [] };
    });
  }

  private async applyConfigObject(config: Config, reason: string): Promise<void> {
    this.cfg = config;
    this.generation++;
    const held = this.alloc.allocator === undefined ? readHeld(this.opts.stateDir) : {};
    this.alloc = allocate(config, this.alloc, held);
    this.persistHeld();
    for (const w of this.alloc.events) this.opts.log.info(w.message, { service: w.service, event: w.reason });
    this.plan = this.makePlan(config);
    this.opts.log.info("configuration applied", {
      reason,
      generation: this.generation,
      services: config.services.length,
      assigned: this.alloc.assignments.length,
      l2: this.plan.l2.length,
      routes: this.plan.routes.length,
    });
    await this.applyPlan();
  }

  private persistHeld(): void {
    if (this.opts.stateDir === undefined) return;
    const text = `${JSON.stringify(heldMap(this.alloc), null, 1)}\n`;
    if (text === this.heldText) return;
    try {
      mkdirSync(this.opts.stateDir, { recursive: true });
      writeAtomic(join(this.opts.stateDir, ASSIGNMENTS_FILE), text);
      this.heldText = text;
    } catch (e) {
      this.opts.log.warn("cannot persist assignments", { error: (e as Error).message });
    }
  }

  private members(): NodeInfo[] {
    const self = this.node;
    const others = (this.cfg?.nodeSettings?.spec.members ?? [])
      .filter((m) => m.name !== self.name)
      .map((m) => ({ name: m.name, labels: m.labels }));
    const all = [self, ...others];
    if (this.membership === undefined) return all;
    const alive = new Set(this.membership.alive());
    return all.filter((n) => alive.has(n.name));
  }

  private makePlan(config: Config): Plan {
    const plan = computePlan(config, this.alloc.assignments, this.node, this.members());
    const m = this.membership;
    const hold = m !== undefined && !m.ready() && m.holdReason() === "start";
    return { ...plan, holdL2: hold };
  }

  /** Live membership: who counts for the layer-2 election. Set before the first plan is applied. */
  setMembership(m: MembershipView | undefined): void {
    this.membership = m;
  }

  /** Recomputes and applies the plan (membership changed, or a release before shutdown). */
  replan(reason: string, opts: { releaseL2?: boolean } = {}): Promise<void> {
    return this.serial(async () => {
      if (this.cfg === undefined) return;
      const next = this.makePlan(this.cfg);
      this.plan = opts.releaseL2 ? { ...next, l2: [], holdL2: false } : next;
      this.opts.log.info("plan recomputed", {
        reason,
        members: this.members().map((n) => n.name),
        l2: this.plan.l2.map((e) => e.ip),
        hold: this.plan.holdL2,
      });
      await this.applyPlan();
    });
  }

  /** Hands the current plan to every driver; a failing driver is logged and marked unhealthy. */
  private async applyPlan(): Promise<void> {
    for (const d of this.drivers) {
      try {
        await d.apply(this.plan);
      } catch (e) {
        this.opts.log.error("driver failed to apply the plan", {
          driver: d.name,
          error: (e as Error).message,
        });
      }
    }
  }

  /** Hands the current plan to the drivers again (after drivers were added). */
  applyCurrentPlan(): Promise<void> {
    return this.serial(() => this.applyPlan());
  }

  async close(): Promise<void> {
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

  status(): StatusSummary {
    const r = this.ready();
    return {
      node: this.node.name,
      version: this.opts.version,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeSeconds: Math.max(0, (this.now() - this.startedAt) / 1000),
      configGeneration: this.generation,
      ready: r.ready,
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
    const reloads: MetricFamily[] = [
      {
        name: "vipd_config_reloads_total",
        help: "Reads of the manifests on disk (start, SIGHUP, file change), by result",
        type: "counter",
        samples: (["applied", "unchanged", "rejected"] as const).map((result) => ({
          labels: { result },
          value: this.reloads[result],
        })),
      },
      {
        name: "vipd_config_last_reload_successful",
        help: "1 when the last read of the manifests on disk was valid, 0 when it was rejected",
        type: "gauge",
        samples: [{ value: this.lastReloadOk ? 1 : 0 }],
      },
    ];
    return [...this.alloc.metrics, ...reloads, ...this.drivers.flatMap((d) => d.metrics?.() ?? [])];
  }

  config(): { etag: string; yaml: string } {
    return { etag: etagOf(this.text), yaml: this.text };
  }

  validateConfig(yaml: string): ApiProblem[] {
    const r = configFromText(yaml, "<request>");
    return r.ok ? [] : r.problems.map(toApiProblem);
  }

  applyConfig(yaml: string): Promise<ApplyOutcome> {
    return this.serial(async () => {
      const r = configFromText(yaml, "<request>");
      if (!r.ok) return { ok: false, problems: r.problems.map(toApiProblem) };
      const target = writableTarget(this.opts.configPaths);
      if ("reason" in target)
        return {
          ok: false,
          problems: [{ file: "<request>", line: 0, field: "-", message: target.reason, pointer: "" }],
        };
      writeAtomic(target.file, yaml);
      this.lastReloadOk = true;
      this.sources = [{ file: target.file, text: yaml }];
      this.text = yaml;
      await this.applyConfigObject(r.config, "api");
      return { ok: true, etag: etagOf(yaml) };
    });
  }

  /** The plan as JSON (for `GET /api/v1/plan` and the demo). */
  planView(): Plan {
    return this.plan;
  }

  /** The sources currently applied. */
  get appliedSources(): readonly ManifestSource[] {
    return this.sources;
  }
}
