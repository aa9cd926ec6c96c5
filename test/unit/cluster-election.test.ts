/**
 * The per-VIP layer-2 election (src/plan/election.ts) as table tests: who is eligible and why
 * not, the MetalLB order (preference weight, then sha256(node#ip)), ties, dual-stack, and forced
 * failover declines. Then the planner feeding it (src/plan/plan.ts computePlan with
 * ElectionInputs): labels, readiness, externalTrafficPolicy: Local, the per-VIP view.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { configFromText } from "../../src/config/index.ts";
import {
  type ElectionAdvertisement,
  type ElectionNode,
  EXCLUDE_LABEL,
  elect,
  electionHash,
  orderCandidates,
} from "../../src/plan/election.ts";
import { computePlan } from "../../src/plan/plan.ts";

const IP = "10.0.0.5";
const alive = (name: string, labels: Record<string, string> = {}): ElectionNode => ({
  name,
  labels,
  status: "alive",
});
const AD = { name: "lan-l2" };
/** The hash order of a set of names for IP, as MetalLB computes it. */
const byHash = (names: string[], ip = IP) =>
  [...names].sort((a, b) => (electionHash(a, ip) < electionHash(b, ip) ? -1 : 1));

describe("eligibility: every other node gets one reason", () => {
  const cases: [string, ElectionNode, string, string][] = [
    ["dead", { name: "x", labels: {}, status: "notAlive" }, "NotAlive", "not alive"],
    ["starting or paused", { name: "x", labels: {}, status: "notReady" }, "NotReady", "not ready"],
    [
      "labelled for exclusion (any value)",
      alive("x", { [EXCLUDE_LABEL]: "" }),
      "ExcludedByLabel",
      `excluded by label ${EXCLUDE_LABEL}`,
    ],
    [
      "NetworkUnavailable",
      { ...alive("x"), networkUnavailable: true },
      "NetworkUnavailable",
      "network unavailable",
    ],
  ];
  for (const [story, node, reason, message] of cases) {
    test(`a node that is ${story} is not a candidate`, () => {
      const e = elect({ ips: [IP], nodes: [alive("a"), node], advertisements: [AD] });
      expect(e.owner).toBe("a");
      expect(e.candidates).toEqual(["a"]);
      expect(e.notOwner).toHaveLength(1);
      expect(e.notOwner[0]?.node).toBe("x");
      expect(e.notOwner[0]?.reason).toBe(reason as never);
      expect(e.notOwner[0]?.message).toStartWith(message);
    });
  }

  test("a node matching no advertisement's nodeSelectors is told which advertisements", () => {
    const ads = [
      { name: "rack-a", nodeSelectors: [{ matchLabels: { rack: "a" } }] },
      { name: "rack-b", nodeSelectors: [{ matchLabels: { rack: "b" } }] },
    ];
    const e = elect({
      ips: [IP],
      nodes: [alive("a", { rack: "a" }), alive("c", { rack: "c" })],
      advertisements: ads,
    });
    expect(e.owner).toBe("a");
    expect(e.notOwner).toEqual([
      {
        node: "c",
        reason: "NodeSelectors",
        message: "does not match nodeSelectors of L2Advertisements rack-a, rack-b",
      },
    ]);
  });

  test("externalTrafficPolicy: Local — only nodes with a ready local endpoint", () => {
    const e = elect({
      ips: [IP],
      nodes: [alive("a"), alive("b"), alive("c")],
      advertisements: [AD],
      localEndpoints: new Set(["b"]),
    });
    expect(e.owner).toBe("b");
    expect(e.notOwner.map((x) => [x.node, x.reason])).toEqual([
      ["a", "NoLocalEndpoint"],
      ["c", "NoLocalEndpoint"],
    ]);
  });

  test("nobody eligible: no owner, everyone has a reason", () => {
    const e = elect({
      ips: [IP],
      nodes: [{ name: "a", labels: {}, status: "notAlive" }, alive("b", { [EXCLUDE_LABEL]: "true" })],
      advertisements: [AD],
    });
    expect(e).toEqual({
      owner: undefined,
      candidates: [],
      notOwner: [
        { node: "a", reason: "NotAlive", message: "not alive" },
        { node: "b", reason: "ExcludedByLabel", message: `excluded by label ${EXCLUDE_LABEL}` },
      ],
    });
  });

  test("the first failing rule is the one reported (dead beats excluded)", () => {
    const e = elect({
      ips: [IP],
      nodes: [alive("a"), { name: "x", labels: { [EXCLUDE_LABEL]: "" }, status: "notAlive" }],
      advertisements: [AD],
    });
    expect(e.notOwner[0]?.reason).toBe("NotAlive");
  });
});

describe("order: preference weight, then sha256(node#ip)", () => {
  test("without preferences the hash decides, and the others are lower in the order", () => {
    const names = ["n1", "n2", "n3", "n4"];
    const e = elect({ ips: [IP], nodes: names.map((n) => alive(n)), advertisements: [AD] });
    const want = byHash(names);
    expect(e.candidates).toEqual(want);
    expect(e.owner).toBe(want[0] as string);
    for (const x of e.notOwner) {
      expect(x.reason).toBe("LowerInOrder");
      expect(x.message).toBe(`lower in the election order (#${want.indexOf(x.node) + 1})`);
    }
  });

  test("summed preferredNodeSelectors weights beat the hash", () => {
    const ads: ElectionAdvertisement[] = [
      {
        name: "pref",
        preferredNodeSelectors: [
          { weight: 10, preference: { matchLabels: { ssd: "yes" } } },
          { weight: 5, preference: { matchLabels: { zone: "a" } } },
        ],
      },
    ];
    const nodes = [
      alive("a", { zone: "a" }),
      alive("b", { ssd: "yes" }),
      alive("c", { ssd: "yes", zone: "a" }),
    ];
    expect(elect({ ips: [IP], nodes, advertisements: ads }).candidates).toEqual(["c", "b", "a"]);
  });

  test("equal weights fall back to the hash (ties are deterministic)", () => {
    const ads = [
      { name: "p", preferredNodeSelectors: [{ weight: 1, preference: { matchLabels: { t: "1" } } }] },
    ];
    const nodes = ["a", "b", "c", "d"].map((n) => alive(n, { t: "1" }));
    expect(elect({ ips: [IP], nodes, advertisements: ads }).candidates).toEqual(byHash(["a", "b", "c", "d"]));
  });

  test("a dual-stack Service follows its first IP", () => {
    const ips = ["10.0.0.5", "fd00::5"];
    const nodes = ["a", "b", "c", "d", "e"].map((n) => alive(n));
    const e = elect({ ips, nodes, advertisements: [AD] });
    expect(e.candidates).toEqual(byHash(["a", "b", "c", "d", "e"], "10.0.0.5"));
  });

  test("any input order gives the same result (every node computes the same owner)", () => {
    fc.assert(
      fc.property(
        fc.shuffledSubarray(["a", "b", "c", "d", "e", "f"], { minLength: 1 }),
        fc.integer({ min: 0, max: 255 }),
        (names, last) => {
          const ip = `10.1.2.${last}`;
          const fwd = elect({ ips: [ip], nodes: names.map((n) => alive(n)), advertisements: [AD] });
          const rev = elect({
            ips: [ip],
            nodes: [...names].reverse().map((n) => alive(n)),
            advertisements: [AD],
          });
          expect(rev.owner).toBe(fwd.owner as string);
          expect(rev.candidates).toEqual(fwd.candidates);
          expect(fwd.candidates).toEqual(
            orderCandidates(
              ip,
              names.map((n) => alive(n)),
            ),
          );
        },
      ),
      { seed: 8, numRuns: 200 },
    );
  });
});

describe("forced failover: declines", () => {
  const names = ["a", "b", "c"];
  const order = byHash(names);
  const [first, second, third] = order as [string, string, string];
  const nodes = names.map((n) => alive(n));

  test("the owner declines: the next candidate takes the VIP; the decliner says why", () => {
    const e = elect({ ips: [IP], nodes, advertisements: [AD], declines: new Map([[first, [{ ip: IP }]]]) });
    expect(e.owner).toBe(second);
    expect(e.candidates).toEqual(order);
    expect(e.notOwner.find((x) => x.node === first)).toEqual({
      node: first,
      reason: "Declined",
      message: "declined (forced failover)",
    });
  });

  test("declining in favour of a named candidate moves it there; those passed over say so", () => {
    const e = elect({
      ips: [IP],
      nodes,
      advertisements: [AD],
      declines: new Map([[first, [{ ip: IP, to: third }]]]),
    });
    expect(e.owner).toBe(third);
    expect(e.notOwner.find((x) => x.node === second)?.reason).toBe("PassedOver");
  });

  test("a named node that is not eligible is ignored: the next candidate takes it", () => {
    const e = elect({
      ips: [IP],
      nodes: [...nodes, { name: "zz", labels: {}, status: "notAlive" }],
      advertisements: [AD],
      declines: new Map([[first, [{ ip: IP, to: "zz" }]]]),
    });
    expect(e.owner).toBe(second);
  });

  test("a decline of another address, or by a node below the owner, changes nothing for the owner", () => {
    const other = elect({
      ips: [IP],
      nodes,
      advertisements: [AD],
      declines: new Map([[first, [{ ip: "10.9.9.9" }]]]),
    });
    expect(other.owner).toBe(first);
    const below = elect({
      ips: [IP],
      nodes,
      advertisements: [AD],
      declines: new Map([[third, [{ ip: IP }]]]),
    });
    expect(below.owner).toBe(first);
    expect(below.notOwner.find((x) => x.node === third)?.reason).toBe("Declined");
  });

  test("a decline never leaves the VIP unanswered: when every candidate declines, declines are ignored", () => {
    const all = new Map(names.map((n) => [n, [{ ip: IP }]]));
    expect(elect({ ips: [IP], nodes, advertisements: [AD], declines: all }).owner).toBe(first);
  });

  test("declining the second address of a dual-stack Service moves the whole Service", () => {
    const ips = [IP, "fd00::5"];
    const e = elect({ ips, nodes, advertisements: [AD], declines: new Map([[first, [{ ip: "fd00::5" }]]]) });
    expect(e.owner).toBe(second);
  });
});

describe("the planner feeds the election (appliance and Kubernetes inputs)", () => {
  const yaml = (svcExtra = "") => `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan }
spec: { addresses: [10.0.0.0/24, "fd00::/120"] }
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: lan-l2 }
spec: { ipAddressPools: [lan] }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  type: LoadBalancer
  ports: [{ port: 80 }]${svcExtra}
`;
  const cfg = (extra = "") => {
    const r = configFromText(yaml(extra), "test.yaml");
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    return r.config;
  };
  const assign = [{ key: "shop/web", pool: "lan", ips: [IP, "fd00::5"] }];
  const node = (name: string, labels: Record<string, string> = {}) => ({ name, labels });

  test("a member labelled exclude-from-external-load-balancers never owns; the view says why", () => {
    const order = byHash(["a", "b", "c"]);
    const excluded = order[0] as string;
    const members = ["a", "b", "c"].map((n) => node(n, n === excluded ? { [EXCLUDE_LABEL]: "" } : {}));
    const p = computePlan(cfg(), assign, node(excluded, { [EXCLUDE_LABEL]: "" }), members);
    expect(p.l2).toEqual([]);
    const [v4, v6] = p.elections ?? [];
    expect(v4?.ip).toBe(IP);
    expect(v6?.ip).toBe("fd00::5");
    expect(v4?.owner).toBe(order[1] as string);
    expect(v6?.owner).toBe(order[1] as string);
    expect(v4?.services).toEqual(["shop/web"]);
    expect(v4?.notOwner.find((x) => x.node === excluded)?.reason).toBe("ExcludedByLabel");
  });

  test("known members that are not live are reported dead, this node not ready while it holds back", () => {
    const p = computePlan(cfg(), assign, node("a"), [node("b")], {
      known: [node("a"), node("b"), node("c")],
      notReady: new Set(["a"]),
    });
    expect(p.l2).toEqual([]);
    const [e] = p.elections ?? [];
    expect(e?.owner).toBe("b");
    expect(e?.notOwner.map((x) => [x.node, x.reason])).toEqual([
      ["a", "NotReady"],
      ["c", "NotAlive"],
    ]);
  });

  test("externalTrafficPolicy: Local with endpoint information: only a node with a local endpoint", () => {
    const members = ["a", "b", "c"].map((n) => node(n));
    const local = cfg("\n  externalTrafficPolicy: Local");
    const p = computePlan(local, assign, node("c"), members, {
      localEndpoints: new Map([["shop/web", new Set(["c"])]]),
    });
    expect(p.l2.map((e) => e.ip)).toEqual([IP, "fd00::5"]);
    // No endpoints anywhere: nobody announces.
    const none = computePlan(local, assign, node("c"), members, { localEndpoints: new Map() });
    expect(none.l2).toEqual([]);
    expect(none.elections?.[0]?.owner).toBeUndefined();
    // Without endpoint information (appliance mode) the rule is off.
    const appliance = computePlan(local, assign, node("c"), members);
    expect(appliance.elections?.[0]?.candidates).toHaveLength(3);
    // Cluster policy ignores endpoint information.
    const cluster = computePlan(cfg(), assign, node("c"), members, { localEndpoints: new Map() });
    expect(cluster.elections?.[0]?.candidates).toHaveLength(3);
  });

  test("NetworkUnavailable nodes (Kubernetes) are skipped", () => {
    const order = byHash(["a", "b"]);
    const p = computePlan(cfg(), assign, node("a"), [node("a"), node("b")], {
      networkUnavailable: new Set([order[0] as string]),
    });
    expect(p.elections?.[0]?.owner).toBe(order[1] as string);
  });

  test("a decline carried by the heartbeats moves the VIP in every node's plan", () => {
    const names = ["a", "b", "c"];
    const order = byHash(names);
    const declines = new Map([[order[0] as string, [{ ip: IP }]]]);
    for (const self of names) {
      const p = computePlan(
        cfg(),
        assign,
        node(self),
        names.map((n) => node(n)),
        { declines },
      );
      expect(p.elections?.[0]?.owner).toBe(order[1] as string);
      expect(p.l2.length > 0).toBe(self === order[1]);
    }
  });
});
