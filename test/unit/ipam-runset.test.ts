/**
 * RunSet (the taken-address index) against a plain Set model, with fixed-seed fast-check runs.
 */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { fromDense, toDense } from "../../src/ipam/pools.ts";
import { RunSet } from "../../src/ipam/runset.ts";

const SEED = 20261126;
/** Property runs take about a second; the shared CI machine can be many times slower. */
const SLOW = 60_000;

function checkShape(s: RunSet, model: Set<number>): void {
  const runs = [...s.entries()];
  let count = 0;
  for (let i = 0; i < runs.length; i++) {
    const [a, b] = runs[i]!;
    expect(a <= b).toBe(true);
    // Maximal and ordered: a gap of at least one non-member between consecutive runs.
    if (i > 0) expect(runs[i - 1]![1] + 1n < a).toBe(true);
    count += Number(b - a) + 1;
  }
  expect(count).toBe(model.size);
  expect(s.size).toBe(model.size);
  expect(s.runs).toBe(runs.length);
}

describe("RunSet", () => {
  test(
    "agrees with a Set on membership, size and lowest free value, for any sequence",
    () => {
      const op = fc.oneof(
        fc.record({ add: fc.integer({ min: 0, max: 60 }) }),
        fc.record({ del: fc.integer({ min: 0, max: 60 }) }),
        fc.record({ lo: fc.integer({ min: 0, max: 60 }), len: fc.integer({ min: 0, max: 20 }) }),
      );
      fc.assert(
        fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
          const s = new RunSet();
          const model = new Set<number>();
          for (const o of ops) {
            if ("add" in o) {
              expect(s.add(BigInt(o.add))).toBe(!model.has(o.add));
              model.add(o.add);
            } else if ("del" in o) {
              expect(s.delete(BigInt(o.del))).toBe(model.has(o.del));
              model.delete(o.del);
            } else {
              const hi = o.lo + o.len;
              let want: number | null = null;
              for (let v = o.lo; v <= hi; v++)
                if (!model.has(v)) {
                  want = v;
                  break;
                }
              expect(s.lowestFree(BigInt(o.lo), BigInt(hi))).toBe(want === null ? null : BigInt(want));
            }
          }
          for (let v = 0; v <= 60; v++) expect(s.has(BigInt(v))).toBe(model.has(v));
          checkShape(s, model);
        }),
        { seed: SEED, numRuns: 300 },
      );
    },
    SLOW,
  );

  test(
    "stays correct across chunk splits and merges (thousands of scattered runs)",
    () => {
      const s = new RunSet();
      const model = new Set<number>();
      // Deterministic scatter: every third value, then fill some gaps, then punch holes.
      for (let v = 0; v < 30_000; v += 3) {
        s.add(BigInt(v));
        model.add(v);
      }
      for (let v = 1; v < 30_000; v += 9) {
        s.add(BigInt(v));
        model.add(v);
      }
      for (let v = 0; v < 30_000; v += 6) {
        s.delete(BigInt(v));
        model.delete(v);
      }
      checkShape(s, model);
      for (let v = 0; v < 30_000; v += 7) expect(s.has(BigInt(v))).toBe(model.has(v));
      expect(s.lowestFree(0n, 100n)).toBe(0n);
      expect(s.lowestFree(3n, 3n)).toBe(null);
      expect(s.lowestFree(3n, 100n)).toBe(4n);
    },
    SLOW,
  );

  test("is exact at the ends of the IPv6 space", () => {
    const top = (1n << 128n) - 1n;
    const s = new RunSet();
    s.add(top);
    s.add(top - 1n);
    expect(s.lowestFree(top - 1n, top)).toBe(null);
    expect(s.lowestFree(top - 2n, top)).toBe(top - 2n);
    expect(s.runs).toBe(1);
  });
});

describe("dense IPv4 numbering (avoidBuggyIPs)", () => {
  test("numbers exactly the .1-.254 addresses, in order, and round-trips", () => {
    let prev = -1n;
    for (let a = 0n; a < 2048n; a++) {
      const o = a & 255n;
      if (o === 0n || o === 255n) continue;
      const d = toDense(a);
      expect(d).toBe(prev + 1n);
      expect(fromDense(d)).toBe(a);
      prev = d;
    }
    expect(toDense(0xffff_fffen)).toBe((1n << 24n) * 254n - 1n);
  });
});
