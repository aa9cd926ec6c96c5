/**
 * The speaker role (every node): the appliance's planner and drivers fed by the cluster.
 *
 * Assignments are what the controller wrote (Service status.loadBalancer.ingress); members are
 * the Ready Nodes — and, with live membership (a cluster key), only those the authenticated
 * heartbeats say are alive (src/k8s/members.ts); externalTrafficPolicy: Local Services are
 * announced only from nodes with a ready endpoint (EndpointSlices). With Lease fencing, a VIP
 * this node wins is announced only while it holds that VIP's Lease (src/k8s/fence.ts). The plan
 * goes to the drivers (XDP, BGP, ...) only when it changed. Who announces what is published as ServiceL2Status / ServiceBGPStatus objects
 * (metallb.io/v1beta1, in vipd's namespace) and a `NodeAssigned` Event on the Service.
 *
 * With the API server unreachable the informers keep the last known objects, so the plan and
 * everything announced stay as they were; nothing is withdrawn because a watch broke.
 */

import { createHash } from "node:crypto";
import type { FailoverRefusal, FailoverRequest, FailoverResult } from "../api/runtime.ts";
import type { Decline } from "../cluster/heartbeat.ts";
import type { Config } from "../config/index.ts";
import type { Driver } from "../drivers/driver.ts";
import { ANNOTATION_ALLOCATED_FROM } from "../ipam/request.ts";
import { declineVip, withdrawDecline } from "../plan/failover.ts";
import {
  computePlan,
  EMPTY_PLAN,
  type L2Election,
  type NodeInfo,
  type Plan,
  type PlannedAssignment,
} from "../plan/plan.ts";
import type { Logger } from "../util/log.ts";
import { type Kube, KubeError, PATHS } from "./client.ts";
import { EventRecorder } from "./events.ts";
import type { FenceVerdict } from "./fence.ts";
import { electionMembers, type LiveMembership } from "./members.ts";
import { plainError, RateLimitedLog } from "./outage.ts";
import type { ClusterState } from "./state.ts";

export interface SpeakerOptions {
  node: string;
  /** vipd's namespace: where ServiceL2Status / ServiceBGPStatus objects live. */
  namespace: string;
  drivers: Driver[];
  loadBalancerClass?: string | undefined;
  log?: Logger | undefined;
  debounceMs?: number;
  now?: () => number;
  /** Live membership (a cluster key given): a node must also be alive to own layer-2 VIPs. */
  membership?:
    | (LiveMembership & {
        declines?(): ReadonlyMap<string, readonly Decline[]>;
        /** Replaces this node's declines (forced failover); they travel with its heartbeats. */
        setDeclines?(declines: readonly Decline[]): void;
        /** Times a member that could not be heard became audible again (src/cluster/service.ts). */
        reheard?(): number;
      })
    | undefined;
  /** Per-VIP Lease fencing: a won VIP is announced only while its Lease is held. */
  fence?: SpeakerFence | undefined;
}

/** What the speaker needs of the Lease fencing driver (src/k8s/lease-fence.ts). */
export interface SpeakerFence {
  setElected(ips: Iterable<string>): void;
  mayAnnounce(): ReadonlySet<string>;
  verdicts(): FenceVerdict[];
}

/** One VIP's election as the API shows it, with its Lease state when fencing is on. */
export type SpeakerElection = L2Election & { lease?: FenceVerdictView | undefined };

/** A fencing verdict for people: times as RFC 3339. */
export interface FenceVerdictView {
  state: FenceVerdict["state"];
  holder?: string | undefined;
  until?: string | undefined;
}

interface StatusObject {
  plural: "servicel2statuses" | "servicebgpstatuses";
  kind: "ServiceL2Status" | "ServiceBGPStatus";
  name: string;
  service: string;
  status: Record<string, unknown>;
}

/** Assignments as the controller published them (Services vipd handles that hold addresses). */
export function assignmentsFromServices(config: Config, cls: string | undefined): PlannedAssignment[] {
  const out: PlannedAssignment[] = [];
  for (const s of config.services) {
    if (s.spec.type !== "LoadBalancer" || (s.spec.loadBalancerClass ?? undefined) !== cls) continue;
    const ips = (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? "").filter((ip) => ip !== "");
    if (ips.length === 0) continue;
    out.push({
      key: `${s.metadata.namespace ?? "default"}/${s.metadata.name}`,
      pool: s.metadata.annotations?.[ANNOTATION_ALLOCATED_FROM] ?? "",
      ips,
    });
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

const short = (s: string): string => createHash("sha256").update(s).digest("hex").slice(0, 10);

export class Speaker {
  private plan: Plan = EMPTY_PLAN;
  private elected: L2Election[] = [];
  private planText = "";
  /** membership.reheard() when the drivers last announced every owned VIP again. */
  private reheardSeen = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private again = false;
  private stopped = false;
  private readonly statuses = new Map<string, StatusObject>();
  private adopted = false;
  private readonly events: EventRecorder;
  private announced = new Set<string>();
  /** API failures, said once a minute while they last. */
  private readonly outage: RateLimitedLog;
  readonly stats = { plans: 0, applies: 0, statusWrites: 0, statusErrors: 0 };
  /** Layer-2 owner changes seen by this node, by kind (vipd_l2_ownership_changes_total). */
  readonly ownerChanges = { acquired: 0, released: 0, moved: 0 };
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly kube: Kube,
    private readonly state: ClusterState,
    private readonly opts: SpeakerOptions,
  ) {
    this.events = new EventRecorder(kube, "vipd.io/speaker", opts.node, opts.now);
    this.outage = new RateLimitedLog({ log: opts.log, now: opts.now });
  }

  get currentPlan(): Plan {
    return this.plan;
  }

  /**
   * Per VIP: owner, candidates, why each other node is not the owner, and — with fencing — the
   * state of this node's claim on the VIP's Lease (Waiting: who holds it, until when).
   */
  elections(): SpeakerElection[] {
    const verdicts = new Map((this.opts.fence?.verdicts() ?? []).map((v) => [v.ip, v]));
    return this.elected.map((e) => {
      const v = verdicts.get(e.ip);
      if (v === undefined) return e;
      return {
        ...e,
        lease: {
          state: v.state,
          ...(v.holder !== undefined ? { holder: v.holder } : {}),
          ...(v.until !== undefined ? { until: new Date(v.until).toISOString() } : {}),
        },
      };
    });
  }

  /** Counts and logs the layer-2 owner changes a new election brings (as the appliance does). */
  private noteOwners(next: L2Election[]): void {
    const before = new Map(this.elected.map((e) => [e.ip, e.owner]));
    const first = this.stats.plans === 1;
    const self = this.opts.node;
    for (const e of next) {
      const was = before.get(e.ip);
      if (first || was === e.owner) continue;
      const kind = e.owner === self ? "acquired" : was === self ? "released" : "moved";
      this.ownerChanges[kind]++;
      this.opts.log?.info("layer-2 owner changed", { ip: e.ip, from: was ?? null, to: e.owner ?? null });
    }
    this.elected = next;
  }

  /** Withdraws every layer-2 entry at once (a clean shutdown with live membership). */
  async releaseL2(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const plan = { ...this.plan, l2: [], holdL2: false };
    this.plan = plan;
    for (const d of this.opts.drivers) await d.apply(plan).catch(() => {});
  }

  /**
   * Forced failover (admin, `POST /api/v1/l2/failover`): this node, the VIP's owner, declines it
   * so the next candidate (or the named one) takes it; `cancel` withdraws the decline. The
   * decline travels with this node's heartbeats (src/plan/failover.ts); with fencing the new
   * owner announces once this node, having removed its entry, hands the VIP's Lease back.
   */
  async l2Failover(req: FailoverRequest): Promise<({ ok: true } & FailoverResult) | FailoverRefusal> {
    const m = this.opts.membership;
    const self = this.opts.node;
    const election = this.elected.find((e) => e.ip === req.ip);
    const key = this.declineKey(election, req.ip);
    const mine = m?.declines?.().get(self) ?? [];
    if (req.cancel === true) {
      const rest = m?.setDeclines !== undefined ? withdrawDecline(mine, key) : undefined;
      if (rest !== undefined) {
        m?.setDeclines?.(rest);
        await this.replanNow();
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
    await this.replanNow();
    const to = this.elected.find((e) => e.ip === req.ip)?.owner;
    this.opts.log?.info("forced failover", { ip: req.ip, from: self, to: to ?? null });
    return {
      ok: true,
      ip: req.ip,
      from: self,
      ...(to !== undefined ? { to } : {}),
      declined: r.declines.map((d) => d.ip),
    };
  }

  /** The election key of a VIP's addresses: its Service's first address (as the controller wrote). */
  private declineKey(e: L2Election | undefined, ip: string): string {
    const svc = e?.services[0];
    const config = this.state.config().config;
    if (svc === undefined || config === undefined) return ip;
    return (
      assignmentsFromServices(config, this.opts.loadBalancerClass).find((a) => a.key === svc)?.ips[0] ?? ip
    );
  }

  /** Plans and applies now (not after the debounce), and returns when done. */
  private async replanNow(): Promise<void> {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      await this.idle();
      return;
    }
    clearTimeout(this.timer);
    await this.run();
  }

  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), this.opts.debounceMs ?? 20);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private async run(): Promise<void> {
    if (!this.state.synced) {
      this.state.waitSynced().then(() => this.kick());
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        await this.reconcile();
      } while (this.again && !this.stopped);
    } finally {
      this.running = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async reconcile(): Promise<void> {
    const view = this.state.config();
    if (view.config === undefined) return;
    const config = view.config;
    this.stats.plans++;
    const nodes = this.state.nodes();
    const self: NodeInfo = nodes.find((n) => n.name === this.opts.node) ?? {
      name: this.opts.node,
      labels: {},
    };
    const m = this.opts.membership;
    const { members, notReady } = electionMembers(
      this.state.readyNodes(),
      this.opts.node,
      m === undefined ? undefined : { alive: m.alive(), ready: m.ready() },
    );
    let plan = computePlan(
      config,
      assignmentsFromServices(config, this.opts.loadBalancerClass),
      self,
      members,
      {
        known: nodes,
        notReady,
        declines: m?.declines?.(),
        networkUnavailable: this.state.networkUnavailable(),
        localEndpoints: this.state.localEndpoints(),
      },
    );
    this.noteOwners(plan.elections ?? []);
    const fence = this.opts.fence;
    const won = plan.l2.map((e) => e.ip);
    if (fence !== undefined) {
      // Won is not enough: announced only while this node holds the VIP's Lease.
      const ok = fence.mayAnnounce();
      plan = { ...plan, l2: plan.l2.filter((e) => ok.has(e.ip)) };
    }
    const text = JSON.stringify({ ...plan, elections: undefined });
    if (text !== this.planText) {
      this.plan = plan;
      this.planText = text;
      this.stats.applies++;
      for (const d of this.opts.drivers) {
        try {
          await d.apply(plan);
        } catch (e) {
          this.opts.log?.error("speaker: driver apply failed", {
            driver: d.name,
            error: (e as Error).message,
          });
        }
      }
    }
    // A member that could not be heard is audible again: what was announced meanwhile may have
    // been lost (a link down, a partition), so every owned VIP is announced once more.
    const heard = m?.reheard?.() ?? 0;
    if (heard !== this.reheardSeen) {
      this.reheardSeen = heard;
      for (const d of this.opts.drivers) d.reannounce?.("a member is audible again");
    }
    // Only now, with the entries of lost VIPs gone from the drivers, may their Leases be handed
    // back (and Leases of newly won VIPs be acquired; they are announced once held).
    fence?.setElected(won);
    await this.publish(plan);
  }

  /**
   * Status objects a previous run of this node left behind: adopted (so the diff below updates
   * or deletes them) instead of being orphaned.
   */
  private async adoptLeftovers(): Promise<void> {
    for (const [plural, kind] of [
      ["servicel2statuses", "ServiceL2Status"],
      ["servicebgpstatuses", "ServiceBGPStatus"],
    ] as const) {
      const l = await this.kube.list(
        `${PATHS.metallb(plural, this.opts.namespace)}?labelSelector=${encodeURIComponent(`metallb.io/node=${this.opts.node}`)}`,
      );
      for (const o of l.items) {
        if (this.statuses.has(o.metadata.name)) continue;
        const st = (o.status ?? {}) as Record<string, unknown>;
        // A previous run of this node announced it and said so (NodeAssigned): a restart does
        // not say it again.
        this.announced.add(
          `${plural === "servicel2statuses" ? "layer2" : "bgp"} ${String(st.serviceNamespace)}/${String(st.serviceName)}`,
        );
        this.statuses.set(o.metadata.name, {
          plural,
          kind,
          name: o.metadata.name,
          service: `${String(st.serviceNamespace)}/${String(st.serviceName)}`,
          status: st,
        });
      }
    }
  }

  /** ServiceL2Status / ServiceBGPStatus objects and NodeAssigned events for what this node announces. */
  private async publish(plan: Plan): Promise<void> {
    const node = this.opts.node;
    if (!this.adopted) {
      try {
        await this.adoptLeftovers();
        this.adopted = true;
      } catch (e) {
        this.outage.warn("leftovers", "speaker: cannot list earlier status objects", {
          error: plainError(e, this.kube.server),
        });
      }
    }
    const want = new Map<string, StatusObject>();
    const now = new Set<string>();
    for (const e of plan.l2) {
      for (const svc of e.services) {
        const [ns, name] = svc.split("/") as [string, string];
        const o: StatusObject = {
          plural: "servicel2statuses",
          kind: "ServiceL2Status",
          name: `l2-${short(`${node}/${svc}`)}`,
          service: svc,
          status: {
            node,
            serviceName: name,
            serviceNamespace: ns,
            interfaces: e.interfaces.map((i) => ({ name: i })),
          },
        };
        want.set(o.name, o);
        now.add(`layer2 ${svc}`);
      }
    }
    const bgp = new Map<string, Set<string>>();
    for (const r of plan.routes)
      for (const svc of r.services) bgp.set(svc, (bgp.get(svc) ?? new Set()).add(r.peer));
    for (const [svc, peers] of bgp) {
      const [ns, name] = svc.split("/") as [string, string];
      const o: StatusObject = {
        plural: "servicebgpstatuses",
        kind: "ServiceBGPStatus",
        name: `bgp-${short(`${node}/${svc}`)}`,
        service: svc,
        status: { node, serviceName: name, serviceNamespace: ns, peers: [...peers].sort() },
      };
      want.set(o.name, o);
      now.add(`bgp ${svc}`);
    }
    for (const [name, o] of want) {
      const had = this.statuses.get(name);
      if (had !== undefined && JSON.stringify(had) === JSON.stringify(o)) continue;
      try {
        const path = PATHS.metallb(o.plural, this.opts.namespace);
        if (had === undefined) {
          try {
            await this.kube.create(path, {
              apiVersion: "metallb.io/v1beta1",
              kind: o.kind,
              metadata: {
                name,
                namespace: this.opts.namespace,
                labels: {
                  "metallb.io/node": node,
                  "metallb.io/service-name": o.status.serviceName as string,
                  "metallb.io/service-namespace": o.status.serviceNamespace as string,
                },
              },
              spec: {},
            });
          } catch (e) {
            if (!(e instanceof KubeError && e.status === 409)) throw e;
          }
        }
        await this.kube.mergePatch(`${path}/${name}/status`, { status: o.status });
        this.statuses.set(name, o);
        this.stats.statusWrites++;
      } catch (e) {
        this.stats.statusErrors++;
        this.outage.warn("status", "speaker: a status write failed; retrying at the next change", {
          name,
          error: plainError(e, this.kube.server),
        });
      }
    }
    for (const [name, o] of [...this.statuses]) {
      if (want.has(name)) continue;
      try {
        await this.kube.delete(`${PATHS.metallb(o.plural, this.opts.namespace)}/${name}`);
        this.statuses.delete(name);
      } catch (e) {
        if (e instanceof KubeError && e.status === 404) this.statuses.delete(name);
        else this.stats.statusErrors++;
      }
    }
    for (const what of now) {
      if (this.announced.has(what)) continue;
      const [proto, svc] = what.split(" ") as [string, string];
      const obj = this.state.service(svc);
      if (obj !== undefined)
        void this.events.emit(
          obj,
          "Normal",
          "NodeAssigned",
          "Announce",
          `announcing from node "${node}" with protocol "${proto}"`,
        );
    }
    this.announced = now;
  }
}
