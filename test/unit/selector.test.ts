/**
 * Label selectors, evaluated the way the Kubernetes API server does: matchLabels entries are
 * `key In (value)` requirements, all requirements must hold, an empty selector matches everything.
 * MetalLB's lists of selectors (nodeSelectors, serviceSelectors, ...) match when any one does, and
 * an empty list matches everything.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import YAML from "yaml";
import {
  anySelectorMatches,
  type LabelSelector,
  type Labels,
  type SelectorRequirement,
  selectorMatches,
} from "../../src/config/selector.ts";

const node = { "kubernetes.io/os": "linux", zone: "a", "metallb-role": "bgp-speaker" };

describe("one selector", () => {
  test.each([
    ["empty: everything", {}, true],
    ["matchLabels, all equal", { matchLabels: { "kubernetes.io/os": "linux", zone: "a" } }, true],
    ["matchLabels, one differs", { matchLabels: { "kubernetes.io/os": "linux", zone: "b" } }, false],
    ["matchLabels, key absent", { matchLabels: { rack: "1" } }, false],
    ["In", { matchExpressions: [{ key: "zone", operator: "In", values: ["a", "b"] }] }, true],
    ["In, other value", { matchExpressions: [{ key: "zone", operator: "In", values: ["b"] }] }, false],
    ["In, key absent", { matchExpressions: [{ key: "rack", operator: "In", values: ["1"] }] }, false],
    ["NotIn, value listed", { matchExpressions: [{ key: "zone", operator: "NotIn", values: ["a"] }] }, false],
    [
      "NotIn, key absent: matches",
      { matchExpressions: [{ key: "rack", operator: "NotIn", values: ["1"] }] },
      true,
    ],
    ["Exists", { matchExpressions: [{ key: "metallb-role", operator: "Exists" }] }, true],
    ["DoesNotExist", { matchExpressions: [{ key: "metallb-role", operator: "DoesNotExist" }] }, false],
    [
      "matchLabels and matchExpressions are ANDed",
      { matchLabels: { zone: "a" }, matchExpressions: [{ key: "rack", operator: "Exists" }] },
      false,
    ],
  ] as [string, LabelSelector, boolean][])("%s", (_, sel, expected) => {
    expect(selectorMatches(sel, node)).toBe(expected);
  });

  test("an object without labels has none", () => {
    expect(selectorMatches({}, undefined)).toBe(true);
    expect(
      selectorMatches({ matchExpressions: [{ key: "zone", operator: "DoesNotExist" }] }, undefined),
    ).toBe(true);
    expect(selectorMatches({ matchLabels: { zone: "a" } }, undefined)).toBe(false);
  });

  test("keys that are names of Object.prototype members are ordinary keys", () => {
    const labels = (YAML.parse("__proto__: x\nconstructor: y\n") as Record<string, string>) ?? {};
    expect(
      selectorMatches({ matchExpressions: [{ key: "__proto__", operator: "In", values: ["x"] }] }, labels),
    ).toBe(true);
    expect(selectorMatches({ matchLabels: { constructor: "y" } }, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { toString: "x" } }, {})).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: "hasOwnProperty", operator: "Exists" }] }, {})).toBe(
      false,
    );
  });
});

describe("a list of selectors (MetalLB)", () => {
  test("empty or absent: everything", () => {
    expect(anySelectorMatches(undefined, node)).toBe(true);
    expect(anySelectorMatches([], {})).toBe(true);
  });

  test("any one matching is enough", () => {
    expect(anySelectorMatches([{ matchLabels: { zone: "b" } }, { matchLabels: { zone: "a" } }], node)).toBe(
      true,
    );
    expect(anySelectorMatches([{ matchLabels: { zone: "b" } }, { matchLabels: { zone: "c" } }], node)).toBe(
      false,
    );
  });
});

describe("against a straightforward reference, on random labels", () => {
  // Small alphabets, so that keys and values collide often.
  const key = fc.constantFrom("zone", "rack", "app", "kubernetes.io/os", "tier", "constructor");
  const value = fc.constantFrom("a", "b", "c", "");
  const labels: fc.Arbitrary<Labels> = fc.option(fc.dictionary(key, value, { maxKeys: 5 }), {
    nil: undefined,
  });
  const requirement: fc.Arbitrary<SelectorRequirement> = fc.oneof(
    fc.record({
      key,
      operator: fc.constantFrom("In" as const, "NotIn" as const),
      values: fc.uniqueArray(value, { minLength: 1, maxLength: 3 }),
    }),
    fc.record({ key, operator: fc.constantFrom("Exists" as const, "DoesNotExist" as const) }),
  );
  const selector: fc.Arbitrary<LabelSelector> = fc.record(
    {
      matchLabels: fc.dictionary(key, value, { maxKeys: 3 }),
      matchExpressions: fc.array(requirement, { maxLength: 4 }),
    },
    { requiredKeys: [] },
  );

  /** The API server's rule, written out: matchLabels become In requirements; all must hold. */
  function reference(sel: LabelSelector, l: Labels): boolean {
    const have = new Map(Object.entries(l ?? {}));
    const reqs: SelectorRequirement[] = [
      ...Object.entries(sel.matchLabels ?? {}).map(([k, v]) => ({
        key: k,
        operator: "In" as const,
        values: [v],
      })),
      ...(sel.matchExpressions ?? []),
    ];
    return reqs.every((r) => {
      const present = have.has(r.key);
      const inValues = present && (r.values ?? []).includes(have.get(r.key) as string);
      if (r.operator === "In") return inValues;
      if (r.operator === "NotIn") return !inValues;
      if (r.operator === "Exists") return present;
      return !present;
    });
  }

  test("selectorMatches agrees with the reference", () => {
    fc.assert(
      fc.property(selector, labels, (sel, l) => {
        expect(selectorMatches(sel, l)).toBe(reference(sel, l));
      }),
      { seed: 42, numRuns: 500 },
    );
  });

  test("anySelectorMatches agrees with 'empty, or some selector matches'", () => {
    fc.assert(
      fc.property(fc.array(selector, { maxLength: 3 }), labels, (sels, l) => {
        expect(anySelectorMatches(sels, l)).toBe(sels.length === 0 || sels.some((s) => reference(s, l)));
      }),
      { seed: 42, numRuns: 300 },
    );
  });
});
