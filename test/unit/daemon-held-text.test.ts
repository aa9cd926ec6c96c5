/**
 * The state file's text made of cached per-assignment entries (src/appliance/state-file.ts heldText)
 * is exactly what JSON.stringify(heldState(...), null, 1) gives, before and after assignments
 * change (a cached entry is never stale: it belongs to one assignment object).
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
});
