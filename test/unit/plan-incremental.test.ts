/**
 * The incremental planner (src/plan/plan.ts's Planner) over random edit sequences (fast-check,
 * fixed seed): after every edit — one Service added, removed or relabelled, a pool shrunk or
 * grown, an advertisement changed, a member dying or returning, a decline, local endpoints
 * moving — one long-lived Planner's plan equals a fresh Planner's and the reference planner's
 * (test/unit/plan-reference.ts: the straightforward scan the Planner replaced). Configurations go
 * through the real validator and allocator, as the daemon runs them; an edit the validator refuses
 * keeps the previous configuration, as the daemon does.
 */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { applyDelta, changedServices, diffConfig, LISTS } from "../../src/appliance/config-delta.ts";
import { type Config, configFromText } from "../../src/config/index.ts";
import { type AllocationState, allocate, emptyAllocation } from "../../src/plan/allocate.ts";
import type { Decline } from "../../src/plan/election.ts";
import { computePlan, type ElectionInputs, type NodeInfo, type Plan, Planner } from "../../src/plan/plan.ts";
import { referencePlan } from "./plan-reference.ts";

const SEED = 20261202;
/** The shared CI machine can be many times slower than a quiet one. */
const SLOW = 120_000;

const NODES = ["n1", "n2", "n3", "n4"] as const;
const ZONES = ["a", "b"] as const;
const APPS = ["web", "db", "dns"] as const;

interface Svc {
  app: (typeof APPS)[number];
  local: boolean;
  ip?: string | undefined;
}

interface Model {
  poolV4: string;
  poolV6: string | null;
  l2: { apps: string[]; zones: string[]; prefer: string | null; ifaces: string[] }[];
  bgp: { apps: string[]; agg: number; communities: string[]; peers: string[] }[];
  peers: { name: string; zone: string | null; asn: number }[];
  services: Map<string, Svc>;
  nodes: Map<string, { zone: string; alive: boolean }>;
  declines: Map<string, Decline[]>;
  endpoints: Map<string, Set<string>>;
}

const doc = (o: unknown) => `---\n${JSON.stringify(o)}\n`;
const meta = (name: string) => ({ name, namespace: "metallb-system" });

function yamlOf(m: Model): string {
  const sel = (apps: string[]) =>
    apps.length === 0 ? undefined : [{ matchExpressions: [{ key: "app", operator: "In", values: apps }] }];
  const zoneSel = (zones: string[]) =>
    zones.length === 0 ? undefined : [{ matchExpressions: [{ key: "zone", operator: "In", values: zones }] }];
  let y = doc({
    apiVersion: "metallb.io/v1beta1",
    kind: "IPAddressPool",
    metadata: meta("lan"),
    spec: { addresses: [m.poolV4, ...(m.poolV6 ? [m.poolV6] : [])] },
  });
  m.l2.forEach((ad, i) => {
    y += doc({
      apiVersion: "metallb.io/v1beta1",
      kind: "L2Advertisement",
      metadata: meta(`l2-${i}`),
      spec: {
        ipAddressPools: ["lan"],
        serviceSelectors: sel(ad.apps),
        nodeSelectors: zoneSel(ad.zones),
        interfaces: ad.ifaces.length ? ad.ifaces : undefined,
        preferredNodeSelectors: ad.prefer
          ? [{ weight: 10, preference: { matchLabels: { zone: ad.prefer } } }]
          : undefined,
      },
    });
  });
  for (const p of m.peers)
    y += doc({
      apiVersion: "metallb.io/v1beta2",
      kind: "BGPPeer",
      metadata: meta(p.name),
      spec: {
        myASN: 64500,
        peerASN: p.asn,
        peerAddress: `10.1.0.${m.peers.indexOf(p) + 1}`,
        nodeSelectors: p.zone ? [{ matchLabels: { zone: p.zone } }] : undefined,
      },
    });
  y += doc({
    apiVersion: "metallb.io/v1beta1",
    kind: "Community",
    metadata: meta("names"),
    spec: {
      communities: [
        { name: "no-export", value: "65535:65281" },
        { name: "big", value: "large:64500:1:2" },
      ],
    },
  });
  m.bgp.forEach((ad, i) => {
    y += doc({
      apiVersion: "metallb.io/v1beta1",
      kind: "BGPAdvertisement",
      metadata: meta(`bgp-${i}`),
      spec: {
        ipAddressPools: ["lan"],
        serviceSelectors: sel(ad.apps),
        aggregationLength: ad.agg,
        communities: ad.communities.length ? ad.communities : undefined,
        peers: ad.peers.length ? ad.peers : undefined,
        localPref: 100,
      },
    });
  });
  for (const [key, s] of m.services) {
    const [namespace, name] = key.split("/");
    y += doc({
      apiVersion: "v1",
      kind: "Service",
      metadata: {
        name,
        namespace,
        labels: { app: s.app },
        annotations: s.ip ? { "metallb.io/loadBalancerIPs": s.ip } : undefined,
      },
      spec: {
        type: "LoadBalancer",
        ports: [{ port: 80 }],
        externalTrafficPolicy: s.local ? "Local" : "Cluster",
        ...(s.ip === undefined ? { ipFamilyPolicy: "PreferDualStack", ipFamilies: ["IPv4", "IPv6"] } : {}),
      },
    });
  }
  return y;
}

type Edit =
  | { k: "addService"; key: string; app: Svc["app"]; local: boolean; ip: string | null }
  | { k: "removeService"; i: number }
  | { k: "relabel"; i: number; app: Svc["app"] }
  | { k: "pool"; v4: string; v6: string | null }
  | { k: "l2"; i: number; apps: string[]; zones: string[]; prefer: string | null; ifaces: string[] }
  | { k: "dropL2" }
  | { k: "bgp"; apps: string[]; agg: number; communities: string[]; peers: string[] }
  | { k: "dropBgp" }
  | { k: "node"; name: string; alive: boolean; zone: string }
  | { k: "decline"; node: string; i: number; to: string | null }
  | { k: "undecline"; node: string }
  | { k: "endpoints"; i: number; nodes: string[] };

const pick = <T>(xs: readonly T[]) => fc.constantFrom(...xs);
const subset = <T>(xs: readonly T[]) => fc.subarray([...xs]);
const EDIT: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({
    k: fc.constant("addService" as const),
    key: fc.tuple(pick(["shop", "infra"]), fc.integer({ min: 0, max: 30 })).map(([ns, i]) => `${ns}/s${i}`),
    app: pick(APPS),
    local: fc.boolean(),
    ip: fc.option(pick(["10.0.0.5", "10.0.0.9", "10.0.0.14"]), { nil: null }),
  }),
  fc.record({ k: fc.constant("removeService" as const), i: fc.nat() }),
  fc.record({ k: fc.constant("relabel" as const), i: fc.nat(), app: pick(APPS) }),
  fc.record({
    k: fc.constant("pool" as const),
    v4: pick(["10.0.0.0/28", "10.0.0.0/29", "10.0.0.4-10.0.0.20"]),
    v6: fc.option(pick(["fd00::/124", "fd00::/126"]), { nil: null }),
  }),
  fc.record({
    k: fc.constant("l2" as const),
    i: fc.nat({ max: 2 }),
    apps: subset(APPS),
    zones: subset(ZONES),
    prefer: fc.option(pick(ZONES), { nil: null }),
    ifaces: subset(["eth0", "eth1"]),
  }),
  fc.constant({ k: "dropL2" as const }),
  fc.record({
    k: fc.constant("bgp" as const),
    apps: subset(APPS),
    agg: pick([28, 30, 32]),
    communities: subset(["no-export", "65000:1", "big", "large:1:2:3"]),
    peers: subset(["tor-a", "tor-b"]),
  }),
  fc.constant({ k: "dropBgp" as const }),
  fc.record({ k: fc.constant("node" as const), name: pick(NODES), alive: fc.boolean(), zone: pick(ZONES) }),
  fc.record({
    k: fc.constant("decline" as const),
    node: pick(NODES),
    i: fc.nat(),
    to: fc.option(pick(NODES), { nil: null }),
  }),
  fc.record({ k: fc.constant("undecline" as const), node: pick(NODES) }),
  fc.record({ k: fc.constant("endpoints" as const), i: fc.nat(), nodes: subset(NODES) }),
);

function apply(m: Model, e: Edit, alloc: AllocationState): void {
  const keys = [...m.services.keys()];
  const at = (i: number) => keys[i % Math.max(1, keys.length)];
  switch (e.k) {
    case "addService":
      m.services.set(e.key, { app: e.app, local: e.local, ip: e.ip ?? undefined });
      break;
    case "removeService": {
      const k = at(e.i);
      if (k !== undefined) m.services.delete(k);
      break;
    }
    case "relabel": {
      const s = m.services.get(at(e.i) ?? "");
      if (s) s.app = e.app;
      break;
    }
    case "pool":
      m.poolV4 = e.v4;
      m.poolV6 = e.v6;
      break;
    case "l2":
      m.l2[Math.min(e.i, m.l2.length)] = { apps: e.apps, zones: e.zones, prefer: e.prefer, ifaces: e.ifaces };
      break;
    case "dropL2":
      m.l2.pop();
      break;
    case "bgp":
      m.bgp.push({ apps: e.apps, agg: e.agg, communities: e.communities, peers: e.peers });
      if (m.bgp.length > 2) m.bgp.shift();
      break;
    case "dropBgp":
      m.bgp.pop();
      break;
    case "node":
      m.nodes.set(e.name, { zone: e.zone, alive: e.alive });
      break;
    case "decline": {
      const a = alloc.assignments[e.i % Math.max(1, alloc.assignments.length)];
      const ip = a?.ips[0];
      if (ip !== undefined) m.declines.set(e.node, [{ ip, ...(e.to !== null ? { to: e.to } : {}) }]);
      break;
    }
    case "undecline":
      m.declines.delete(e.node);
      break;
    case "endpoints": {
      const k = at(e.i);
      if (k !== undefined) m.endpoints.set(k, new Set(e.nodes));
      break;
    }
  }
}

/**
 * `next` with each object equal to one of `prev` (as JSON) replaced by that object: as the file
 * worker's document cache gives a document whose text did not change (the same object).
 */
function sameObjects(prev: Config, next: Config): Config {
  const out: Record<string, unknown> = { ...next };
  for (const name of LISTS) {
    const was = new Map<string, unknown>((prev[name] as unknown[]).map((o) => [JSON.stringify(o), o]));
    out[name] = (next[name] as unknown[]).map((o) => was.get(JSON.stringify(o)) ?? o);
  }
  return out as unknown as Config;
}

function initial(): Model {
  return {
    poolV4: "10.0.0.0/28",
    poolV6: "fd00::/124",
    l2: [{ apps: [], zones: [], prefer: null, ifaces: [] }],
    bgp: [],
    peers: [
      { name: "tor-a", zone: null, asn: 64500 },
      { name: "tor-b", zone: "a", asn: 64501 },
    ],
    services: new Map([
      ["shop/web", { app: "web", local: false }],
      ["infra/dns", { app: "dns", local: true }],
      ["shop/s1", { app: "db", local: false }],
      ["shop/s2", { app: "web", local: false }],
      ["infra/s3", { app: "web", local: true }],
    ]),
    nodes: new Map([
      ["n1", { zone: "a", alive: true }],
      ["n2", { zone: "b", alive: true }],
      ["n3", { zone: "b", alive: true }],
    ]),
    declines: new Map(),
    endpoints: new Map(),
  };
}

describe("the incremental planner equals the full plan", () => {
  // Without local endpoints too (the appliance: the aligned fast path after a reload), and as the
  // appliance's file reloads make them: each Config the last one with the delta applied (its
  // unchanged lists and Services the same objects), allocated with the delta's hint.
  for (const [endpoints, deltas] of [
    [true, false],
    [false, false],
    [false, true],
  ] as const)
    test(
      `on random edit sequences, from every node's point of view${endpoints ? "" : " (no local endpoints)"}${deltas ? " (Configs from deltas)" : ""}`,
      () => {
        let steps = 0;
        let refused = 0;
        let routes = 0;
        let elsewhere = 0;
        let reused = 0;
        fc.assert(
          fc.property(
            fc.array(EDIT, { minLength: 1, maxLength: 25 }),
            pick(["n1", "n2", "n4"]),
            (edits, me) => {
              const m = initial();
              const planner = new Planner();
              let config: Config | undefined;
              let alloc = emptyAllocation();
              let before: { plan: Plan; copy: Plan } | undefined;
              for (const e of edits) {
                apply(m, e, alloc);
                const r = configFromText(yamlOf(m), "model.yaml");
                if (r.ok && deltas && config !== undefined) {
                  const delta = diffConfig(config, sameObjects(config, r.config));
                  const changed = changedServices(config, delta);
                  config = applyDelta(config, delta);
                  alloc = allocate(config, alloc, {}, { changed });
                } else if (r.ok) {
                  config = r.config;
                  alloc = allocate(config, alloc);
                } else refused++;
                if (config === undefined) continue;
                const info = (name: string): NodeInfo => ({
                  name,
                  labels: { zone: m.nodes.get(name)?.zone ?? "a" },
                });
                const known = [...m.nodes.keys()].map(info);
                const members = [...m.nodes].filter(([, n]) => n.alive).map(([name]) => info(name));
                const inputs: ElectionInputs = {
                  known,
                  declines: m.declines,
                  ...(endpoints ? { localEndpoints: m.endpoints } : {}),
                };
                const self = info(me);
                const got = planner.plan(config, alloc.assignments, self, members, inputs);
                // The plan before is left as it was (the next one shares its unchanged parts).
                if (before !== undefined) expect(before.plan).toEqual(before.copy);
                before = { plan: got, copy: structuredClone(got) };
                expect(got).toEqual(referencePlan(config, alloc.assignments, self, members, inputs));
                expect(got).toEqual(new Planner().plan(config, alloc.assignments, self, members, inputs));
                steps++;
                if (planner.reused) reused++;
                if (got.routes.length > 0) routes++;
                if (got.l2Elsewhere.length > 0 && got.l2.length > 0) elsewhere++;
              }
            },
          ),
          { seed: SEED, numRuns: 100 },
        );
        // The sequences exercise what they are meant to: most edits valid, routes and elections.
        expect(steps).toBeGreaterThan(400);
        expect(refused).toBeLessThan(steps / 4);
        expect(routes).toBeGreaterThan(steps / 10);
        expect(elsewhere).toBeGreaterThan(steps / 12);
        // The last call's slots kept for what did not change (without local endpoints only).
        if (!endpoints) expect(reused).toBeGreaterThan(steps / 20);
      },
      SLOW,
    );

  test("a new assignment sharing a kept one's address: a plan of its own, the plan before untouched", () => {
    const m = initial();
    m.poolV6 = null;
    const r = configFromText(yamlOf(m), "model.yaml");
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const self: NodeInfo = { name: "n1", labels: { zone: "a" } };
    const members = [self, { name: "n2", labels: { zone: "b" } }];
    const a = { key: "infra/dns", pool: "lan", ips: ["10.0.0.1"] };
    const b = { key: "shop/s1", pool: "lan", ips: ["10.0.0.2"] };
    const c = { key: "shop/web", pool: "lan", ips: ["10.0.0.3"] };
    const planner = new Planner();
    const first = planner.plan(r.config, [a, b, c], self, members);
    const copy = structuredClone(first);
    // s2 joins a's address (a shared key), between the same first and last assignments.
    for (const added of [
      { key: "shop/s2", pool: "lan", ips: ["10.0.0.1"] },
      { key: "shop/s2", pool: "lan", ips: ["10.0.0.9", "10.0.0.9"] },
    ]) {
      const next = [a, b, added, c];
      const got = planner.plan(r.config, next, self, members);
      expect(first).toEqual(copy);
      expect(got).toEqual(new Planner().plan(r.config, next, self, members));
      expect(got).toEqual(referencePlan(r.config, next, self, members));
      planner.plan(r.config, [a, b, c], self, members);
    }
    // And one that shares nothing takes the reuse path.
    const next = [a, b, { key: "shop/s2", pool: "lan", ips: ["10.0.0.4"] }, c];
    const got = planner.plan(r.config, next, self, members);
    expect(planner.reused).toBe(true);
    expect(first).toEqual(copy);
    expect(got).toEqual(new Planner().plan(r.config, next, self, members));
  });

  test("computePlan (one shared Planner) gives the reference plan whatever it planned before", () => {
    const m = initial();
    const r = configFromText(yamlOf(m), "model.yaml");
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const alloc = allocate(r.config, emptyAllocation());
    const n1: NodeInfo = { name: "n1", labels: { zone: "a" } };
    const n2: NodeInfo = { name: "n2", labels: { zone: "b" } };
    for (const [self, members] of [
      [n1, [n1, n2]],
      [n2, [n1, n2]],
      [n1, [n1]],
      [n1, [n1, n2]],
    ] as const) {
      expect(computePlan(r.config, alloc.assignments, self, members)).toEqual(
        referencePlan(r.config, alloc.assignments, self, members),
      );
    }
  });
});
