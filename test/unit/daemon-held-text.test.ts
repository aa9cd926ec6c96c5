/**
 * The state file's text written out directly (src/appliance/state-file.ts heldText) is exactly
 * what JSON.stringify(heldState(...), null, 1) gives, for fixed and random tables (keys and
 * pools with characters JSON escapes, no address, one, several).
 */

import { describe, expect, test } from "bun:test";
import { heldText } from "../../src/appliance/state-file.ts";
import { type AllocationState, heldState } from "../../src/plan/allocate.ts";
import type { PlannedAssignment } from "../../src/plan/plan.ts";

const full = (assignments: PlannedAssignment[]) =>
  `${JSON.stringify(heldState({ assignments } as AllocationState), null, 1)}\n`;

describe("heldText", () => {
  test("equals the JSON of heldState, also after a change", () => {
    const a: PlannedAssignment[] = [
      { key: "ns/a", pool: "lan", ips: ["10.0.0.1", "fd00::1"] },
      { key: 'ns/"odd"', pool: "p", ips: [] },
      { key: "ns/c", pool: "lan", ips: ["10.0.0.3"] },
    ];
    expect(heldText(a)).toBe(full(a));
    expect(heldText([])).toBe(full([]));
    const b = [a[0] as PlannedAssignment, { key: "ns/c", pool: "lan", ips: ["10.0.0.9"] }];
    expect(heldText(b)).toBe(full(b));
    expect(JSON.parse(heldText(b))).toEqual(heldState({ assignments: b } as AllocationState));
  });

  test("equals the JSON of heldState for random tables", () => {
    let seed = 15;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const chars = ["a", "z", "0", "-", "/", '"', "\\", "\n", "\t", "é", "\u2028", "\u0001", "😀"];
    const text = (n: number) => Array.from({ length: n }, () => chars[rnd(chars.length)]).join("");
    for (let round = 0; round < 200; round++) {
      const keys = new Set<string>();
      const as: PlannedAssignment[] = [];
      for (let i = rnd(6); i > 0; i--) {
        const key = `${text(rnd(3))}/${text(1 + rnd(4))}`;
        if (keys.has(key)) continue;
        keys.add(key);
        const ips = Array.from({ length: rnd(4) }, (_, j) =>
          j % 2 === 0 ? `10.0.${rnd(9)}.${j}` : `fd00::${j}`,
        );
        as.push({ key, pool: text(rnd(5)), ips });
      }
      expect(heldText(as)).toBe(full(as));
    }
  });
});
