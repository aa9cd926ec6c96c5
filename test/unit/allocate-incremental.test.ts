/**
 * The incremental allocation run (src/plan/allocate.ts: only the Services that changed go through
 * the allocator) over random edit sequences (fast-check, fixed seed): after every edit — a Service
 * added, removed, relabelled, retyped, given a requested address, a pool or a sharing key, a pool
 * grown or shrunk — its result equals the full reconcile's: assignments, views (in order), pool
 * usage, metrics, counts and events (Warnings aside: the incremental run repeats them only for the
 * Services that changed). Configurations go through the real validator.
 */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { configFromText } from "../../src/config/index.ts";
import { type AllocationState, allocate, emptyAllocation } from "../../src/plan/allocate.ts";

const SEED = 20261203;
const keyOf = (s: { metadata: { name: string; namespace?: string | undefined } }) =>
  `${s.metadata.namespace ?? "default"}/${s.metadata.name}`;
const SLOW = 120_000;

interface Svc {
  type: "LoadBalancer" | "ClusterIP";
  app: string;
  ip?: string | undefined;
  pool?: string | undefined;
  share?: string | undefined;
  port: number;
  dual: boolean;
  status?: string | undefined;
}

const svc = fc.record({
  type: fc.constantFrom("LoadBalancer", "LoadBalancer", "LoadBalancer", "ClusterIP") as fc.Arbitrary<
    Svc["type"]
  >,
  app: fc.constantFrom("web", "db"),
  ip: fc.option(fc.constantFrom("10.0.0.3", "10.0.0.7", "10.0.1.1", "10.9.9.9"), { nil: undefined }),
  pool: fc.option(fc.constantFrom("a", "b", "nope"), { nil: undefined }),
  share: fc.option(fc.constantFrom("k1", "k2"), { nil: undefined }),
  port: fc.constantFrom(80, 443),
  dual: fc.nat(9).map((n) => n === 0),
  status: fc.option(fc.constantFrom("10.0.0.5", "10.0.0.9", "10.0.1.2"), { nil: undefined, freq: 3 }),
});

const NAMES = Array.from({ length: 14 }, (_, i) => `s${i}`);

const edit = fc.oneof(
  fc.record({ op: fc.constant("set" as const), name: fc.constantFrom(...NAMES), svc }),
  fc.record({ op: fc.constant("remove" as const), name: fc.constantFrom(...NAMES) }),
  fc.record({ op: fc.constant("pools" as const), size: fc.constantFrom(28, 29, 30) }),
);

const doc = (o: unknown) => `---\n${JSON.stringify(o)}\n`;

function yamlOf(size: number, services: Map<string, Svc>): string {
  let y = doc({
    apiVersion: "metallb.io/v1beta1",
    kind: "IPAddressPool",
    metadata: { name: "a", namespace: "metallb-system" },
    spec: { addresses: [`10.0.0.0/${size}`] },
  });
  y += doc({
    apiVersion: "metallb.io/v1beta1",
    kind: "IPAddressPool",
    metadata: { name: "b", namespace: "metallb-system" },
    spec: { addresses: ["10.0.1.0/30"], autoAssign: false },
  });
  for (const [name, s] of services) {
    const annotations: Record<string, string> = {};
    if (s.pool !== undefined) annotations["metallb.io/address-pool"] = s.pool;
    if (s.share !== undefined) annotations["metallb.io/allow-shared-ip"] = s.share;
    y += doc({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace: "ns", labels: { app: s.app }, annotations },
      spec: {
        type: s.type,
        ports: [{ port: s.port }],
        ...(s.ip !== undefined ? { loadBalancerIP: s.ip } : {}),
        ...(s.dual ? { ipFamilyPolicy: "PreferDualStack" } : {}),
      },
      ...(s.status !== undefined ? { status: { loadBalancer: { ingress: [{ ip: s.status }] } } } : {}),
    });
  }
  return y;
}

const strip = (s: AllocationState) => ({
  assignments: s.assignments,
  services: s.services,
  pools: s.pools,
  metrics: s.metrics,
  counts: s.counts,
  events: s.events.filter((e) => e.reason !== "Warning"),
});

describe("incremental allocation equals the full reconcile", () => {
  test(
    "random edit sequences",
    () => {
      fc.assert(
        fc.property(fc.array(edit, { minLength: 1, maxLength: 25 }), (edits) => {
          const services = new Map<string, Svc>();
          let size = 28;
          let inc = emptyAllocation();
          let full = emptyAllocation();
          // With a file reload's hint (the keys whose Service changed, undefined: removed).
          let hinted = emptyAllocation();
          let last = new Map<string, string>();
          for (const e of edits) {
            if (e.op === "set") services.set(e.name, e.svc);
            else if (e.op === "remove") services.delete(e.name);
            else size = e.size;
            const r = configFromText(yamlOf(size, services), "t.yaml");
            if (!r.ok) continue; // refused: the daemon keeps the previous configuration
            inc = allocate(r.config, inc);
            full = allocate(r.config, full, {}, { full: true });
            expect(strip(inc)).toEqual(strip(full));
            const now = new Map(r.config.services.map((s) => [keyOf(s), JSON.stringify(s)]));
            const changed = new Map<string, (typeof r.config.services)[number] | undefined>();
            for (const s of r.config.services)
              if (last.get(keyOf(s)) !== now.get(keyOf(s))) changed.set(keyOf(s), s);
            for (const k of last.keys()) if (!now.has(k)) changed.set(k, undefined);
            last = now;
            hinted = allocate(r.config, hinted, {}, { changed });
            expect(strip(hinted)).toEqual(strip(full));
            // Its views by key are exactly its views.
            const byKey = hinted.viewByKey;
            if (byKey !== undefined) {
              expect(byKey.size).toBe(hinted.services.length);
              for (const v of hinted.services) expect(byKey.get(`${v.namespace}/${v.name}`)).toBe(v);
            }
          }
        }),
        { seed: SEED, numRuns: 150 },
      );
    },
    SLOW,
  );

  test("one Service added to many: only it is allocated, the others keep their results", () => {
    const services = new Map<string, Svc>();
    for (let i = 0; i < 200; i++)
      services.set(`x${i}`, { type: "LoadBalancer", app: "web", port: 80, dual: false });
    const big = (m: Map<string, Svc>) => {
      const r = configFromText(yamlOf(24, m), "t.yaml");
      if (!r.ok) throw new Error(r.problems[0]?.message);
      return r.config;
    };
    const first = allocate(big(services), emptyAllocation());
    const same = allocate(big(services), emptyAllocation());
    services.set("new", { type: "LoadBalancer", app: "db", port: 80, dual: false });
    const next = allocate(big(services), first);
    expect(next.events.map((e) => [e.service, e.reason])).toEqual([["ns/new", "IPAllocated"]]);
    // Unchanged Services keep their very assignment objects (nothing re-made for them).
    const before = new Map(first.assignments.map((a) => [a.key, a]));
    expect(next.assignments.filter((a) => before.get(a.key) === a)).toHaveLength(200);
    expect(strip(next)).toEqual(strip(allocate(big(services), same, {}, { full: true })));
  });
});
