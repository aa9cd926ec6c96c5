/**
 * The planner's Config index (src/plan/plan-index.ts): made by changing the last one when a few
 * Services were added, removed or replaced (a file reload's Config), it equals the index made
 * from scratch — over random edit sequences (fast-check, fixed seed) with duplicate keys, other
 * lists replaced, and earlier Configs indexed again. The Services map is compared as a set of
 * entries: it is only looked up (by key), never walked.
 */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { type Config, configFromText } from "../../src/config/index.ts";
import { indexed, indexOf, indexStats } from "../../src/plan/plan-index.ts";

type Service = Config["services"][number];

const BASE = configFromText(
  `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan, namespace: metallb-system }
spec: { addresses: ["10.0.0.0/24"] }
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: l2, namespace: metallb-system }
spec: { ipAddressPools: [lan] }
`,
  "base.yaml",
);
if (!BASE.ok) throw new Error("base config");
const base = BASE.config;

const svc = (name: string, ns: string, app: string, local: boolean): Service =>
  ({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: ns, labels: { app } },
    spec: { type: "LoadBalancer", ...(local ? { externalTrafficPolicy: "Local" } : {}) },
  }) as unknown as Service;

const anyService = fc
  .record({
    name: fc.constantFrom("a", "b", "c", "d", "e", "f", "g", "h"),
    ns: fc.constantFrom("x", "y", "z"),
    app: fc.constantFrom("web", "db"),
    local: fc.boolean(),
  })
  .map((r) => svc(r.name, r.ns, r.app, r.local));

const edit = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant("insert" as const), at: fc.nat(), s: anyService }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("remove" as const), at: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("replace" as const), at: fc.nat(), s: anyService }) },
  { weight: 1, arbitrary: fc.constant({ k: "pools" as const }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("again" as const), back: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant("many" as const), ss: fc.array(anyService, { maxLength: 90 }) }),
  },
);

const plain = (c: Config) => {
  const ix = indexed(c);
  return {
    services: [...ix.services].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    l2ByPool: [...ix.l2ByPool],
    l2Text: ix.l2Text,
    bgpText: ix.bgpText,
  };
};
const fresh = (c: Config) => {
  const ix = indexOf(c);
  return {
    services: [...ix.services].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    l2ByPool: [...ix.l2ByPool],
    l2Text: ix.l2Text,
    bgpText: ix.bgpText,
  };
};

describe("the planner's index", () => {
  test("made by changing the last one, equals the index made from scratch", () => {
    const before = indexStats.patched;
    fc.assert(
      fc.property(
        fc.array(anyService, { maxLength: 40 }),
        fc.array(edit, { maxLength: 30 }),
        (start, edits) => {
          let config: Config = { ...base, services: start };
          const seen: Config[] = [config];
          expect(plain(config)).toEqual(fresh(config));
          for (const e of edits) {
            const services = config.services.slice();
            if (e.k === "insert") services.splice(e.at % (services.length + 1), 0, e.s);
            else if (e.k === "remove" && services.length > 0) services.splice(e.at % services.length, 1);
            else if (e.k === "replace" && services.length > 0) services[e.at % services.length] = e.s;
            else if (e.k === "many") services.splice(0, services.length >> 1, ...e.ss);
            if (e.k === "again") config = seen[e.back % seen.length] as Config;
            else if (e.k === "pools") config = { ...config, pools: [...config.pools] };
            else config = { ...config, services };
            seen.push(config);
            expect(plain(config)).toEqual(fresh(config));
          }
        },
      ),
      { seed: 20261203, numRuns: 300 },
    );
    // The changed-index path is taken (Configs with duplicate keys are always made from scratch).
    expect(indexStats.patched - before).toBeGreaterThan(500);
  });
});
