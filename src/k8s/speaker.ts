/**
 * The speaker role (every node): the appliance's planner and drivers fed by the cluster.
 *
 * Assignments are what the controller wrote (Service status.loadBalancer.ingress); members are
 * the Ready Nodes — and, with live membership (a cluster key), only those the authenticated
 * heartbeats say are alive (src/k8s/members.ts); externalTrafficPolicy: Local Services are
 * announced only from nodes with a ready endpoint (EndpointSlices). With Lease fencing, a VIP
 * this node wins is announced only while it holds that VIP's Lease (src/k8s/fence.ts). The plan
 * goes to the drivers (XDP, BGP, ...) through the plan applier shared with the appliance
 * (src/node/applier.ts): only when it changed, and again with backoff when a driver failed. Who
 * announces what is published as ServiceL2Status / ServiceBGPStatus objects and a `NodeAssigned`
 * Event on the Service (src/k8s/speaker-status.ts).
 *
 * With the API server unreachable the informers keep the last known objects, so the plan and
 * everything announced stay as they were; nothing is withdrawn because a watch broke.
 */

import type { FailoverRefusal, FailoverRequest, FailoverResult } from "../api/runtime.ts";
import type { Decline } from "../cluster/heartbeat.ts";
import type { Config } from "../config/index.ts";
import type { Driver } from "../drivers/driver.ts";
import { type NodeEvent, PlanApplier, type Timers } from "../node/applier.ts";
import type { L2Election, NodeInfo, Plan, PlannedAssignment } from "../plan/plan.ts";
import { type NodePlan, type RoutingBundle, resolvePlan } from "../plan/resolve.ts";
import type { Logger } from "../util/log.ts";
import type { Kube } from "./client.ts";
import type { FenceVerdict } from "./fence.ts";
import { electionMembers, type LiveMembership } from "./members.ts";
import { assignmentOf, SpeakerPlanner } from "./speaker-plan.ts";
import { StatusPublisher } from "./speaker-status.ts";
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
  /** Timers for the applier's retries (tests pass their own). */
  timers?: Timers | undefined;
  onEvent?: ((e: NodeEvent) => void) | undefined;
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

/** Assignments as the controller published them (Services vipd handles that hold addresses). */
export function assignmentsFromServices(config: Config, cls: string | undefined): PlannedAssignment[] {
  const out: PlannedAssignment[] = [];
  for (const s of config.services) {
    const a = assignmentOf(s, cls);
    if (a !== undefined) out.push(a);
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Same peers, BFD profiles and speaker identity (objects compared by identity). */
function sameRouting(a: RoutingBundle, b: RoutingBundle): boolean {
  const same = <T>(x: readonly T[], y: readonly T[]) =>
    x.length === y.length && x.every((v, i) => v === y[i]);
  return (
    same(a.peers, b.peers) &&
    same(a.bfdProfiles, b.bfdProfiles) &&
    (a.speaker === undefined) === (b.speaker === undefined) &&
    a.speaker?.routerID === b.speaker?.routerID
  );
}

export class Speaker {
  /** The plan applier (shared with the appliance): drivers, retries, owner changes, failover. */
  readonly applier: PlanApplier;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** A reconcile is queued and has not started yet (kicks meanwhile join it). */
  private queued: Promise<void> | undefined;
  private stopped = false;
  private readonly status: StatusPublisher;
  private plans = 0;
  /** The plan kept change by change (src/k8s/speaker-plan.ts), and what changed since the last one. */
  private readonly planner = new SpeakerPlanner();
  private readonly changedServices: Set<string>;
  private readonly changedEndpoints: Set<string>;
  /** Services planned: by the last plan, and in all (full plans count every Service). */
  private planned = { last: 0, total: 0, full: 0 };
  /** The last plan handed to the applier, and what it was made of (kept while they stay the same). */
  private last: { plan: Plan; l2: Plan["l2"]; config: Config; node: NodePlan } | undefined;

  constructor(
    kube: Kube,
    private readonly state: ClusterState,
    private opts: SpeakerOptions,
  ) {
    this.opts = { ...opts };
    this.changedServices = state.index.feed();
    this.changedEndpoints = state.endpointFeed();
    this.status = new StatusPublisher(kube, state, opts);
    this.applier = new PlanApplier({
      node: () => opts.node,
      log: opts.log,
      membership: opts.membership,
      retry: () => this.kick(),
      skipUnchanged: "identity",
      timers: opts.timers,
      onEvent: opts.onEvent,
    });
    for (const d of opts.drivers) this.applier.addDriver(d);
  }

  get stats(): {
    plans: number;
    fullPlans: number;
    servicesPlanned: number;
    applies: number;
    statusWrites: number;
    statusErrors: number;
  } {
    return {
      plans: this.plans,
      fullPlans: this.planned.full,
      servicesPlanned: this.planned.total,
      applies: this.applier.applies,
      statusWrites: this.status.writes,
      statusErrors: this.status.errors,
    };
  }

  /** Layer-2 owner changes seen by this node, by kind (vipd_l2_ownership_changes_total). */
  get ownerChanges(): PlanApplier["ownerChanges"] {
    return this.applier.ownerChanges;
  }

  get currentPlan(): Plan {
    return this.applier.plan;
  }

  /**
   * Per VIP: owner, candidates, why each other node is not the owner, and — with fencing — the
   * state of this node's claim on the VIP's Lease (Waiting: who holds it, until when).
   */
  elections(): SpeakerElection[] {
    const verdicts = new Map((this.opts.fence?.verdicts() ?? []).map((v) => [v.ip, v]));
    return (this.applier.plan.elections ?? []).map((e) => {
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

  /** Withdraws every layer-2 entry at once (a clean shutdown with live membership). */
  async releaseL2(): Promise<void> {
    await this.stop();
    await this.applier.serial(async () => {
      this.applier.install({ ...this.applier.plan, l2: [], holdL2: false });
      await this.applier.apply();
    });
    this.applier.halt();
  }

  /**
   * Forced failover (admin, `POST /api/v1/l2/failover`): this node, the VIP's owner, declines it
   * so the next candidate (or the named one) takes it; `cancel` withdraws the decline. The
   * decline travels with this node's heartbeats (src/plan/failover.ts); with fencing the new
   * owner announces once this node, having removed its entry, hands the VIP's Lease back.
   */
  l2Failover(req: FailoverRequest): Promise<({ ok: true } & FailoverResult) | FailoverRefusal> {
    return this.applier.failover(req, {
      key: (e, ip) => this.declineKey(e, ip),
      replan: () => this.schedule(),
    });
  }

  /** The election key of a VIP's addresses: its Service's first address (as the controller wrote). */
  private declineKey(e: L2Election | undefined, ip: string): string {
    const svc = e?.services[0];
    if (svc === undefined) return ip;
    return this.planner.assignment(svc)?.ips[0] ?? ip;
  }

  /** Live membership (a cluster key given): set before the first plan. */
  setMembership(m: SpeakerOptions["membership"]): void {
    this.opts.membership = m;
    this.applier.setMembership(m);
  }

  /** Replans after a short debounce (watch events come in bursts). */
  kick(): void {
    if (this.stopped || this.queued !== undefined) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.schedule(), this.opts.debounceMs ?? 20);
  }

  /** Queues a reconcile behind the running one (joining one queued already); resolves when done. */
  private schedule(): Promise<void> {
    clearTimeout(this.timer);
    if (this.stopped) return Promise.resolve();
    this.queued ??= this.applier.serial(async () => {
      this.queued = undefined;
      if (!this.stopped) await this.reconcile();
    });
    return this.queued;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.applier.halt();
  }

  /** Resolves when no reconcile is running or queued. */
  idle(): Promise<void> {
    return this.applier.idle();
  }

  private async reconcile(): Promise<void> {
    if (!this.state.synced) {
      this.state.waitSynced().then(() => this.kick());
      return;
    }
    const config = this.state.config().config;
    if (config === undefined) return;
    this.plans++;
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
    // Only what changed since the last plan is planned again (every Service when something all
    // share changed: the configuration, the nodes, the members).
    const changed = new Set([...this.changedServices, ...this.changedEndpoints]);
    this.changedServices.clear();
    this.changedEndpoints.clear();
    const r = this.planner.plan({
      config,
      loadBalancerClass: this.opts.loadBalancerClass,
      self,
      members,
      inputs: {
        known: nodes,
        notReady,
        declines: m?.declines?.(),
        networkUnavailable: this.state.networkUnavailable(),
        localEndpoints: this.state.localEndpoints(),
      },
      changed,
      service: (key) => this.state.index.valid(key),
    });
    this.planned.last = r.planned;
    this.planned.total += r.planned;
    if (r.full) this.planned.full++;
    // The event hub diffs the assignments it is given: only when they changed (and the first time).
    if (r.assignmentsChanged || this.plans === 1)
      this.opts.onEvent?.({ type: "assignments", services: r.assignments as PlannedAssignment[] });
    const plan = r.plan;
    const fence = this.opts.fence;
    // Won is not enough with fencing: announced only while this node holds the VIP's Lease.
    const ok = fence?.mayAnnounce();
    let l2 = ok === undefined ? plan.l2 : plan.l2.filter((e) => ok.has(e.ip));
    const last = this.last;
    if (
      last !== undefined &&
      l2 !== plan.l2 &&
      l2.length === last.l2.length &&
      l2.every((e, i) => e === last.l2[i])
    )
      l2 = last.l2;
    // The same plan, announcements and configuration: the same object (the applier skips it).
    let node: NodePlan;
    if (
      last !== undefined &&
      last.plan === plan &&
      last.l2 === l2 &&
      last.config.peers === config.peers &&
      last.config.bfdProfiles === config.bfdProfiles
    )
      node = last.node;
    else {
      node = resolvePlan(l2 === plan.l2 ? plan : { ...plan, l2 }, config);
      if (last !== undefined && sameRouting(node.routing, last.node.routing))
        node.routing = last.node.routing;
    }
    this.last = { plan, l2, config, node };
    if (node !== this.applier.plan) this.applier.install(node);
    await this.applier.apply();
    // Only now, with the entries of lost VIPs gone from the drivers, may their Leases be handed
    // back (and Leases of newly won VIPs be acquired; they are announced once held).
    fence?.setElected(plan.l2.map((e) => e.ip));
    await this.status.publish(this.applier.plan);
  }
}
