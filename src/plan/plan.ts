/**
 * The announcement planner: from the validated config, the allocator's assignments and who this
 * node is, decide what this node announces — which VIPs it answers ARP/NDP for on which
 * interfaces (layer 2), and which prefixes go to which BGP peer with which attributes.
 *
 * Pure: values in, a Plan out. Drivers apply the difference between two plans.
 *
 * Cost proportional to what changed: a `Planner` keeps, per Service, what it decided last time
 * (its VIPs' election, the routes it contributes) with what that depended on, and per VIP the
 * members' hash order; a call recomputes only the Services whose inputs changed — every one when
 * something all share changed (pools, advertisements, members, declines), but then without
 * hashing again. Indexes replace scans (Service by key, advertisements by pool), so a full plan
 * is O(n log n) (the sort) in Services. `computePlan` uses one shared Planner; its result never
 * depends on what the Planner saw before (plan-incremental.test.ts checks it on random edits).
 *
 * Layer-2 ownership follows MetalLB: among the eligible nodes (matching the L2Advertisement's
 * nodeSelectors), order by preferredNodeSelectors weight (highest first), then by
 * sha256(node + "#" + ip); the first one announces. A dual-stack Service follows its first IP.
 * The election itself, with its eligibility rules and forced-failover declines, is
 * src/plan/election.ts.
 */

import type { Config } from "../config/index.ts";
import type { IPAddressPool } from "../config/schemas.ts";
import { anySelectorMatches } from "../config/selector.ts";
import { sameEnds } from "../util/same-ends.ts";
import { type Decline, type Election, type ElectionNode, elect } from "./election.ts";
import { BgpPlanner } from "./plan-bgp.ts";
import {
  type AdsOnPool,
  byKey,
  electionNodes,
  hashOrder,
  type Indexed,
  IpSorter,
  indexed,
  type L2Decision,
  NO_SERVICE,
  prune,
  type Round,
  type ServiceFacts,
  sameL2Basis,
} from "./plan-index.ts";
import type { ElectionInputs, L2Election, L2Entry, NodeInfo, Plan, PlannedAssignment } from "./plan-types.ts";

export type {
  BgpRoute,
  ElectionInputs,
  L2Election,
  L2Entry,
  NodeInfo,
  Plan,
  PlannedAssignment,
} from "./plan-types.ts";

/** The last call's layer-2 work, index by index of its sorted assignments (see planL2). */
interface Aligned {
  sorted: readonly PlannedAssignment[];
  ix: Indexed;
  l2: Map<string, L2Decision>;
  decisions: (L2Decision | undefined)[];
  /** Each assignment's Service facts (NO_SERVICE: none). */
  facts: ServiceFacts[];
  /** No address was shared: each slot has one Service (the slots in assignment order below). */
  unique: boolean;
  /** The election round its decisions' elections are from. */
  round: number;
  /** Its slots, in assignment order (not sorted), each assignment's `decision.ips.length` of them. */
  slots: Slot[];
  /**
   * Every slot's address, when known (else made from `slots` when needed). Addresses only: a
   * map to the slots would keep, after a membership change (the same addresses, new slots), the
   * call before's slots and with them its whole plan.
   */
  ips: Set<string> | undefined;
}

/** One address of a plan: its election, and its entry on this node or elsewhere. */
interface Slot {
  ip: string;
  election: L2Election;
  mine: L2Entry | undefined;
  other: L2Entry | undefined;
}

export const EMPTY_PLAN: Plan = { node: "", l2: [], l2Elsewhere: [], peers: [], routes: [], holdL2: false };

export { electionHash, orderCandidates } from "./election.ts";

/**
 * The planner with its memory: per Service the last layer-2 and BGP decisions with what they
 * were computed from, per VIP the members' hash order. A call's result is the same as a fresh
 * Planner's; only its cost depends on what changed since the previous call.
 */
export class Planner {
  private l2Context = "";
  /** The last call's decisions, index by index of its sorted assignments (see planL2). */
  private aligned: Aligned | undefined;
  /** The last sorted assignments have distinct keys. */
  private distinct = false;
  /** Whether the last call reused the call before's slots (tests). */
  reused = false;
  private l2 = new Map<string, L2Decision>();
  private readonly bgp = new BgpPlanner();
  private adsMemo = new Map<string, AdsOnPool | undefined>();
  private roundText = "";
  private roundNo = 0;
  private memo = new Map<readonly string[], Map<string, Election>>();
  private orderNames = "";
  private orders = new Map<string, string[]>();
  /** Bumped whenever `orders` is emptied: a decision's kept order is from the same generation. */
  private ordersNo = 0;
  /** Distinct hash orders by their text: VIPs with the same order share one array. */
  private interned = new Map<string, string[]>();
  private readonly sorter = new IpSorter();
  private lastInput: readonly PlannedAssignment[] | undefined;
  private lastSorted: PlannedAssignment[] = [];

  /** Computes this node's plan. `members` are the live nodes of the site (this node when it is ready). */
  plan(
    config: Config,
    assignments: readonly PlannedAssignment[],
    self: NodeInfo,
    members: readonly NodeInfo[] = [self],
    inputs: ElectionInputs = {},
  ): Plan {
    const ix = indexed(config);
    // Sorted by key so that the plan (entry and service order) does not depend on the input order.
    if (assignments !== this.lastInput) {
      this.lastInput = assignments;
      // The allocator hands them over sorted already: checking is O(n), sorting is not.
      let sorted = true;
      for (let i = 1; i < assignments.length && sorted; i++)
        sorted = byKey(assignments[i - 1] as PlannedAssignment, assignments[i] as PlannedAssignment) < 0;
      this.lastSorted = sorted ? assignments.slice() : [...assignments].sort(byKey);
      let distinct = true;
      if (!sorted)
        for (let i = 1; i < this.lastSorted.length && distinct; i++)
          distinct =
            (this.lastSorted[i - 1] as PlannedAssignment).key !==
            (this.lastSorted[i] as PlannedAssignment).key;
      this.distinct = distinct;
    }
    const sorted = this.lastSorted;
    const l2 = this.planL2(ix, sorted, self, electionNodes(members, inputs), inputs);
    const { peers, routes } = this.bgp.plan(config, ix, sorted, self);
    return {
      node: self.name,
      l2: l2.mine,
      l2Elsewhere: l2.other,
      peers,
      holdL2: false,
      elections: l2.elections,
      routes,
    };
  }

  /** The members' hash order for a VIP, cached while the set of known names stays the same. */
  private orderFor(ip: string, names: readonly string[]): string[] {
    let o = this.orders.get(ip);
    if (o === undefined) {
      const fresh = hashOrder(ip, names);
      const text = fresh.join("\n");
      o = this.interned.get(text);
      if (o === undefined) {
        o = fresh;
        this.interned.set(text, o);
      }
      this.orders.set(ip, o);
    }
    return o;
  }

  /** What the config and the Service fix (MetalLB's speaker: the pool is the one holding the address). */
  private decideL2(
    ix: Indexed,
    a: PlannedAssignment,
    svc: ServiceFacts,
    eps: string,
    self: NodeInfo,
  ): L2Decision {
    // The pool is the one that contains the address (as MetalLB's speaker decides), not the name
    // the assignment carries: an address kept after its pool shrank is in no pool, and silent.
    const first = a.ips[0];
    const pool = first === undefined ? undefined : ix.poolOf(first);
    const ads = pool === undefined ? undefined : this.adsFor(ix, pool, svc, self);
    if (pool === undefined || ads === undefined)
      return {
        fromIps: a.ips,
        labels: svc.labelsText,
        eps,
        ips: [],
        ads: [],
        adsKey: "",
        interfaces: [],
        election: undefined,
        round: -1,
        order: undefined,
        orders: -1,
      };
    const ips = a.ips.length === 1 ? a.ips : a.ips.filter((ip, i) => i === 0 || ix.poolOf(ip) === pool);
    // What it is computed from is kept in the decision itself, not in an object per Service.
    return {
      fromIps: a.ips,
      labels: svc.labelsText,
      eps,
      ips,
      ads: ads.ads,
      adsKey: ads.adsKey,
      interfaces: ads.interfaces,
      election: undefined,
      round: -1,
      order: undefined,
      orders: -1,
    };
  }

  /**
   * The advertisements that announce a pool's address for a Service with these labels, and this
   * node's interfaces for them; the same for every Service with the same labels (kept per pool
   * and labels until the config or this node changes). Undefined: none announces it.
   */
  private adsFor(ix: Indexed, pool: IPAddressPool, svc: ServiceFacts, self: NodeInfo): AdsOnPool | undefined {
    const key = `${pool.metadata.name}\n${svc.labelsText}`;
    if (this.adsMemo.has(key)) return this.adsMemo.get(key);
    const ads = (ix.l2ByPool.get(pool.metadata.name) ?? []).filter((ad) =>
      anySelectorMatches(ad.spec.serviceSelectors, svc.labels),
    );
    let r: AdsOnPool | undefined;
    if (ads.length > 0) {
      const mineAds = ads.filter((ad) => anySelectorMatches(ad.spec.nodeSelectors, self.labels));
      r = {
        ads: ads.map((ad) => ({
          name: ad.metadata.name,
          nodeSelectors: ad.spec.nodeSelectors,
          preferredNodeSelectors: ad.spec.preferredNodeSelectors,
        })),
        adsKey: ads.map((ad) => ad.metadata.name).join(","),
        interfaces: mineAds.some((ad) => (ad.spec.interfaces ?? []).length === 0)
          ? []
          : [...new Set(mineAds.flatMap((ad) => ad.spec.interfaces ?? []))].sort(),
      };
    }
    this.adsMemo.set(key, r);
    return r;
  }

  /**
   * The election for one Service's VIPs (a dual-stack Service follows its first IP). Elections
   * that depend only on the advertisements and the hash order are the same for every VIP with
   * those: computed once per round (`memo`), shared (never mutated).
   */
  private electL2(
    d: L2Decision,
    a: PlannedAssignment,
    round: Round,
    local: ReadonlySet<string> | undefined,
    eps: string,
  ): Election {
    // The hash order is kept on the decision while the known names stay the same.
    let order = d.orders === this.ordersNo ? d.order : undefined;
    if (order === undefined) {
      order = this.orderFor(d.ips[0] as string, round.names);
      d.order = order;
      d.orders = this.ordersNo;
    }
    const args = () => ({
      ips: a.ips,
      nodes: round.nodes,
      advertisements: d.ads,
      localEndpoints: local,
      declines: round.declines,
      hashOrder: order,
    });
    // A decline names an address: those VIPs are elected on their own.
    if (round.declined.size > 0 && a.ips.some((ip) => round.declined.has(ip))) return elect(args());
    const key = eps === "-" ? d.adsKey : `${d.adsKey}\n${eps}`;
    let byAds = round.memo.get(order);
    if (byAds === undefined) {
      byAds = new Map();
      round.memo.set(order, byAds);
    }
    let e = byAds.get(key);
    if (e === undefined) {
      e = elect(args());
      byAds.set(key, e);
    }
    return e;
  }

  /** Starts an election round: a new one when members, declines or endpoints changed. */
  private round(ix: Indexed, self: NodeInfo, nodes: ElectionNode[], inputs: ElectionInputs): Round {
    const fixed = JSON.stringify([ix.l2Text, self]);
    if (fixed !== this.l2Context) {
      this.l2Context = fixed;
      this.l2 = new Map();
      this.adsMemo = new Map();
    }
    const declines = [...(inputs.declines ?? new Map<string, readonly Decline[]>())];
    const text = JSON.stringify([fixed, nodes, declines, inputs.localEndpoints !== undefined]);
    if (text !== this.roundText) {
      this.roundText = text;
      this.roundNo++;
      this.memo = new Map();
    }
    const names = nodes.map((n) => n.name);
    const namesText = [...names].sort().join("\n");
    if (namesText !== this.orderNames) {
      this.orderNames = namesText;
      this.ordersNo++;
      this.orders = new Map();
      this.interned = new Map();
      this.memo = new Map();
    }
    const declined = new Set(declines.flatMap(([, ds]) => ds.map((x) => x.ip)));
    return { no: this.roundNo, nodes, names, declines: inputs.declines, declined, memo: this.memo };
  }

  /** Layer 2: every advertisement that covers the Service's pool and selects the Service. */
  private planL2(
    ix: Indexed,
    sorted: readonly PlannedAssignment[],
    self: NodeInfo,
    nodes: ElectionNode[],
    inputs: ElectionInputs,
  ): { mine: L2Entry[]; other: L2Entry[]; elections: L2Election[] } {
    const round = this.round(ix, self, nodes, inputs);
    if (this.orders.size > 2 * sorted.length + 1024) {
      this.ordersNo++;
      this.orders = new Map();
      this.interned = new Map();
    }
    const al = this.aligned;
    // A few assignments changed since the last call, with the same decisions and election round
    // (a one-Service reload): the others' slots are the last call's (see `reuse`).
    const made =
      al !== undefined &&
      al.sorted !== sorted &&
      this.distinct &&
      al.unique &&
      al.l2 === this.l2 &&
      al.round === round.no &&
      inputs.localEndpoints === undefined
        ? this.reuse(al, ix, sorted, self, round)
        : undefined;
    this.reused = made !== undefined;
    const { slots } = made ?? this.placeAll(ix, sorted, self, round, inputs);
    if (this.l2.size > 2 * sorted.length + 1024) this.l2 = prune(this.l2, sorted);
    // Every entry's address has a slot: walking the slots in address order gives the entries in
    // that order too, without sorting them again.
    const all = this.sorter.sort(slots);
    const elections: L2Election[] = [];
    const mine: L2Entry[] = [];
    const other: L2Entry[] = [];
    for (const x of all) {
      elections.push(x.election);
      if (x.mine !== undefined) mine.push(x.mine);
      if (x.other !== undefined) other.push(x.other);
    }
    return { mine, other, elections };
  }

  /** The slots of every assignment (the last call's decisions reused where their basis holds). */
  private placeAll(
    ix: Indexed,
    sorted: readonly PlannedAssignment[],
    self: NodeInfo,
    round: Round,
    inputs: ElectionInputs,
  ): { slots: Slot[] } {
    // One slot per address, in the order first met: its election (the first Service's, as
    // MetalLB's speaker reads it) and its entry on this node or elsewhere (by each Service's owner).
    const slots: Slot[] = [];
    const byIp = new Map<string, Slot>();
    // The same assignments, config and decisions as the last call (a membership change): each
    // Service's decision is where it was, and no address is shared when none was.
    const al = this.aligned;
    const fast =
      al !== undefined &&
      al.sorted === sorted &&
      al.ix === ix &&
      al.l2 === this.l2 &&
      inputs.localEndpoints === undefined;
    const decisions: (L2Decision | undefined)[] = fast ? al.decisions : new Array(sorted.length);
    const facts: ServiceFacts[] = fast ? al.facts : new Array(sorted.length);
    const unique = fast && al.unique;
    let shared = false;
    for (let i = 0; i < sorted.length; i++) {
      const a = sorted[i] as PlannedAssignment;
      let d: L2Decision | undefined;
      let local: ReadonlySet<string> | undefined;
      let eps = "-";
      if (fast) d = decisions[i];
      else {
        const svc = ix.services.get(a.key) ?? NO_SERVICE;
        facts[i] = svc;
        local =
          svc.local && inputs.localEndpoints !== undefined
            ? (inputs.localEndpoints.get(a.key) ?? new Set<string>())
            : undefined;
        eps = local === undefined ? "-" : [...local].sort().join(",");
        d = this.l2.get(a.key);
        if (d === undefined || !sameL2Basis(d, a.ips, svc.labelsText, eps)) {
          d = this.decideL2(ix, a, svc, eps, self);
          this.l2.set(a.key, d);
        }
        decisions[i] = d;
      }
      if (this.place(d, a, round, local, eps, self, slots, unique ? undefined : byIp)) shared = true;
    }
    this.aligned =
      inputs.localEndpoints === undefined
        ? {
            sorted,
            ix,
            l2: this.l2,
            decisions,
            facts,
            unique: fast ? al.unique : !shared,
            round: round.no,
            slots,
            // The same decisions as the last call: the same addresses.
            ips: shared ? undefined : unique ? al.ips : new Set(byIp.keys()),
          }
        : undefined;
    return { slots };
  }

  /**
   * One assignment's slots, appended to `slots` (its election made when its round is older).
   * With `byIp`, an address already there is shared (true returned) and gets no slot of its own;
   * without, every address is taken to be new.
   */
  private place(
    d: L2Decision | undefined,
    a: PlannedAssignment,
    round: Round,
    local: ReadonlySet<string> | undefined,
    eps: string,
    self: NodeInfo,
    slots: Slot[],
    byIp: Map<string, Slot> | undefined,
  ): boolean {
    if (d === undefined || d.ips.length === 0) return false;
    if (d.round !== round.no) {
      d.election = this.electL2(d, a, round, local, eps);
      d.round = round.no;
    }
    const e = d.election as Election;
    let shared = false;
    // Each `services` array made with its first key (an array grown from empty has room to
    // spare). A slot's entry with the same single Service as its election shares its array (no
    // one changes a plan's arrays); a second Service at the slot gives each its own first.
    for (const ip of d.ips) {
      let slot = byIp?.get(ip);
      if (slot !== undefined) {
        shared = true;
        const el = slot.election;
        if (slot.mine?.services === el.services || slot.other?.services === el.services)
          el.services = [...el.services];
        el.services.push(a.key);
      } else {
        slot = {
          ip,
          election: { ip, services: [a.key], owner: e.owner, candidates: e.candidates, notOwner: e.notOwner },
          mine: undefined,
          other: undefined,
        };
        byIp?.set(ip, slot);
        slots.push(slot);
      }
      if (e.owner === undefined) continue;
      const isMine = e.owner === self.name;
      const entry = isMine ? slot.mine : slot.other;
      if (entry !== undefined) {
        if (entry.services === slot.election.services) entry.services = [...entry.services];
        entry.services.push(a.key);
      } else {
        const one = slot.election.services;
        const services = one.length === 1 && one[0] === a.key ? one : [a.key];
        const made = { ip, interfaces: d.interfaces, services, owner: e.owner, candidates: e.candidates };
        if (isMine) slot.mine = made;
        else slot.other = made;
      }
    }
    return shared;
  }

  /**
   * The last call's slots for the assignments that are the same objects at the same place from
   * either end (those before and after what changed), with the same Service facts and a
   * decision whose election is of this round: such a slot is what a full call would make again
   * (no address was shared last time, so a slot has one Service). The others' slots are made
   * anew. Undefined (the caller makes every slot) when much changed, or a new address is shared.
   */
  private reuse(
    al: Aligned,
    ix: Indexed,
    sorted: readonly PlannedAssignment[],
    self: NodeInfo,
    round: Round,
  ): { slots: Slot[] } | undefined {
    const old = al.sorted;
    const m = old.length;
    const n = sorted.length;
    const { head: p, tail: q } = sameEnds(old, sorted);
    if (m - p - q + (n - p - q) > Math.max(64, n / 8)) return undefined;
    let ips = al.ips;
    if (ips === undefined) {
      ips = new Set();
      for (const x of al.slots) ips.add(x.ip);
    }
    // Pass 1: which of the last call's assignments keep their slots (at which new index).
    const decisions: (L2Decision | undefined)[] = new Array(n);
    const facts: ServiceFacts[] = new Array(n);
    const from = new Int32Array(n).fill(-1);
    // The Services whose facts may differ from the last call's (undefined: any of them).
    const touched = ix === al.ix ? new Set<string>() : ix.from?.ix === al.ix ? ix.from.keys : undefined;
    let c = 0;
    for (let j = 0; j < m; j++) {
      const d = al.decisions[j];
      const count = d === undefined ? 0 : d.ips.length;
      const i = j < p ? j : j >= m - q ? j + n - m : -1;
      let keep = false;
      if (i >= 0) {
        const a = sorted[i] as PlannedAssignment;
        const svc =
          touched !== undefined && !touched.has(a.key)
            ? (al.facts[j] as ServiceFacts)
            : (ix.services.get(a.key) ?? NO_SERVICE);
        keep = svc === al.facts[j] && (count === 0 || (d as L2Decision).round === round.no);
        if (keep) {
          decisions[i] = d;
          facts[i] = svc;
          from[i] = c;
        }
      }
      if (!keep)
        for (let k = c; k < c + count; k++) {
          const x = al.slots[k] as Slot;
          ips.delete(x.ip);
        }
      c += count;
    }
    // Pass 2: in assignment order, the kept slots and the new ones.
    const slots: Slot[] = [];
    for (let i = 0; i < n; i++) {
      const f = from[i] as number;
      if (f >= 0) {
        const count = (decisions[i] as L2Decision | undefined)?.ips.length ?? 0;
        for (let k = f; k < f + count; k++) slots.push(al.slots[k] as Slot);
        continue;
      }
      const a = sorted[i] as PlannedAssignment;
      const svc = ix.services.get(a.key) ?? NO_SERVICE;
      facts[i] = svc;
      let d = this.l2.get(a.key);
      if (d === undefined || !sameL2Basis(d, a.ips, svc.labelsText, "-")) {
        d = this.decideL2(ix, a, svc, "-", self);
        this.l2.set(a.key, d);
      }
      decisions[i] = d;
      // An address shared (with a kept slot, another new one, or twice in this one): the caller
      // starts over — before any slot is touched (a kept one is also the last plan's).
      for (const ip of d.ips) {
        if (ips.has(ip)) {
          this.aligned = undefined;
          return undefined;
        }
        ips.add(ip);
      }
      this.place(d, a, round, undefined, "-", self, slots, undefined);
    }
    this.aligned = { sorted, ix, l2: this.l2, decisions, facts, unique: true, round: round.no, slots, ips };
    return { slots };
  }
}

const shared = new Planner();

/** Computes this node's plan. `members` are the live nodes of the site (this node when it is ready). */
export function computePlan(
  config: Config,
  assignments: readonly PlannedAssignment[],
  self: NodeInfo,
  members: readonly NodeInfo[] = [self],
  inputs: ElectionInputs = {},
): Plan {
  return shared.plan(config, assignments, self, members, inputs);
}
