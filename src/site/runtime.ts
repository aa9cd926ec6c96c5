/**
 * The site inside `vipd run`: what the appliance Daemon asks of the site layer, in one object.
 * It starts the site driver from this node's NodeSettings (members with addresses, the cluster
 * key and port, the state dir), tells it the site objects of this node's own files, and gives
 * the Daemon:
 * - `effective(local)`: the configuration to apply — this node's NodeSettings with the site's
 *   objects — and the table to adopt; undefined while the node waits for the site (it then
 *   announces nothing);
 * - `put(yaml, config)`: `PUT /api/v1/config` for the whole site (412 when the site moved on,
 *   503 Busy while the node waits for the site or the allocator does not answer);
 * - `siteApply(site, local, prev)`: the configuration and allocation the Daemon installs;
 * - the site's ETag and text (`GET /api/v1/config`), `GET /api/v1/site`, metrics, and the
 *   /readyz detail.
 *
 * A site is active when the node has a cluster key, a state dir, and at least one other member;
 * otherwise `fromSettings` returns undefined and the node runs alone as before.
 */

import { readFileSync } from "node:fs";
import { siteTextOffThread } from "../api/body-check.ts";
import { ApiError } from "../api/http.ts";
import type { ApplyOutcome, MetricFamily } from "../api/runtime.ts";
import { type Config, configFromText } from "../config/index.ts";
import { siteText } from "../config/site-text.ts";
import { type AllocationState, allocate, emptyAllocation } from "../plan/allocate.ts";
import type { Logger } from "../util/log.ts";
import { siteAllocate, tableAsHeld } from "./allocate.ts";
import { SiteDriver, type SiteDriverOptions } from "./driver.ts";
import { configDigest, type SiteAssignment, type Snapshot, tableDigest, versionId } from "./table.ts";
import type { HeartbeatSiteInfo, SiteView } from "./view.ts";

/** The site objects of a manifest text (NodeSettings left out); see src/config/site-text.ts. */
export { siteText };

/** The site's ETag: it changes with the generation (what If-Match is checked against). */
export function siteEtag(snap: Snapshot | undefined): string {
  return snap === undefined ? "site-none" : `site-${snap.generation}-${configDigest(snap.config)}`;
}

/**
 * The Daemon's allocation state for a site snapshot: the table adopted exactly (a fresh allocator
 * holding the table, as the allocator made it from the same configuration), with events against
 * what the node held before and counts carried on.
 */
export function adoptTable(
  config: Config,
  prev: AllocationState,
  table: readonly SiteAssignment[],
): AllocationState {
  return allocate(
    config,
    { ...emptyAllocation(), assignments: prev.assignments, counts: prev.counts },
    tableAsHeld(table),
  );
}

/**
 * What the site needs of live membership (src/cluster/service.ts provides it): it tells the
 * heartbeats what this node holds, and reads what the peers' heartbeats say they hold.
 */
export interface SiteHeartbeats {
  setSite(site: { generation: number; allocator: string; digest: string } | undefined): void;
  peerSites(): ReadonlyMap<string, HeartbeatSiteInfo>;
  /** Every peer and its membership state (Unknown, Rising, Alive, Dead). */
  peers(): readonly { name: string; state: string }[];
}

export interface SiteRuntimeOptions {
  self: string;
  /** This node's configuration as read from its files (NodeSettings included). */
  local: Config;
  /** Its text (joined files), for the site objects it holds. */
  localText: string;
  stateDir: string | undefined;
  log: Logger;
  /**
   * Apply `effective()` again: the site hands this node a snapshot (when it becomes ready, the one
   * it holds; then every newer one, persisted first), or a PUT here committed.
   */
  onChange: (why: string) => Promise<void>;
  /** Timing overrides (tests). */
  timing?: Pick<SiteDriverOptions, "statusMs" | "deadMs" | "startupMs" | "requestMs" | "proposeTimeoutMs">;
}

export class SiteRuntime {
  readonly driver: SiteDriver;
  private local: Config;
  private parsed: { id: string; config: Config } | undefined;
  private lastLocalDiffers = false;
  /** This node's file texts, in order, on their way to the driver (see setLocal). */
  private localQueue: Promise<void> = Promise.resolve();
  private heartbeats: SiteHeartbeats | undefined;

  private constructor(
    private readonly opts: SiteRuntimeOptions,
    key: Uint8Array,
  ) {
    this.local = opts.local;
    const spec = opts.local.nodeSettings?.spec;
    this.driver = new SiteDriver({
      self: opts.self,
      members: (spec?.members ?? []).map((m) => ({ name: m.name, address: m.address })),
      key,
      port: spec?.cluster.port ?? 7946,
      stateDir: opts.stateDir,
      local: siteText(opts.localText),
      allocate: siteAllocate(() => this.local.nodeSettings),
      apply: (snap) => opts.onChange(`site generation ${versionId(snap)}`),
      onChange: () => this.changed(),
      log: opts.log,
      ...opts.timing,
    });
  }

  /** The site of this node, or undefined when it runs alone (no key, no state dir, no other member). */
  static fromSettings(opts: SiteRuntimeOptions): SiteRuntime | undefined {
    const spec = opts.local.nodeSettings?.spec;
    if (spec?.cluster.keyFile === undefined || opts.stateDir === undefined) return undefined;
    if (!spec.members.some((m) => m.name !== opts.self)) return undefined;
    let key: Uint8Array;
    try {
      key = new Uint8Array(readFileSync(spec.cluster.keyFile));
    } catch (e) {
      throw new Error(`cannot read the cluster key ${spec.cluster.keyFile}: ${(e as Error).message}`);
    }
    if (key.length < 16)
      throw new Error(`cannot read the cluster key ${spec.cluster.keyFile}: fewer than 16 bytes`);
    return new SiteRuntime(opts, key);
  }

  start(): Promise<void> {
    return this.driver.start();
  }

  stop(): Promise<void> {
    return this.driver.stop();
  }

  /**
   * Live membership started: from now on the heartbeats carry this node's generation and table
   * digest, and the site view reads the peers' from theirs too (the fresher report wins).
   */
  setMembership(m: SiteHeartbeats | undefined): void {
    this.heartbeats = m;
    this.driver.setHeartbeats(() => m?.peerSites() ?? new Map());
    this.driver.setHeard(() =>
      m
        ?.peers()
        .filter((p) => p.state === "Alive" || p.state === "Rising")
        .map((p) => p.name),
    );
    this.tellHeartbeats();
  }

  /** Tells the heartbeats what this node holds (the service posts it to the worker only on a change). */
  private tellHeartbeats(): void {
    const snap = this.driver.snapshot();
    this.heartbeats?.setSite(
      snap === undefined
        ? undefined
        : { generation: snap.generation, allocator: snap.allocator, digest: tableDigest(snap.table) },
    );
  }

  /**
   * Readiness, the allocator or the snapshot changed. The Daemon is not asked to apply here: the
   * driver's `apply` hands it the snapshot this node holds when it becomes ready, and every later
   * one, and records it as `applied` once installed — so `applied` is what the data path runs.
   */
  private changed(): void {
    this.tellHeartbeats();
    this.reportLocal();
  }

  /** Says once (per change) that this node's file holds other site objects than the site. */
  private reportLocal(): void {
    const differs = this.driver.view().localConfigDiffers;
    if (differs && !this.lastLocalDiffers)
      this.opts.log.warn(
        "this node's configuration file holds other site objects than the site; the site's win (change the site with PUT /api/v1/config)",
        { generation: this.driver.view().generation },
      );
    this.lastLocalDiffers = differs;
  }

  /** This node's files were read again (SIGHUP, file change). */
  setLocal(local: Config, text: string): void {
    this.local = local;
    // Re-printing the site objects takes seconds for 10,000 Services: done off this thread (in
    // order), so a reload does not hold /livez and the API (docs/architecture.md).
    const site = siteTextOffThread(text);
    this.localQueue = this.localQueue
      .then(async () => {
        this.driver.setLocal(await site);
        this.reportLocal();
      })
      .catch((e) =>
        this.opts.log.warn("cannot read this node's site objects", { error: (e as Error).message }),
      );
  }

  /**
   * What to apply: this node's NodeSettings with the site's objects, and the table to adopt;
   * undefined while this node waits for the site (announce nothing).
   */
  effective(
    local: Config,
  ): { config: Config; table: readonly SiteAssignment[]; snapshot: Snapshot } | undefined {
    this.local = local;
    const snap = this.driver.snapshot();
    if (!this.driver.ready() || snap === undefined) return undefined;
    const id = `${versionId(snap)}#${configDigest(snap.config)}`;
    if (this.parsed?.id !== id) {
      const r = configFromText(snap.config, "<site>");
      if (!r.ok) {
        // Committed by the allocator, so valid there: a member running another vipd version.
        this.opts.log.error("the site configuration does not validate on this node; keeping the last one", {
          generation: snap.generation,
          problems: r.problems.length,
        });
        if (this.parsed === undefined) return undefined;
      } else this.parsed = { id, config: r.config };
    }
    const parsed = this.parsed;
    if (parsed === undefined) return undefined;
    return {
      config: { ...parsed.config, nodeSettings: local.nodeSettings },
      table: snap.table,
      snapshot: snap,
    };
  }

  /** Logs when what the node's allocator adopted is not the site's table row for row. */
  verify(assignments: readonly SiteAssignment[], snap: Snapshot): void {
    const got = tableDigest(assignments);
    const want = tableDigest(snap.table);
    if (got !== want)
      this.opts.log.error("the adopted assignments differ from the site's table", {
        generation: snap.generation,
        digest: got,
        site: want,
      });
  }

  etag(): string {
    return siteEtag(this.driver.snapshot());
  }

  text(): string {
    return this.driver.snapshot()?.config ?? "";
  }

  ready(): boolean {
    return this.driver.ready();
  }

  /** `PUT /api/v1/config` (the API checked If-Match against `etag()` just before). */
  async put(yaml: string, config: Config): Promise<ApplyOutcome> {
    if (config.nodeSettings !== undefined)
      return {
        ok: false,
        problems: [
          {
            file: "<request>",
            line: 0,
            kind: "NodeSettings",
            name: config.nodeSettings.metadata.name,
            field: "-",
            message:
              "NodeSettings is per node in a site: the site configuration holds the MetalLB objects and Services; edit the node's own file for its settings",
            pointer: "",
          },
        ],
      };
    const base = this.driver.snapshot()?.generation ?? 0;
    if (base === 0)
      throw new ApiError(503, "Busy", "this node is waiting for the site", { "Retry-After": "1" });
    const r = await this.driver.propose(base, await siteTextOffThread(yaml));
    // Applied on this node before the answer (queued behind the snapshot's own apply).
    if (r.ok) {
      await this.opts.onChange(`site PUT, generation ${r.generation}`);
      return { ok: true, etag: this.etag() };
    }
    if (r.error === "Stale")
      throw new ApiError(
        412,
        "PreconditionFailed",
        `the site configuration changed (${r.message ?? ""}); GET it again`,
        {
          ETag: `"${this.etag()}"`,
        },
      );
    if (r.error === "NotReady")
      throw new ApiError(503, "Busy", r.message ?? "the site is not ready", { "Retry-After": "1" });
    if (r.error === "NoQuorum") {
      const q = this.driver.quorum();
      throw new ApiError(
        503,
        "NoQuorum",
        r.message ?? "this member does not see a majority of the site",
        { "Retry-After": "1" },
        { generation: r.generation, sees: q.alive, needed: q.needed, members: q.members },
      );
    }
    return {
      ok: false,
      problems: [{ file: "<request>", line: 0, field: "-", message: r.message ?? "refused", pointer: "" }],
    };
  }

  view(): SiteView {
    return this.driver.view();
  }

  metrics(): MetricFamily[] {
    return this.driver.metrics();
  }

  /** The /readyz detail: empty once the node holds the site's table. */
  waitingFor(): string[] {
    const r = this.driver.waitReason();
    return r === undefined ? [] : [r];
  }
}

/**
 * What the Daemon installs for its local configuration: with the site's snapshot, this node's
 * NodeSettings with the site's objects and the site's table adopted exactly; while the node
 * waits for the site, its local configuration without Services (nothing allocated, nothing
 * announced).
 */
export function siteApply(
  site: SiteRuntime,
  local: Config,
  prev: AllocationState,
): { config: Config; alloc: AllocationState } {
  const e = site.effective(local);
  if (e === undefined) {
    const config = { ...local, services: [] };
    return { config, alloc: allocate(config, { ...emptyAllocation(), counts: prev.counts }) };
  }
  const alloc = adoptTable(e.config, prev, e.table);
  site.verify(alloc.assignments, e.snapshot);
  return { config: e.config, alloc };
}
