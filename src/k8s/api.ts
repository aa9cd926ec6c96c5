/**
 * The HTTP API in Kubernetes mode: the same Hono app as the appliance, over a runtime that reads
 * the cluster state (Services and their statuses as the controller wrote them, pools, the
 * speaker's plan) and the node's drivers. The configuration lives in the cluster, so it is read
 * here and changed with kubectl; `PUT /api/v1/config` is refused with a message saying so, while
 * `POST /api/v1/config/validate` checks manifests before they are applied.
 */

import { stringify } from "yaml";
import type {
  ApiRuntime,
  ApplyOutcome,
  BfdSessionView,
  BgpPeerView,
  ClusterMemberView,
  FailoverRefusal,
  FailoverRequest,
  FailoverResult,
  L2ElectionView,
  L2View,
  MetricFamily,
  PoolView,
  Problem,
  ServiceView,
  StatusSummary,
  XdpView,
} from "../api/runtime.ts";
import { toApiProblem } from "../api/runtime.ts";
import { type Config, configFromText } from "../config/index.ts";
import type { Driver } from "../drivers/driver.ts";
import { Allocator } from "../ipam/allocator.ts";
import { ANNOTATION_ALLOCATED_FROM } from "../ipam/request.ts";
import { etagOf } from "../node/applier.ts";

export interface K8sRuntimeDeps {
  node: string;
  version: string;
  /** The cluster's current configuration (undefined until the informers synced). */
  config: () => Config | undefined;
  drivers: () => readonly Driver[];
  loadBalancerClass: string | undefined;
  /** Per VIP: owner, candidates, why not the others (and the Lease state with fencing). */
  elections?: (() => L2ElectionView[]) | undefined;
  /** Live membership as this node sees it (none without a cluster key). */
  members?: (() => ClusterMemberView[]) | undefined;
  /** Metric families beyond the drivers' (membership, Lease fencing). */
  metrics?: (() => MetricFamily[]) | undefined;
  /** What the node still waits for while it starts (GET /readyz lists it). */
  progress?: { waitingFor(): string[] } | undefined;
  /** Forced failover (the speaker's); none on a node that runs no speaker. */
  failover?:
    | ((req: FailoverRequest) => Promise<({ ok: true } & FailoverResult) | FailoverRefusal>)
    | undefined;
}

export class K8sRuntime implements ApiRuntime {
  private readonly startedAt = Date.now();
  private generation = 0;
  private lastText = "";

  readonly l2Failover?: (req: FailoverRequest) => Promise<({ ok: true } & FailoverResult) | FailoverRefusal>;

  constructor(private readonly deps: K8sRuntimeDeps) {
    if (deps.failover !== undefined) this.l2Failover = deps.failover;
  }

  /** The configuration as YAML; the generation counts its changes. */
  private text(): string {
    const c = this.deps.config();
    if (c === undefined) return "";
    const objs = [
      ...c.pools,
      ...c.l2Advertisements,
      ...c.bgpAdvertisements,
      ...c.peers.map((p) => ({
        ...p,
        spec: { ...p.spec, ...(p.spec.password ? { password: "<redacted>" } : {}) },
      })),
      ...c.bfdProfiles,
      ...c.communities,
    ];
    const text = objs.map((o) => stringify(o)).join("---\n");
    if (text !== this.lastText) {
      this.lastText = text;
      this.generation++;
    }
    return text;
  }

  status(): StatusSummary {
    this.text();
    return {
      node: this.deps.node,
      version: this.deps.version,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeSeconds: (Date.now() - this.startedAt) / 1000,
      configGeneration: this.generation,
      ready: this.deps.config() !== undefined,
      drivers: this.deps.drivers().map((d) => {
        const h = d.health();
        return { name: h.name, healthy: h.healthy, ...(h.detail !== undefined ? { detail: h.detail } : {}) };
      }),
    };
  }

  services(): ServiceView[] {
    const c = this.deps.config();
    if (c === undefined) return [];
    return c.services
      .filter(
        (s) => s.spec.type === "LoadBalancer" && s.spec.loadBalancerClass === this.deps.loadBalancerClass,
      )
      .map((s) => {
        const ips = (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? "").filter((ip) => ip !== "");
        const pool = s.metadata.annotations?.[ANNOTATION_ALLOCATED_FROM];
        return {
          namespace: s.metadata.namespace ?? "default",
          name: s.metadata.name,
          ips,
          ...(pool ? { pool } : {}),
          ...(ips.length === 0 ? { reason: "no address yet (see the Service's events)" } : {}),
          warnings: [],
        };
      })
      .sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
  }

  /** Usage from what the Services hold, counted by a throwaway allocator over the same pools. */
  pools(): PoolView[] {
    const c = this.deps.config();
    if (c === undefined) return [];
    const a = new Allocator({ loadBalancerClass: this.deps.loadBalancerClass });
    a.setPools(c.pools);
    a.restore(c.services);
    return c.pools.map((p) => {
      const u = a.usage(p.metadata.name);
      const families: PoolView["families"] = [];
      for (const [fam, family] of [
        [4, "IPv4"],
        [6, "IPv6"],
      ] as const) {
        const f = u?.[fam];
        if (f && (f.capacity > 0n || f.assigned > 0n))
          families.push({ family, assigned: f.assigned.toString(), available: f.available.toString() });
      }
      return { name: p.metadata.name, autoAssign: p.spec.autoAssign, families };
    });
  }

  l2(): L2View[] {
    return this.deps.drivers().flatMap((d) => d.l2?.() ?? []);
  }

  bgpPeers(): BgpPeerView[] {
    return this.deps.drivers().flatMap((d) => d.bgpPeers?.() ?? []);
  }

  bfdSessions(): BfdSessionView[] {
    return this.deps.drivers().flatMap((d) => d.bfdSessions?.() ?? []);
  }

  xdp(): XdpView {
    return { interfaces: this.deps.drivers().flatMap((d) => d.xdp?.().interfaces ?? []) };
  }

  metrics(): MetricFamily[] {
    return [...this.deps.drivers().flatMap((d) => d.metrics?.() ?? []), ...(this.deps.metrics?.() ?? [])];
  }

  waitingFor(): string[] {
    return this.deps.progress?.waitingFor() ?? [];
  }

  l2Elections(): L2ElectionView[] {
    return this.deps.elections?.() ?? [];
  }

  clusterMembers(): ClusterMemberView[] {
    return this.deps.members?.() ?? [];
  }

  config(): { etag: string; yaml: string } {
    const yaml = this.text();
    return { etag: etagOf(yaml), yaml };
  }

  validateConfig(yaml: string): Problem[] {
    const r = configFromText(yaml, "<request>");
    return r.ok ? [] : r.problems.map(toApiProblem);
  }

  applyConfig(): ApplyOutcome {
    return {
      ok: false,
      problems: [
        {
          file: "<request>",
          line: 0,
          field: "-",
          message:
            "in Kubernetes mode the configuration lives in the cluster: apply the metallb.io objects with kubectl (POST /api/v1/config/validate checks them first)",
          pointer: "",
        },
      ],
    };
  }
}
