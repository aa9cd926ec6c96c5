/**
 * ownerChanges (src/node/applier.ts) walks two elections in address order when both are (the
 * planner's), else looks addresses up in a map: on random elections, sorted or not, sharing
 * objects or not, it gives what the plain map lookup gives.
 */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ownerChanges } from "../../src/node/applier.ts";
import type { L2Election } from "../../src/plan/plan.ts";

const OWNERS = ["n1", "n2", "n3", undefined] as const;

function reference(
  before: readonly L2Election[],
  next: readonly L2Election[],
  self: string,
): ReturnType<typeof ownerChanges> {
  const was = new Map(before.map((e) => [e.ip, e.owner]));
  return next.flatMap((e) => {
    const from = was.get(e.ip);
    if (from === e.owner) return [];
    const change: "acquired" | "released" | "moved" =
      e.owner === self ? "acquired" : from === self ? "released" : "moved";
    return [{ ip: e.ip, change, from, to: e.owner }];
  });
}

const election = (ip: string, owner: string | undefined): L2Election => ({
  ip,
  services: ["ns/s"],
  owner,
  candidates: [],
  notOwner: [],
});

const side = fc.dictionary(
  fc.integer({ min: 0, max: 40 }).map((i) => `10.0.${i % 3}.${i}`),
  fc.constantFrom(...OWNERS),
);

describe("ownerChanges", () => {
  test("equals the map lookup on random elections", () => {
    fc.assert(
      fc.property(
        side,
        side,
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom("n1", "n2"),
        (b, n, sorted, share, self) => {
          const order = (xs: L2Election[]) =>
            sorted ? xs.sort((x, y) => (x.ip < y.ip ? -1 : 1)) : xs.reverse();
          const before = order(Object.entries(b).map(([ip, o]) => election(ip, o)));
          const byIp = new Map(before.map((e) => [e.ip, e]));
          // Elections kept from the last plan are the same objects when their owner did not change.
          const next = order(
            Object.entries(n).map(([ip, o]) => {
              const e = byIp.get(ip);
              return share && e !== undefined && e.owner === o ? e : election(ip, o);
            }),
          );
          expect(ownerChanges(before, next, self)).toEqual(reference(before, next, self));
        },
      ),
      { seed: 20261203, numRuns: 500 },
    );
  });
});
