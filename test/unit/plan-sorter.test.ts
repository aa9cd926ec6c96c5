/**
 * IpSorter (src/plan/plan-index.ts): whatever it sorted before — the same entries, a few added
 * or removed anywhere, or a different list — its result equals a fresh stable sort by IP
 * (fast-check, fixed seed, random edits with repeated addresses).
 */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { byIp, IpSorter } from "../../src/plan/plan-index.ts";

const ip = fc.integer({ min: 0, max: 40 }).map((i) => `10.0.${i >> 4}.${i & 15}`);
const entry = fc.record({ ip, tag: fc.nat(1000) });
type Entry = { ip: string; tag: number };

const edit = fc.oneof(
  fc.record({ k: fc.constant("insert" as const), at: fc.nat(), e: entry }),
  fc.record({ k: fc.constant("remove" as const), at: fc.nat() }),
  fc.record({ k: fc.constant("replace" as const), xs: fc.array(entry, { maxLength: 80 }) }),
  fc.record({ k: fc.constant("insertMany" as const), at: fc.nat(), es: fc.array(entry, { maxLength: 70 }) }),
  fc.constant({ k: "same" as const }),
);

describe("IpSorter", () => {
  test("equals a fresh stable sort by IP after random edits", () => {
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 200 }), fc.array(edit, { maxLength: 30 }), (start, edits) => {
        const sorter = new IpSorter();
        let xs: Entry[] = start;
        for (const e of [{ k: "same" as const }, ...edits]) {
          if (e.k === "insert") {
            xs = [...xs];
            xs.splice(e.at % (xs.length + 1), 0, e.e);
          } else if (e.k === "remove") {
            if (xs.length > 0) {
              xs = [...xs];
              xs.splice(e.at % xs.length, 1);
            }
          } else if (e.k === "replace") xs = e.xs;
          else if (e.k === "insertMany") {
            xs = [...xs];
            xs.splice(e.at % (xs.length + 1), 0, ...e.es);
          }
          expect(sorter.sort(xs)).toEqual([...xs].sort(byIp));
        }
      }),
      { seed: 20261203, numRuns: 300 },
    );
  });
});
