/**
 * The interface between the HTTP API and the rest of vipd. The API knows nothing about drivers:
 * `vipd run` hands `createApp` an object implementing `ApiRuntime`, and every byte of state the
 * API shows comes from it. Lists a driver has not filled in yet are empty, never invented.
 *
 * Every method may return a value or a promise of one. `applyConfig` must be atomic: it either
 * applies the whole manifest set and returns its new ETag, or changes nothing and returns the
 * problems. The app calls `applyConfig` (and the preceding ETag check) one request at a time.
 */

import type { Config, Problem as ConfigProblem } from "../config/index.ts";
import type { ErrorCode } from "./http.ts";
import type {
  BfdSessionViewT,
  BgpPeerViewT,
  ClusterMemberViewT,
  FailoverRequestT,
  FailoverResultT,
  L2ElectionViewT,
  L2ViewT,
  PoolViewT,
  ProblemT,
  ServiceViewT,
  StatusSummaryT,
  XdpViewT,
} from "./schemas.ts";

export type MaybePromise<T> = T | Promise<T>;

export type StatusSummary = StatusSummaryT;
export type ServiceView = ServiceViewT;
export type PoolView = PoolViewT;
export type L2View = L2ViewT;
export type BgpPeerView = BgpPeerViewT;
export type BfdSessionView = BfdSessionViewT;
export type XdpView = XdpViewT;
export type Problem = ProblemT;
export type L2ElectionView = L2ElectionViewT;
export type ClusterMemberView = ClusterMemberViewT;
export type FailoverRequest = FailoverRequestT;
export type FailoverResult = FailoverResultT;
export type FailoverRefusal = { ok: false; status: 404 | 409 | 422; error: ErrorCode; message: string };

/**
 * `pendingRestart`: settings applied as configuration since the process started that take effect
 * only after a restart (the API answers 202 with them).
 */
export type ApplyOutcome =
  | { ok: true; etag: string; pendingRestart?: string[] }
  | { ok: false; problems: Problem[] };

/**
 * One metric family the runtime contributes to `/metrics`, as a snapshot taken at scrape time.
 * Rules (a family breaking them is left out and logged): the name matches
 * `^vipd_[a-z0-9_]+$`, counters end in `_total` and gauges do not, values are in base units
 * (seconds, bytes), label names match `^[a-z_][a-z0-9_]*$`, and the name is not one the API
 * already exports (see `API_METRIC_NAMES` in metrics.ts).
 */
export interface MetricFamily {
  name: string;
  help: string;
  type: "counter" | "gauge";
  samples: { labels?: Record<string, string>; value: number }[];
}

export interface ApiRuntime {
  status(): MaybePromise<StatusSummary>;
  services(): MaybePromise<ServiceView[]>;
  pools(): MaybePromise<PoolView[]>;
  l2(): MaybePromise<L2View[]>;
  bgpPeers(): MaybePromise<BgpPeerView[]>;
  bfdSessions(): MaybePromise<BfdSessionView[]>;
  xdp(): MaybePromise<XdpView>;
  /** The current manifest set and its entity tag (an opaque string without quotes). */
  config(): MaybePromise<{ etag: string; yaml: string }>;
  /** Dry run: the problems the set would be rejected for; empty when it would apply. */
  validateConfig(yaml: string): MaybePromise<Problem[]>;
  /** Atomic: applies the whole set, or changes nothing and reports why. */
  applyConfig(yaml: string): MaybePromise<ApplyOutcome>;
  /**
   * As applyConfig, for a set the API has already parsed and validated off the main thread:
   * `config` is what `yaml` validates to, so the runtime does not parse it again.
   */
  applyChecked?(yaml: string, config: Config): MaybePromise<ApplyOutcome>;
  /**
   * Admin API tokens the current configuration holds (when tokens come from it). A PUT that
   * would take the count from above 0 to 0 needs `?allowNoAdmin=true`.
   */
  configAdminTokens?(): number;
  /** Per layer-2 VIP: owner, candidates, why every other member is not the owner (none: []). */
  l2Elections?(): MaybePromise<L2ElectionView[]>;
  /** Live membership as this node sees it, this node included (none without a cluster key: []). */
  clusterMembers?(): MaybePromise<ClusterMemberView[]>;
  /** Forced failover (admin): this node declines a VIP it owns, or withdraws that decline. */
  l2Failover?(req: FailoverRequest): MaybePromise<({ ok: true } & FailoverResult) | FailoverRefusal>;
  /** Extra metric families (driver counters, session states...), read on every scrape. */
  metrics?(): MaybePromise<MetricFamily[]>;
  /**
   * What the node still waits for while it starts ("waiting for the first plan"...; none once
   * started). The API answers from the moment it binds; `/readyz` lists these as its reasons.
   */
  waitingFor?(): MaybePromise<string[]>;
}

/** A configuration problem as the API shows it (its pointer prefixed with the document index). */
export function toApiProblem(p: ConfigProblem): Problem {
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
