/**
 * The announcement planner (src/plan/plan.ts) as stories: which node answers ARP/NDP for a VIP
 * and on which interfaces, and which prefixes go to which BGP peer with which attributes.
 *
 * Configurations are real manifests run through the real validator (configFromText), so every
 * story is one a user could write. The election hash is recomputed here with Bun's own SHA-256,
 * independently of the planner's implementation.
 */
import { describe, expect, test } from "bun:test";
import { type Config, configFromText, formatProblem } from "../../src/config/index.ts";
import {
  computePlan,
  electionHash,
  type NodeInfo,
  orderCandidates,
  type PlannedAssignment,
} from "../../src/plan/plan.ts";

function config(yaml: string): Config {
  const r = configFromText(yaml, "plan.yaml");
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join("\n"));
  return r.config;
}

function sha256hex(s: string): string {
  return new Bun.CryptoHasher("sha256").update(s).digest("hex");
}

/** MetalLB's order, written out independently: weight desc, then sha256(node#ip) asc. */
function expectedOrder(ip: string, nodes: { name: string; weight?: number }[]): string[] {
  return [...nodes]
    .sort((a, b) => {
      const w = (b.weight ?? 0) - (a.weight ?? 0);
      if (w !== 0) return w;
      const ha = sha256hex(`${a.name}#${ip}`);
      const hb = sha256hex(`${b.name}#${ip}`);
      return ha < hb ? -1 : ha > hb ? 1 : 0;
    })
    .map((n) => n.name);
}

const POOL = `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan }
spec:
  addresses: [10.0.0.0/24, "fd00::/120"]
`;

function svc(ns: string, name: string, labels: Record<string, string> = {}): string {
  return `
---
apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${ns}
  labels: ${JSON.stringify(labels)}
spec:
  type: LoadBalancer
  ports: [{ port: 80 }]
`;
}

const node = (name: string, labels: Record<string, string> = {}): NodeInfo => ({ name, labels });
const assign = (key: string, ...ips: string[]): PlannedAssignment => ({ key, pool: "lan", ips });

describe("layer 2: who answers for a VIP", () => {
  test("the election hash is sha256(node + '#' + ip) in lowercase hex", () => {
    expect(electionHash("node-a", "10.0.0.7")).toBe(sha256hex("node-a#10.0.0.7"));
    expect(electionHash("node-a", "fd00::7")).toBe(sha256hex("node-a#fd00::7"));
  });

  test("without preferences, candidates are ordered by the hash, and the first one answers", () => {
    const names = ["alpha", "bravo", "charlie", "delta", "echo"];
    const c = config(`${POOL}---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: l2 }
${svc("shop", "web")}`);
    for (const ip of ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.200"]) {
      const want = expectedOrder(
        ip,
        names.map((name) => ({ name })),
      );
      expect(
        orderCandidates(
          ip,
          names.map((n) => node(n)),
        ),
      ).toEqual(want);
      const members = names.map((n) => node(n));
      // Every node computes the same owner; only the owner lists the VIP as its own.
      for (const me of names) {
        const p = computePlan(c, [assign("shop/web", ip)], node(me), members);
        const mine = p.l2.map((e) => e.ip);
        const elsewhere = p.l2Elsewhere.map((e) => e.ip);
        if (me === want[0]) {
          expect(mine).toEqual([ip]);
          expect(elsewhere).toEqual([]);
          expect(p.l2[0]?.owner).toBe(me);
          expect(p.l2[0]?.candidates).toEqual(want);
        } else {
          expect(mine).toEqual([]);
          expect(elsewhere).toEqual([ip]);
          expect(p.l2Elsewhere[0]?.owner).toBe(want[0] as string);
        }
      }
    }
  });

  test("a node that does not match the advertisement's nodeSelectors is not a candidate", () => {
    const c = config(`${POOL}---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: l2 }
spec:
  nodeSelectors:
    - matchLabels: { rack: r1 }
${svc("shop", "web")}`);
    const members = [node("a", { rack: "r1" }), node("b", { rack: "r2" }), node("c", { rack: "r1" })];
    const ip = "10.0.0.9";
    const fromB = computePlan(c, [assign("shop/web", ip)], members[1] as NodeInfo, members);
    expect(fromB.l2).toEqual([]);
    expect(fromB.l2Elsewhere[0]?.candidates).toEqual(expectedOrder(ip, [{ name: "a" }, { name: "c" }]));
    expect(fromB.l2Elsewhere[0]?.candidates).not.toContain("b");
    // Even when b would win on the hash alone, it never answers.
    for (let i = 1; i < 60; i++) {
      const v = `10.0.0.${i}`;
      const p = computePlan(c, [assign("shop/web", v)], members[1] as NodeInfo, members);
      expect(p.l2).toEqual([]);
    }
    // A node alone and not selected: nobody answers, so nothing is planned at all.
    const alone = computePlan(c, [assign("shop/web", ip)], node("b", { rack: "r2" }));
    expect(alone.l2).toEqual([]);
    expect(alone.l2Elsewhere).toEqual([]);
  });

  test("preferredNodeSelectors: the highest summed weight wins over the hash", () => {
    const c = config(`${POOL}---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: l2 }
spec:
  preferredNodeSelectors:
    - weight: 30
      preference: { matchLabels: { ssd: "yes" } }
    - weight: 20
      preference: { matchExpressions: [{ key: zone, operator: In, values: [east] }] }
${svc("shop", "web")}`);
    const ip = "10.0.0.42";
    // Pick the node the hash ranks last and give it the preference: it must come first.
    const plain = expectedOrder(ip, [{ name: "n1" }, { name: "n2" }, { name: "n3" }, { name: "n4" }]);
    const last = plain[3] as string;
    const third = plain[2] as string;
    const members = plain.map((n) =>
      n === last ? node(n, { ssd: "yes" }) : n === third ? node(n, { zone: "east" }) : node(n),
    );
    const order = orderCandidates(ip, members, c.l2Advertisements[0]?.spec.preferredNodeSelectors);
    expect(order).toEqual([last, third, plain[0] as string, plain[1] as string]);
    expect(order).toEqual(
      expectedOrder(
        ip,
        plain.map((name) => ({ name, weight: name === last ? 30 : name === third ? 20 : 0 })),
      ),
    );
    // Weights add up: a node matching both preferences (50) beats one matching the heavier (30).
    const both = members.map((m) => (m.name === plain[0] ? node(m.name, { ssd: "yes", zone: "east" }) : m));
    expect(orderCandidates(ip, both, c.l2Advertisements[0]?.spec.preferredNodeSelectors)[0]).toBe(plain[0]);
    // And the plan follows the order.
    const p = computePlan(c, [assign("shop/web", ip)], node(last, { ssd: "yes" }), members);
    expect(p.l2.map((e) => e.ip)).toEqual([ip]);
    expect(p.l2[0]?.candidates).toEqual(order);
  });

  test("a dual-stack Service follows its first IP: both addresses go to the same node", () => {
    const c = config(`${POOL}---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: l2 }
${svc("shop", "web")}`);
    // Find addresses for which the IPv6 address alone would elect a different node.
    const names = ["n1", "n2", "n3"];
    const members = names.map((n) => node(n));
    let found: { v4: string; v6: string } | undefined;
    for (let i = 1; i < 200 && !found; i++) {
      const v4 = `10.0.0.${i}`;
      const v6 = `fd00::${i.toString(16)}`;
      const by4 = expectedOrder(
        v4,
        names.map((name) => ({ name })),
      )[0];
      const by6 = expectedOrder(
        v6,
        names.map((name) => ({ name })),
      )[0];
      if (by4 !== by6) found = { v4, v6 };
    }
    if (!found) throw new Error("no address pair with different winners (cannot happen with 3 nodes)");
    const winner = expectedOrder(
      found.v4,
      names.map((name) => ({ name })),
    )[0] as string;
    for (const me of names) {
      const p = computePlan(c, [assign("shop/web", found.v4, found.v6)], node(me), members);
      if (me === winner) {
        expect(p.l2.map((e) => e.ip).sort()).toEqual([found.v4, found.v6].sort());
        expect(p.l2.every((e) => e.owner === winner)).toBe(true);
      } else {
        expect(p.l2).toEqual([]);
        expect(p.l2Elsewhere.map((e) => e.owner)).toEqual([winner, winner]);
      }
    }
  });

  test("interfaces come from the advertisements that select this node; none listed means all", () => {
    const base = `${POOL}---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: edge }
spec:
  interfaces: [eth2, eth0]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: other-rack }
spec:
  interfaces: [eth9]
  nodeSelectors: [{ matchLabels: { rack: r9 } }]
`;
    const me = node("solo", { rack: "r1" });
    const one = computePlan(config(`${base}${svc("shop", "web")}`), [assign("shop/web", "10.0.0.5")], me);
    // eth9 belongs to an advertisement that does not select this node.
    expect(one.l2).toEqual([
      {
        ip: "10.0.0.5",
        interfaces: ["eth0", "eth2"],
        services: ["shop/web"],
        owner: "solo",
        candidates: ["solo"],
      },
    ]);

    const union = computePlan(
      config(`${base}---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: uplink }
spec:
  interfaces: [eth1, eth0]
${svc("shop", "web")}`),
      [assign("shop/web", "10.0.0.5")],
      me,
    );
    expect(union.l2[0]?.interfaces).toEqual(["eth0", "eth1", "eth2"]);

    const all = computePlan(
      config(`${base}---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: everywhere }
${svc("shop", "web")}`),
      [assign("shop/web", "10.0.0.5")],
      me,
    );
    expect(all.l2[0]?.interfaces).toEqual([]);
  });

  test("serviceSelectors: only the Services an advertisement selects are announced", () => {
    const c = config(`${POOL}---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: public }
spec:
  serviceSelectors: [{ matchLabels: { exposure: public } }]
${svc("shop", "web", { exposure: "public" })}${svc("shop", "admin", { exposure: "internal" })}${svc("shop", "bare")}`);
    const p = computePlan(
      c,
      [assign("shop/web", "10.0.0.1"), assign("shop/admin", "10.0.0.2"), assign("shop/bare", "10.0.0.3")],
      node("solo"),
    );
    expect(p.l2.map((e) => [e.ip, e.services])).toEqual([["10.0.0.1", ["shop/web"]]]);
    expect(p.l2Elsewhere).toEqual([]);
  });

  test("Services sharing an IP are one entry listing both; pools no advertisement covers are silent", () => {
    const c = config(`${POOL}---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: dark }
spec:
  addresses: [192.0.2.0/28]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: l2 }
spec:
  ipAddressPools: [lan]
${svc("infra", "dns")}${svc("infra", "dns-tcp")}${svc("shop", "hidden")}`);
    const p = computePlan(
      c,
      [
        assign("infra/dns-tcp", "10.0.0.53"),
        assign("infra/dns", "10.0.0.53"),
        { key: "shop/hidden", pool: "dark", ips: ["192.0.2.1"] },
      ],
      node("solo"),
    );
    expect(p.l2.map((e) => [e.ip, e.services])).toEqual([["10.0.0.53", ["infra/dns", "infra/dns-tcp"]]]);
  });
});

describe("which pool an address belongs to", () => {
  const c = config(`${POOL}---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: l2 }
spec: { ipAddressPools: [lan] }
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: tor }
spec: { myASN: 64500, peerASN: 64501, peerAddress: 10.1.0.1 }
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: bgp }
spec: { ipAddressPools: [lan] }
${svc("shop", "web")}`);

  test("an address no pool contains (kept after its pool shrank) is announced neither on L2 nor by BGP", () => {
    const p = computePlan(c, [{ key: "shop/web", pool: "lan", ips: ["10.0.1.5"] }], node("solo"));
    expect(p.l2).toEqual([]);
    expect(p.routes).toEqual([]);
  });

  test("the pool is the one that contains the address, whatever name the assignment carries", () => {
    // Restored from the state file, an assignment has no pool name; its address is still in lan.
    const p = computePlan(c, [{ key: "shop/web", pool: "", ips: ["10.0.0.5"] }], node("solo"));
    expect(p.l2.map((e) => e.ip)).toEqual(["10.0.0.5"]);
    expect(p.routes.map((r) => r.prefix)).toEqual(["10.0.0.5/32"]);
  });

  test("dual-stack with one address outside every pool: only the other one is announced", () => {
    const p = computePlan(c, [{ key: "shop/web", pool: "lan", ips: ["10.0.0.5", "fd99::5"] }], node("solo"));
    expect(p.l2.map((e) => e.ip)).toEqual(["10.0.0.5"]);
    expect(p.routes.map((r) => r.prefix)).toEqual(["10.0.0.5/32"]);
  });
});

const PEERS = `
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: ibgp }
spec: { myASN: 64500, peerASN: 64500, peerAddress: 10.1.0.1 }
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: ebgp }
spec: { myASN: 64500, peerASN: 64501, peerAddress: 10.1.0.2 }
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: dyn-internal }
spec: { myASN: 64500, dynamicASN: internal, peerAddress: 10.1.0.3 }
`;

describe("BGP: which prefixes go to which peer", () => {
  test("every peer gets every assigned IP as a /32 and /128 by default", () => {
    const c = config(`${POOL}${PEERS}---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: all }
${svc("shop", "web")}`);
    const p = computePlan(c, [assign("shop/web", "10.0.0.7", "fd00::7")], node("solo"));
    expect(p.peers).toEqual(["dyn-internal", "ebgp", "ibgp"]);
    expect(p.routes.map((r) => `${r.peer} ${r.prefix}`)).toEqual([
      "dyn-internal 10.0.0.7/32",
      "dyn-internal fd00::7/128",
      "ebgp 10.0.0.7/32",
      "ebgp fd00::7/128",
      "ibgp 10.0.0.7/32",
      "ibgp fd00::7/128",
    ]);
    expect(p.routes.every((r) => r.services.join() === "shop/web")).toBe(true);
  });

  test("aggregationLength and aggregationLengthV6 announce the covering prefix once for all its Services", () => {
    const c = config(`${POOL}${PEERS}---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: agg }
spec:
  aggregationLength: 24
  aggregationLengthV6: 120
  peers: [ebgp]
${svc("shop", "web")}${svc("shop", "api")}`);
    const p = computePlan(
      c,
      [assign("shop/web", "10.0.0.7", "fd00::7"), assign("shop/api", "10.0.0.130", "fd00::ff")],
      node("solo"),
    );
    expect(p.routes.map((r) => [r.peer, r.prefix, [...r.services].sort()])).toEqual([
      ["ebgp", "10.0.0.0/24", ["shop/api", "shop/web"]],
      ["ebgp", "fd00::/120", ["shop/api", "shop/web"]],
    ]);
  });

  test("localPref goes to iBGP peers only (RFC 4271 §5.1.5), dynamicASN internal counting as iBGP", () => {
    const c = config(`${POOL}${PEERS}---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: pref }
spec:
  localPref: 250
${svc("shop", "web")}`);
    const p = computePlan(c, [assign("shop/web", "10.0.0.7")], node("solo"));
    expect(Object.fromEntries(p.routes.map((r) => [r.peer, r.localPref]))).toEqual({
      ibgp: 250,
      "dyn-internal": 250,
      ebgp: undefined,
    });
  });

  test("communities: literals, Community aliases resolved to their values, and large communities", () => {
    const c = config(`${POOL}${PEERS}---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: { name: site-communities }
spec:
  communities:
    - { name: no-advertise, value: "65535:65282" }
    - { name: site-large, value: "large:64500:1:2" }
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: tagged }
spec:
  peers: [ebgp]
  communities: ["64500:100", no-advertise, site-large, "large:4200000000:7:8"]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: tagged-too }
spec:
  peers: [ebgp]
  communities: ["64500:100", "64500:200"]
${svc("shop", "web")}`);
    const p = computePlan(c, [assign("shop/web", "10.0.0.7")], node("solo"));
    expect(p.routes).toEqual([
      {
        peer: "ebgp",
        prefix: "10.0.0.7/32",
        localPref: undefined,
        communities: ["64500:100", "64500:200", "65535:65282"],
        largeCommunities: ["4200000000:7:8", "64500:1:2"],
        services: ["shop/web"],
      },
    ]);
  });

  test("BGPAdvertisement.peers restricts the peers; its nodeSelectors can exclude this node", () => {
    const c = config(`${POOL}${PEERS}---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: to-ibgp }
spec:
  peers: [ibgp]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: border-only }
spec:
  nodeSelectors: [{ matchLabels: { role: border } }]
${svc("shop", "web")}`);
    const inner = computePlan(c, [assign("shop/web", "10.0.0.7")], node("inner", { role: "leaf" }));
    expect(inner.routes.map((r) => r.peer)).toEqual(["ibgp"]);
    // The node is still peered with everyone: sessions come from BGPPeers, routes from advertisements.
    expect(inner.peers).toEqual(["dyn-internal", "ebgp", "ibgp"]);
    const border = computePlan(c, [assign("shop/web", "10.0.0.7")], node("edge", { role: "border" }));
    expect(border.routes.map((r) => r.peer)).toEqual(["dyn-internal", "ebgp", "ibgp"]);
  });

  test("a BGPPeer whose nodeSelectors exclude this node gets no session and no routes", () => {
    const c = config(`${POOL}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: tor-a }
spec:
  myASN: 64500
  peerASN: 64501
  peerAddress: 10.1.0.1
  nodeSelectors: [{ matchLabels: { rack: a } }]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: tor-b }
spec:
  myASN: 64500
  peerASN: 64501
  peerAddress: 10.2.0.1
  nodeSelectors: [{ matchLabels: { rack: b } }]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: all }
${svc("shop", "web")}`);
    const inA = computePlan(c, [assign("shop/web", "10.0.0.7")], node("n1", { rack: "a" }));
    expect(inA.peers).toEqual(["tor-a"]);
    expect(inA.routes.map((r) => r.peer)).toEqual(["tor-a"]);
    // Even an advertisement naming tor-b explicitly cannot reach a peer this node does not have.
    const named = config(`${POOL}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: tor-b }
spec:
  myASN: 64500
  peerASN: 64501
  peerAddress: 10.2.0.1
  nodeSelectors: [{ matchLabels: { rack: b } }]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: to-b }
spec:
  peers: [tor-b]
${svc("shop", "web")}`);
    const p = computePlan(named, [assign("shop/web", "10.0.0.7")], node("n1", { rack: "a" }));
    expect(p.peers).toEqual([]);
    expect(p.routes).toEqual([]);
  });

  test("serviceSelectors and pool selection decide which Services a BGPAdvertisement announces", () => {
    const c = config(`${POOL}---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: private, labels: { scope: private } }
spec:
  addresses: [192.0.2.0/28]
${PEERS}---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: public-web }
spec:
  peers: [ebgp]
  ipAddressPools: [lan]
  serviceSelectors: [{ matchExpressions: [{ key: tier, operator: In, values: [web, api] }] }]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: private-ibgp }
spec:
  peers: [ibgp]
  ipAddressPoolSelectors: [{ matchLabels: { scope: private } }]
${svc("shop", "web", { tier: "web" })}${svc("shop", "db", { tier: "db" })}${svc("ops", "grafana", { tier: "web" })}`);
    const p = computePlan(
      c,
      [
        assign("shop/web", "10.0.0.1"),
        assign("shop/db", "10.0.0.2"),
        { key: "ops/grafana", pool: "private", ips: ["192.0.2.3"] },
      ],
      node("solo"),
    );
    expect(p.routes.map((r) => `${r.peer} ${r.prefix} ${r.services.join(",")}`)).toEqual([
      "ebgp 10.0.0.1/32 shop/web",
      "ibgp 192.0.2.3/32 ops/grafana",
    ]);
  });

  test("the plan does not depend on the order of assignments", () => {
    const c = config(`${POOL}${PEERS}---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: all }
spec: { aggregationLength: 30 }
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: l2 }
${svc("a", "one")}${svc("b", "two")}${svc("c", "three")}`);
    const as = [assign("a/one", "10.0.0.1"), assign("b/two", "10.0.0.2"), assign("c/three", "10.0.0.9")];
    const members = [node("x"), node("y")];
    const norm = (p: ReturnType<typeof computePlan>) => JSON.stringify(p);
    const want = norm(computePlan(c, as, node("x"), members));
    expect(norm(computePlan(c, [...as].reverse(), node("x"), members))).toBe(want);
    expect(norm(computePlan(c, [as[1], as[2], as[0]] as PlannedAssignment[], node("x"), members))).toBe(want);
  });
});
