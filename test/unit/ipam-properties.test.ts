/**
 * Allocator properties over random sequences of allocations, releases and pool changes
 * (fast-check, fixed seed):
 * - no address is held by two Services unless sharing allows it;
 * - every address lies in a pool the Service may use (a pool change releases what it no longer
 *   allows at once, as MetalLB's SetPools does with addresses outside every pool);
 * - requests are honoured exactly or refused; autoAssign: false pools serve only requests;
 * - an automatic choice is the first address, in pool order, that nobody held;
 * - usage counts match the assignments;
 * - release-then-allocate finds the address free;
 * - a rebuild from the Services' statuses yields the same state;
 * - automatic allocation picks what a brute-force reference model picks.
 */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { selectorMatches } from "../../src/config/selector.ts";
import { Allocator, type Allocator as AllocatorT, type Assignment } from "../../src/ipam/index.ts";
import type { IPAddressPool, Service } from "../../src/ipam/types.ts";
import { type Family, formatIp, parseIp, parseRange } from "../../src/util/ip.ts";
import { pool, type SvcOpts, svc, withStatus } from "./ipam-fixtures.ts";

const SEED = 20261126;
/** Property runs take about a second; the shared CI machine can be many times slower. */
const SLOW = 60_000;

const POOLS_A: IPAddressPool[] = [
  pool("p1", ["10.0.0.0/30", "fd00::/126"], { serviceAllocation: { priority: 1, namespaces: ["a"] } }),
  pool("p2", ["10.0.1.254-10.0.2.2", "fd00:1::1-fd00:1::2"], { avoidBuggyIPs: true }),
  pool("p3", ["10.0.3.0/31"], { autoAssign: false }),
  pool("p4", ["10.0.4.0/31", "fd00:4::/127"], {
    serviceAllocation: { priority: 2, serviceSelectors: [{ matchLabels: { tier: "x" } }] },
  }),
];
// A second configuration: p2 shrinks and hands out .255/.0 (no pool avoids buggy IPs any
// more), p3 gone, p5 new (takes over part of the space).
const POOLS_B: IPAddressPool[] = [
  POOLS_A[0]!,
  pool("p2", ["10.0.1.254-10.0.2.1", "fd00:1::1"], { avoidBuggyIPs: false }),
  POOLS_A[3]!,
  pool("p5", ["10.0.3.0/32", "10.0.5.0/30"]),
];

const NAMES = ["a/s0", "a/s1", "b/s2", "b/s3", "a/s4", "b/s5", "b/s6", "a/s7"];
const labelsOf = (key: string): Record<string, string> =>
  key.endsWith("1") || key.endsWith("5") ? { tier: "x" } : {};

interface Spec {
  key: string;
  share: "" | "k1" | "k2";
  ports: number[];
  fam: "v4" | "v6" | "prefer" | "require";
  req: { ip: string } | { pool: string } | null;
  local: boolean;
}

const CANDIDATE_IPS = [
  "10.0.0.1",
  "10.0.2.0",
  "10.0.2.1",
  "10.0.3.1",
  "10.0.4.1",
  "fd00::2",
  "fd00:1::2",
  "10.9.9.9",
];

const specArb: fc.Arbitrary<Spec> = fc.record({
  key: fc.constantFrom(...NAMES),
  share: fc.constantFrom("" as const, "k1" as const, "k1" as const, "k1" as const, "k2" as const),
  ports: fc.subarray([80, 443, 53]),
  fam: fc.constantFrom("v4" as const, "v6" as const, "prefer" as const, "require" as const),
  req: fc.oneof(
    { weight: 4, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.record({ ip: fc.constantFrom(...CANDIDATE_IPS) }) },
    { weight: 1, arbitrary: fc.record({ pool: fc.constantFrom("p1", "p2", "p3", "nope") }) },
  ),
  local: fc.constantFrom(false, false, false, true),
});

function toService(s: Spec): Service {
  const [ns, name] = s.key.split("/") as [string, string];
  const cips = s.fam === "v4" ? ["10.96.0.1"] : s.fam === "v6" ? ["fd00:96::1"] : ["10.96.0.1", "fd00:96::1"];
  const ann: Record<string, string> = {};
  if (s.share !== "") ann["metallb.io/allow-shared-ip"] = s.share;
  if (s.req !== null && "pool" in s.req) ann["metallb.io/address-pool"] = s.req.pool;
  const o: SvcOpts = {
    ns,
    labels: labelsOf(s.key),
    ann,
    ports: s.ports,
    cips,
    policy: s.fam === "prefer" ? "PreferDualStack" : s.fam === "require" ? "RequireDualStack" : "SingleStack",
    local: s.local,
    selector: { app: name },
  };
  if (s.req !== null && "ip" in s.req) o.ip = s.req.ip;
  return svc(name, o);
}

/** The Service as a restart would see it: spec from what it holds, status with its addresses. */
function fromAssignment(a: Assignment): Service {
  const [ns, name] = a.key.split("/") as [string, string];
  const fams = a.ips.map((ip) => parseIp(ip)!.family);
  const ann: Record<string, string> = { "metallb.io/ip-allocated-from-pool": a.pool };
  if (a.sharingKey !== "") ann["metallb.io/allow-shared-ip"] = a.sharingKey;
  const s = svc(name, {
    ns,
    labels: labelsOf(a.key),
    ann,
    ports: a.ports.map((p) => Number(p.split("/")[0])),
    cips: fams.map((f) => (f === 4 ? "10.96.0.1" : "fd00:96::1")),
    policy: fams.length === 2 ? "RequireDualStack" : "SingleStack",
    local: a.backendKey !== "",
    selector: { app: name },
  });
  return withStatus(s, a.ips);
}

type Op = { alloc: Spec } | { release: string } | { pools: "A" | "B" };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: specArb.map((s) => ({ alloc: s })) },
  { weight: 2, arbitrary: fc.constantFrom(...NAMES).map((k) => ({ release: k })) },
  { weight: 1, arbitrary: fc.constantFrom("A" as const, "B" as const).map((p) => ({ pools: p })) },
);

/** Independent reading of a pool: does it hand out `ip`? */
function poolHands(p: IPAddressPool, ip: string): boolean {
  const x = parseIp(ip)!;
  if (p.spec.avoidBuggyIPs && x.family === 4 && ((x.value & 255n) === 0n || (x.value & 255n) === 255n))
    return false;
  return p.spec.addresses.some((a) => {
    const r = parseRange(a);
    return r.ok && r.value.family === x.family && r.value.first <= x.value && x.value <= r.value.last;
  });
}

function poolServes(p: IPAddressPool, key: string): boolean {
  const sa = p.spec.serviceAllocation;
  if (sa === undefined) return true;
  const ns = key.split("/")[0]!;
  if ((sa.namespaces ?? []).length > 0 && !(sa.namespaces ?? []).includes(ns)) return false;
  const sels = sa.serviceSelectors ?? [];
  return sels.length === 0 || sels.some((s) => selectorMatches(s, labelsOf(key)));
}

function checkInvariants(a: AllocatorT, pools: IPAddressPool[]): void {
  const all = a.assignments();
  const byIp = new Map<string, Assignment[]>();
  for (const x of all) for (const ip of x.ips) byIp.set(ip, [...(byIp.get(ip) ?? []), x]);
  for (const [ip, hs] of byIp) {
    expect(a.holders(ip)).toEqual(hs.map((h) => h.key).sort());
    if (hs.length < 2) continue;
    // Shared: same non-empty key, same backend key, pairwise disjoint ports.
    for (const h of hs) {
      expect(h.sharingKey).not.toBe("");
      expect(h.sharingKey).toBe(hs[0]!.sharingKey);
      expect(h.backendKey).toBe(hs[0]!.backendKey);
    }
    const ports = hs.flatMap((h) => h.ports);
    expect(new Set(ports).size).toBe(ports.length);
  }
  for (const x of all) {
    expect(new Set(x.ips.map((ip) => parseIp(ip)!.family)).size).toBe(x.ips.length);
    const p = pools.find((q) => q.metadata.name === x.pool);
    expect(p).toBeDefined();
    for (const ip of x.ips) expect(poolHands(p!, ip)).toBe(true);
    expect(poolServes(p!, x.key)).toBe(true);
  }
  for (const p of pools) {
    const u = a.usage(p.metadata.name)!;
    for (const f of [4, 6] as Family[]) {
      const held = [...byIp.keys()].filter((ip) => parseIp(ip)!.family === f && poolHands(p, ip));
      expect(u[f].assigned).toBe(BigInt(held.length));
      expect(u[f].available).toBe(u[f].capacity - u[f].assigned);
    }
  }
}

/** Every address of `family` that `p` hands out, in pool order (the test pools are tiny). */
function addressesOf(p: IPAddressPool, family: Family): string[] {
  const out: string[] = [];
  for (const a of p.spec.addresses) {
    const r = parseRange(a);
    if (!r.ok || r.value.family !== family) continue;
    for (let v = r.value.first; v <= r.value.last; v++) {
      const text = formatIp({ family, value: v });
      if (poolHands(p, text)) out.push(text);
    }
  }
  return out;
}

/**
 * A new assignment honours the request exactly (named IPs, named pool), uses autoAssign: false
 * pools only on request, and — for automatic single-family assignments without sharing — is the
 * first address, in pool order, that nobody else held: every eligible pool ranked earlier was full.
 */
function checkChoice(
  a: AllocatorT,
  pools: IPAddressPool[],
  spec: Spec,
  got: readonly string[],
  poolName: string,
  others: Set<string>,
): void {
  const p = pools.find((q) => q.metadata.name === poolName)!;
  if (spec.req !== null && "ip" in spec.req) expect(got).toContain(spec.req.ip);
  if (spec.req !== null && "pool" in spec.req) expect(poolName).toBe(spec.req.pool);
  if (p.spec.autoAssign === false) expect(spec.req).not.toBe(null);
  if (spec.req !== null || spec.share !== "" || (spec.fam !== "v4" && spec.fam !== "v6")) return;
  const family: Family = spec.fam === "v4" ? 4 : 6;
  for (const name of a.poolNames()) {
    const q = pools.find((x) => x.metadata.name === name)!;
    const mine = name === poolName;
    if (!mine && (q.spec.autoAssign === false || !poolServes(q, spec.key))) continue;
    for (const ip of addressesOf(q, family)) {
      if (mine && ip === got[0]) return;
      expect(others.has(ip)).toBe(true);
    }
    expect(mine).toBe(false);
  }
}

function run(ops: Op[]): { a: AllocatorT; pools: IPAddressPool[] } {
  const a = new Allocator();
  let pools = POOLS_A;
  a.setPools(pools);
  for (const op of ops) {
    if ("alloc" in op) {
      const others = new Set(
        a
          .assignments()
          .filter((x) => x.key !== op.alloc.key)
          .flatMap((x) => x.ips),
      );
      const r = a.allocate(toService(op.alloc));
      if (r.ok && r.changed) checkChoice(a, pools, op.alloc, r.ips, r.pool, others);
    } else if ("release" in op) a.release(op.release);
    else {
      pools = op.pools === "A" ? POOLS_A : POOLS_B;
      const r = a.setPools(pools);
      expect(r.ok).toBe(true);
    }
    checkInvariants(a, pools);
  }
  return { a, pools };
}

describe("allocator properties", () => {
  test(
    "sharing rules, pool membership and usage counts hold after every step",
    () => {
      fc.assert(
        fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
          run(ops);
        }),
        { seed: SEED, numRuns: 250 },
      );
    },
    SLOW,
  );

  test(
    "release-then-allocate finds the address free",
    () => {
      fc.assert(
        fc.property(fc.array(opArb, { maxLength: 40 }), fc.nat(), (ops, pick) => {
          const { a } = run(ops);
          const held = a.assignments();
          if (held.length === 0) return;
          const victim = held[pick % held.length]!;
          const others = new Map(victim.ips.map((ip) => [ip, a.holders(ip).filter((k) => k !== victim.key)]));
          expect(a.release(victim.key)).toBe(true);
          for (const ip of victim.ips) expect(a.holders(ip)).toEqual(others.get(ip)!);
          // The same Service asking for exactly those addresses gets them back.
          const again = fromAssignment(victim);
          const back = a.allocate({
            ...again,
            status: undefined,
            metadata: {
              ...again.metadata,
              annotations: {
                ...again.metadata.annotations,
                "metallb.io/loadBalancerIPs": victim.ips.join(","),
              },
            },
          });
          expect(back.ok && back.ips).toEqual(victim.ips);
        }),
        { seed: SEED, numRuns: 200 },
      );
    },
    SLOW,
  );

  test(
    "a rebuild from the Services' statuses yields the same state",
    () => {
      fc.assert(
        fc.property(fc.array(opArb, { maxLength: 60 }), specArb, (ops, next) => {
          const { a, pools } = run(ops);
          const b = new Allocator();
          b.setPools(pools);
          const restored = b.restore(a.assignments().map(fromAssignment));
          expect(restored.refused).toEqual([]);
          expect(b.assignments()).toEqual(a.assignments());
          for (const p of pools) expect(b.usage(p.metadata.name)).toEqual(a.usage(p.metadata.name)!);
          // And both decide the next request the same way.
          const ra = a.allocate(toService(next));
          const rb = b.allocate(toService(next));
          expect(rb).toEqual(ra);
        }),
        { seed: SEED, numRuns: 200 },
      );
    },
    SLOW,
  );
});

describe("reference model", () => {
  // One pool, random ranges (some crossing .255/.0), avoidBuggyIPs on or off, Services with
  // random sharing keys and ports: the allocator must pick exactly the first address, in pool
  // order, that is free or compatibly shared — what enumerating every address would pick.
  const rangeArb = fc
    .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 250, max: 260 }), fc.integer({ min: 0, max: 8 }))
    .map(([blk, start, len]) => {
      const first = 0x0a000000 + blk * 4096 + start;
      const f = (n: number) => `10.0.${(n >> 8) & 255}.${n & 255}`;
      return `${f(first)}-${f(first + len)}`;
    });

  test(
    "automatic allocation matches brute-force enumeration",
    () => {
      const step = fc.oneof(
        {
          weight: 3,
          arbitrary: fc.record({
            n: fc.integer({ min: 0, max: 30 }),
            share: fc.constantFrom("", "k"),
            port: fc.constantFrom(80, 443),
          }),
        },
        { weight: 1, arbitrary: fc.record({ rel: fc.integer({ min: 0, max: 30 }) }) },
      );
      fc.assert(
        fc.property(
          fc.uniqueArray(rangeArb, { minLength: 1, maxLength: 3, selector: (r) => r.split("-")[0] }),
          fc.boolean(),
          fc.array(step, { minLength: 20, maxLength: 120 }),
          (ranges, avoid, steps) => {
            const parsed = ranges.map((r) => parseRange(r)).map((r) => (r.ok ? r.value : null)!);
            for (let i = 0; i < parsed.length; i++)
              for (let j = 0; j < i; j++)
                if (parsed[i]!.first <= parsed[j]!.last && parsed[j]!.first <= parsed[i]!.last) return; // overlap
            const a = new Allocator();
            expect(a.setPools([pool("p", ranges, { avoidBuggyIPs: avoid })]).ok).toBe(true);
            const held = new Map<string, { ip: bigint; share: string; port: number }>();
            for (const s of steps) {
              if ("rel" in s) {
                a.release(`ns/s${s.rel}`);
                held.delete(`ns/s${s.rel}`);
                continue;
              }
              const key = `ns/s${s.n}`;
              if (held.has(key)) continue;
              let want: bigint | null = null;
              search: for (const r of parsed) {
                for (let v = r.first; v <= r.last; v++) {
                  if (avoid && ((v & 255n) === 0n || (v & 255n) === 255n)) continue;
                  const users = [...held.values()].filter((h) => h.ip === v);
                  const ok =
                    users.length === 0 ||
                    (s.share !== "" && users.every((u) => u.share === s.share && u.port !== s.port));
                  if (ok) {
                    want = v;
                    break search;
                  }
                }
              }
              const ann: Record<string, string> =
                s.share === "" ? {} : { "metallb.io/allow-shared-ip": s.share };
              const r = a.allocate(svc(`s${s.n}`, { ann, ports: [s.port] }));
              if (want === null) expect(r.ok).toBe(false);
              else {
                expect(r.ok && parseIp(r.ips[0]!)!.value).toBe(want);
                held.set(key, { ip: want, share: s.share, port: s.port });
              }
            }
          },
        ),
        { seed: SEED, numRuns: 300 },
      );
    },
    SLOW,
  );
});
