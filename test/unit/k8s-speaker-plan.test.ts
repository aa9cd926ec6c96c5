/**
 * The Kubernetes speaker's incremental plan (src/k8s/speaker-plan.ts) over random event sequences
 * (fast-check, fixed seed): after every event — a Service added, deleted, relabelled, its
 * addresses or traffic policy or class changed, its local endpoints moving, a Service touched
 * without change, a node dying or returning or relabelled, a decline, an advertisement or pool
 * changed — the plan kept change by change equals the full plan of the same inputs (a fresh
 * Planner of src/plan/plan.ts over every Service, as the speaker computed it before), and so do
 * its assignments. A plan equal to the previous one is the same object (the applier skips it by
 * identity). Services share addresses (a slot of several Services) and routes (aggregation).
 */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { type Config, configFromText } from "../../src/config/index.ts";
import { assignmentsFromServices } from "../../src/k8s/speaker.ts";
import { SpeakerPlanner } from "../../src/k8s/speaker-plan.ts";
import type { Decline } from "../../src/plan/election.ts";
import {
  type ElectionInputs,
  type NodeInfo,
  type Plan,
  type PlannedAssignment,
  Planner,
} from "../../src/plan/plan.ts";

const SEED = 20261203;
/** The shared CI machine can be many times slower than a quiet one. */
const SLOW = 120_000;

const NODES = ["n1", "n2", "n3", "n4"] as const;
const ZONES = ["a", "b"] as const;
const APPS = ["web", "db", "dns"] as const;
/** Addresses the controller may have written: shared by several Services, one out of every pool. */
const IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9", "10.0.0.14", "fd00::1", "fd00::2", "10.9.9.9"];

interface Svc {
  app: (typeof APPS)[number];
  local: boolean;
  ips: string[];
  cls: string | null;
  lb: boolean;
}

interface Model {
  poolV4: string;
  l2: { apps: string[]; zones: string[]; prefer: string | null; ifaces: string[] }[];
  bgp: { apps: string[]; agg: number; communities: string[]; peers: string[] }[];
  services: Map<string, Svc>;
  nodes: Map<string, { zone: string; alive: boolean; ready: boolean }>;
  declines: Map<string, Decline[]>;
  endpoints: Map<string, Set<string>>;
}

const doc = (o: unknown) => `---\n${JSON.stringify(o)}\n`;
const meta = (name: string) => ({ name, namespace: "metallb-system" });

/** The metallb.io objects of the model (the configuration every Service shares). */
function crYaml(m: Model): string {
  const sel = (apps: string[]) =>
    apps.length === 0 ? undefined : [{ matchExpressions: [{ key: "app", operator: "In", values: apps }] }];
  const zoneSel = (zones: string[]) =>
    zones.length === 0 ? undefined : [{ matchExpressions: [{ key: "zone", operator: "In", values: zones }] }];
  let y = doc({
    apiVersion: "metallb.io/v1beta1",
    kind: "IPAddressPool",
    metadata: meta("lan"),
    spec: { addresses: [m.poolV4, "fd00::/124"] },
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
  for (const [i, p] of [
    { name: "tor-a", zone: null, asn: 64500 },
    { name: "tor-b", zone: "a", asn: 64501 },
  ].entries())
    y += doc({
      apiVersion: "metallb.io/v1beta2",
      kind: "BGPPeer",
      metadata: meta(p.name),
      spec: {
        myASN: 64500,
        peerASN: p.asn,
        peerAddress: `10.1.0.${i + 1}`,
        nodeSelectors: p.zone ? [{ matchLabels: { zone: p.zone } }] : undefined,
      },
    });
  y += doc({
    apiVersion: "metallb.io/v1beta1",
    kind: "Community",
    metadata: meta("names"),
    spec: { communities: [{ name: "no-export", value: "65535:65281" }] },
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
        localPref: 100 + i,
      },
    });
  });
  return y;
}

/** A Service as the informer hands it over: a new object for every version. */
function serviceObject(key: string, s: Svc): Config["services"][number] {
  const [namespace, name] = key.split("/") as [string, string];
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace, labels: { app: s.app } },
    spec: {
      type: s.lb ? "LoadBalancer" : "ClusterIP",
      ports: [{ port: 80, protocol: "TCP" }],
      externalTrafficPolicy: s.local ? "Local" : "Cluster",
      ...(s.cls !== null ? { loadBalancerClass: s.cls } : {}),
    },
    status: { loadBalancer: s.ips.length > 0 ? { ingress: s.ips.map((ip) => ({ ip })) } : {} },
  } as unknown as Config["services"][number];
}

type Event =
  | { k: "add"; key: string; app: Svc["app"]; local: boolean; ips: string[] }
  | { k: "delete"; i: number }
  | { k: "relabel"; i: number; app: Svc["app"] }
  | { k: "addresses"; i: number; ips: string[] }
  | { k: "policy"; i: number; local: boolean }
  | { k: "class"; i: number; cls: string | null }
  | { k: "type"; i: number; lb: boolean }
  | { k: "touch"; i: number }
  | { k: "endpoints"; i: number; nodes: string[] }
  | { k: "node"; name: string; alive: boolean; ready: boolean; zone: string }
  | { k: "decline"; node: string; ip: string; to: string | null }
  | { k: "undecline"; node: string }
  | { k: "pool"; v4: string }
  | { k: "l2"; i: number; apps: string[]; zones: string[]; prefer: string | null; ifaces: string[] }
  | { k: "bgp"; apps: string[]; agg: number; communities: string[]; peers: string[] }
  | { k: "dropBgp" };

const pick = <T>(xs: readonly T[]) => fc.constantFrom(...xs);
const subset = <T>(xs: readonly T[]) => fc.subarray([...xs]);
const addrs = fc.subarray(IPS, { maxLength: 2 });
/** Service events weigh most: they are what the incremental path is for. */
const EVENT: fc.Arbitrary<Event> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant("add" as const),
      key: fc.tuple(pick(["shop", "infra"]), fc.integer({ min: 0, max: 20 })).map(([ns, i]) => `${ns}/s${i}`),
      app: pick(APPS),
      local: fc.boolean(),
      ips: addrs,
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("delete" as const), i: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("relabel" as const), i: fc.nat(), app: pick(APPS) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("addresses" as const), i: fc.nat(), ips: addrs }) },
  {
    weight: 2,
    arbitrary: fc.record({ k: fc.constant("policy" as const), i: fc.nat(), local: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("class" as const),
      i: fc.nat(),
      cls: fc.option(pick(["other"]), { nil: null }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("type" as const), i: fc.nat(), lb: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("touch" as const), i: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({ k: fc.constant("endpoints" as const), i: fc.nat(), nodes: subset(NODES) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("node" as const),
      name: pick(NODES),
      alive: fc.boolean(),
      ready: fc.boolean(),
      zone: pick(ZONES),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("decline" as const),
      node: pick(NODES),
      ip: pick(IPS),
      to: fc.option(pick(NODES), { nil: null }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("undecline" as const), node: pick(NODES) }) },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant("pool" as const), v4: pick(["10.0.0.0/28", "10.0.0.0/30"]) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("l2" as const),
      i: fc.nat({ max: 1 }),
      apps: subset(APPS),
      zones: subset(ZONES),
      prefer: fc.option(pick(ZONES), { nil: null }),
      ifaces: subset(["eth0", "eth1"]),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("bgp" as const),
      apps: subset(APPS),
      agg: pick([28, 30, 32]),
      communities: subset(["no-export", "65000:1"]),
      peers: subset(["tor-a", "tor-b"]),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ k: "dropBgp" as const }) },
);

/** Applies an event; returns the Service key it changed (the speaker's feeds), or "config"/"nodes". */
function apply(m: Model, e: Event): string | undefined {
  const keys = [...m.services.keys()];
  const at = (i: number) => keys[i % Math.max(1, keys.length)];
  const svc = (i: number): [string, Svc] | undefined => {
    const k = at(i);
    const s = k === undefined ? undefined : m.services.get(k);
    return k === undefined || s === undefined ? undefined : [k, s];
  };
  const edit = (i: number, f: (s: Svc) => void): string | undefined => {
    const x = svc(i);
    if (x === undefined) return undefined;
    f(x[1]);
    return x[0];
  };
  switch (e.k) {
    case "add":
      m.services.set(e.key, { app: e.app, local: e.local, ips: e.ips, cls: null, lb: true });
      return e.key;
    case "delete": {
      const k = at(e.i);
      if (k !== undefined) m.services.delete(k);
      return k;
    }
    case "relabel":
      return edit(e.i, (s) => {
        s.app = e.app;
      });
    case "addresses":
      return edit(e.i, (s) => {
        s.ips = e.ips;
      });
    case "policy":
      return edit(e.i, (s) => {
        s.local = e.local;
      });
    case "class":
      return edit(e.i, (s) => {
        s.cls = e.cls;
      });
    case "type":
      return edit(e.i, (s) => {
        s.lb = e.lb;
      });
    case "touch":
      return edit(e.i, () => {});
    case "endpoints": {
      const k = at(e.i);
      if (k === undefined) return undefined;
      if (e.nodes.length === 0) m.endpoints.delete(k);
      else m.endpoints.set(k, new Set(e.nodes));
      return k;
    }
    case "node":
      m.nodes.set(e.name, { zone: e.zone, alive: e.alive, ready: e.ready });
      return "nodes";
    case "decline":
      m.declines.set(e.node, [{ ip: e.ip, ...(e.to !== null ? { to: e.to } : {}) }]);
      return "nodes";
    case "undecline":
      m.declines.delete(e.node);
      return "nodes";
    case "pool":
      m.poolV4 = e.v4;
      return "config";
    case "l2":
      m.l2[Math.min(e.i, m.l2.length)] = { apps: e.apps, zones: e.zones, prefer: e.prefer, ifaces: e.ifaces };
      return "config";
    case "bgp":
      m.bgp.push({ apps: e.apps, agg: e.agg, communities: e.communities, peers: e.peers });
      if (m.bgp.length > 2) m.bgp.shift();
      return "config";
    case "dropBgp":
      m.bgp.pop();
      return "config";
  }
}

function initial(): Model {
  const svc = (app: Svc["app"], local: boolean, ips: string[]): Svc => ({
    app,
    local,
    ips,
    cls: null,
    lb: true,
  });
  return {
    poolV4: "10.0.0.0/28",
    l2: [{ apps: [], zones: [], prefer: null, ifaces: [] }],
    bgp: [{ apps: [], agg: 30, communities: [], peers: [] }],
    services: new Map([
      ["shop/web", svc("web", false, ["10.0.0.1"])],
      ["infra/dns", svc("dns", true, ["10.0.0.2", "fd00::1"])],
      ["shop/s1", svc("db", false, ["10.0.0.1"])],
      ["shop/s2", svc("web", false, ["10.0.0.3"])],
      ["infra/s3", svc("web", true, ["10.0.0.9"])],
    ]),
    nodes: new Map([
      ["n1", { zone: "a", alive: true, ready: true }],
      ["n2", { zone: "b", alive: true, ready: true }],
      ["n3", { zone: "b", alive: true, ready: true }],
    ]),
    declines: new Map(),
    endpoints: new Map([["infra/dns", new Set(["n1", "n3"])]]),
  };
}

describe("the speaker's incremental plan equals the full plan", () => {
  test(
    "on random event sequences, from every node's point of view",
    () => {
      let steps = 0;
      let partial = 0;
      let full = 0;
      let kept = 0;
      let shared = 0;
      let routes = 0;
      fc.assert(
        fc.property(
          fc.array(EVENT, { minLength: 1, maxLength: 30 }),
          pick(["n1", "n2", "n4"]),
          (events, me) => {
            const m = initial();
            const planner = new SpeakerPlanner();
            const objects = new Map<string, Config["services"][number]>();
            const rebuild = (k: string) => {
              const s = m.services.get(k);
              if (s === undefined) objects.delete(k);
              else objects.set(k, serviceObject(k, s));
            };
            for (const k of m.services.keys()) rebuild(k);
            let crs = configFromText(crYaml(m), "model.yaml");
            let previous: { plan: Plan; full: Plan; assignments: PlannedAssignment[] } | undefined;
            // The first plan (no change known), then one per event.
            for (const e of [undefined, ...events]) {
              const what = e === undefined ? undefined : apply(m, e);
              const changed = new Set<string>();
              if (what === "config") {
                const r = configFromText(crYaml(m), "model.yaml");
                if (r.ok) crs = r;
              } else if (what !== undefined && what !== "nodes") {
                rebuild(what);
                changed.add(what);
              }
              if (!crs.ok) throw new Error(JSON.stringify(crs.problems));
              // As the informer keeps them: in the order first seen; an unchanged configuration
              // keeps its lists (the speaker's view does too).
              const config: Config = { ...crs.config, services: [...objects.values()] };
              const info = (name: string): NodeInfo => ({
                name,
                labels: { zone: m.nodes.get(name)?.zone ?? "a" },
              });
              const known = [...m.nodes.keys()].sort().map(info);
              const members = [...m.nodes]
                .filter(([, n]) => n.alive && n.ready)
                .map(([name]) => info(name))
                .sort((a, b) => (a.name < b.name ? -1 : 1));
              const notReady = new Set([...m.nodes].filter(([, n]) => n.alive && !n.ready).map(([n]) => n));
              const inputs: ElectionInputs = {
                known,
                notReady,
                declines: new Map(m.declines),
                networkUnavailable: new Set(),
                localEndpoints: m.endpoints,
              };
              const self = info(me);
              const r = planner.plan({
                config,
                loadBalancerClass: undefined,
                self,
                members,
                inputs,
                changed,
              });
              const assignments = assignmentsFromServices(config, undefined);
              const want = new Planner().plan(config, assignments, self, members, inputs);
              expect(r.plan).toEqual(want);
              expect(r.assignments).toEqual(assignments);
              steps++;
              if (r.full) full++;
              else partial++;
              if (previous !== undefined) {
                expect(r.assignmentsChanged).toBe(!Bun.deepEquals(assignments, previous.assignments));
                // The same content: the same object.
                if (Bun.deepEquals(want, previous.full)) {
                  expect(r.plan).toBe(previous.plan);
                  kept++;
                }
              }
              if (want.elections?.some((x) => x.services.length > 1)) shared++;
              if (want.routes.some((x) => x.services.length > 1)) routes++;
              previous = { plan: r.plan, full: want, assignments };
            }
          },
        ),
        { seed: SEED, numRuns: 150 },
      );
      // The sequences exercise what they are meant to: most plans by parts, shared addresses
      // and routes, plans that did not change.
      expect(steps).toBeGreaterThan(1000);
      expect(partial).toBeGreaterThan(steps / 2);
      expect(full).toBeGreaterThan(steps / 10);
      expect(kept).toBeGreaterThan(steps / 20);
      expect(shared).toBeGreaterThan(steps / 10);
      expect(routes).toBeGreaterThan(steps / 10);
    },
    SLOW,
  );
});
