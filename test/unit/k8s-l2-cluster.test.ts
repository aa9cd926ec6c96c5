/**
 * The pure parts of layer-2 clustering in Kubernetes mode: members from Node objects, who may own
 * VIPs (Kubernetes AND live membership), the member list changing under a running membership,
 * and per-VIP Lease fencing decisions on an injected clock.
 */
import { describe, expect, test } from "bun:test";
import { aliveNodes, createMembership, onHeartbeat, setMembers, tick } from "../../src/cluster/membership.ts";
import { configFromText } from "../../src/config/index.ts";
import type { KubeObject } from "../../src/k8s/client.ts";
import {
  decideFencing,
  type FenceInput,
  fenceTiming,
  type LeaseKnowledge,
  leaseName,
} from "../../src/k8s/fence.ts";
import { electionMembers, membersFromNodes, sameMembers } from "../../src/k8s/members.ts";
import { parseK8sArgs } from "../../src/k8s/run.ts";
import { computePlan } from "../../src/plan/plan.ts";

const node = (name: string, addresses: { type: string; address: string }[] = []): KubeObject => ({
  metadata: { name },
  status: { addresses },
});

describe("members from the Node list", () => {
  test("each Node's first InternalIP of the preferred family; sorted by name", () => {
    const nodes = [
      node("b", [
        { type: "Hostname", address: "b" },
        { type: "InternalIP", address: "2001:db8::0:b" },
        { type: "InternalIP", address: "10.0.0.2" },
        { type: "InternalIP", address: "10.0.0.22" },
      ]),
      node("a", [
        { type: "ExternalIP", address: "198.51.100.1" },
        { type: "InternalIP", address: "10.0.0.1" },
      ]),
    ];
    expect(membersFromNodes(nodes)).toEqual([
      { name: "a", address: "10.0.0.1" },
      { name: "b", address: "10.0.0.2" },
    ]);
    expect(membersFromNodes(nodes, "ipv6")).toEqual([
      { name: "a", address: "10.0.0.1" },
      { name: "b", address: "2001:db8::b" },
    ]);
  });

  test("a Node without a usable InternalIP is a member without an address (never heard, never alive)", () => {
    const nodes = [
      node("x"),
      node("y", [{ type: "InternalIP", address: "not-an-ip" }]),
      { metadata: { name: "z" }, status: { addresses: "garbage" } },
      { metadata: { name: "w" } },
    ];
    expect(membersFromNodes(nodes as KubeObject[])).toEqual([
      { name: "w" },
      { name: "x" },
      { name: "y" },
      { name: "z" },
    ]);
  });

  test("sameMembers: names and addresses, in any order", () => {
    const a = [
      { name: "a", address: "10.0.0.1" },
      { name: "b", address: "10.0.0.2" },
    ];
    expect(sameMembers(a, [...a].reverse())).toBe(true);
    expect(sameMembers(a, [a[0] as { name: string }, { name: "b", address: "10.0.0.3" }])).toBe(false);
    expect(sameMembers(a, [a[0] as { name: string }])).toBe(false);
    expect(sameMembers(a, [a[0] as { name: string }, { name: "c", address: "10.0.0.2" }])).toBe(false);
  });
});

describe("eligibility: Kubernetes Ready AND membership alive", () => {
  const ready = [
    { name: "n1", labels: {} },
    { name: "n2", labels: {} },
    { name: "n3", labels: {} },
  ];

  test("without membership the Ready Nodes are the members (today's behaviour)", () => {
    expect(electionMembers(ready, "n1")).toEqual({ members: ready, notReady: undefined });
  });

  test("with membership only Ready Nodes that are also alive count; a node alive but not Ready does not", () => {
    const r = electionMembers(ready.slice(0, 2), "n1", { alive: ["n1", "n3", "ghost"], ready: true });
    expect(r.members.map((n) => n.name)).toEqual(["n1"]);
    expect(r.notReady).toBeUndefined();
  });

  test("this node holding back (start, pause, partition) is marked not ready", () => {
    const r = electionMembers(ready, "n1", { alive: ["n2", "n3"], ready: false });
    expect(r.members.map((n) => n.name)).toEqual(["n2", "n3"]);
    expect([...(r.notReady ?? [])]).toEqual(["n1"]);
  });

  test("the plan: a Ready Node that membership calls dead loses the VIP, and says NotAlive", () => {
    const cfg = configFromText(
      `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan, namespace: metallb-system }
spec: { addresses: ["192.0.2.10/32"] }
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: l2, namespace: metallb-system }
spec: {}
`,
      "t.yaml",
    );
    if (!cfg.ok) throw new Error("config");
    const assignments = [{ key: "default/web", pool: "lan", ips: ["192.0.2.10"] }];
    const plan = (self: string, alive: string[]) => {
      const { members, notReady } = electionMembers(ready, self, { alive, ready: alive.includes(self) });
      return computePlan(cfg.config, assignments, { name: self, labels: {} }, members, {
        known: ready,
        notReady,
      });
    };
    const all = plan("n1", ["n1", "n2", "n3"]).elections?.[0];
    const first = all?.owner as string;
    expect(all?.candidates).toHaveLength(3);
    const rest = ["n1", "n2", "n3"].filter((n) => n !== first);
    const without = plan(rest[0] as string, rest).elections?.[0];
    expect(without?.owner).toBe(all?.candidates.filter((c) => c !== first)[0] as string);
    expect(without?.notOwner.find((x) => x.node === first)?.reason).toBe("NotAlive");
    // Seen from the node that holds back: it owns nothing and says why.
    const holding = plan(first, rest).elections?.[0];
    expect(holding?.owner).not.toBe(first);
    expect(holding?.notOwner.find((x) => x.node === first)?.reason).toBe("NotReady");
  });
});

describe("membership follows the Node list (setMembers)", () => {
  const cfg = { self: "a", members: ["a", "b"], intervalMs: 50, deadAfterMs: 200, riseMs: 100 };
  const hb = (node: string, seq: bigint) => ({ node, seq, intervalMs: 50, leaving: false, ready: true });

  test("a new Node starts Unknown and must rise; a removed one is forgotten; the rest keep their state", () => {
    let m = createMembership(cfg, 0);
    m = onHeartbeat(m, hb("b", 1n), 10).m;
    m = onHeartbeat(m, hb("b", 2n), 120).m;
    expect(m.peers.get("b")?.state).toBe("Alive");
    const m2 = setMembers(m, ["a", "b", "c"], 130);
    expect(m2.peers.get("b")).toBe(m.peers.get("b") as NonNullable<ReturnType<typeof m.peers.get>>);
    expect(m2.peers.get("c")?.state).toBe("Unknown");
    // Before the member list had it, c's heartbeats were UnknownNode; now they count.
    expect(onHeartbeat(m, hb("c", 1n), 131).drop).toBe("UnknownNode");
    let m3 = onHeartbeat(m2, hb("c", 1n), 131).m;
    expect(m3.peers.get("c")?.state).toBe("Rising");
    m3 = setMembers(m3, ["a", "c"], 140);
    expect([...m3.peers.keys()]).toEqual(["c"]);
    expect(aliveNodes(tick(m3, 400).m, 400)).not.toContain("b");
  });

  test("the same list (any order, self included or not) changes nothing", () => {
    const m = createMembership(cfg, 0);
    expect(setMembers(m, ["b", "a"], 5)).toBe(m);
    expect(setMembers(m, ["b"], 5)).toBe(m);
  });
});

describe("Lease names", () => {
  test("DNS-1123 safe, one per address whatever its text form", () => {
    expect(leaseName("10.0.0.1")).toBe("vipd-l2-v4-10-0-0-1");
    expect(leaseName("2001:db8::1")).toBe("vipd-l2-v6-20010db8000000000000000000000001");
    expect(leaseName("2001:DB8:0::1")).toBe(leaseName("2001:db8::1"));
    expect(leaseName("::")).toBe(`vipd-l2-v6-${"0".repeat(32)}`);
    for (const ip of ["10.0.0.1", "::", "fd00::", "255.255.255.255"])
      expect(leaseName(ip)).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(() => leaseName("10.0.0")).toThrow(/not an IP address/);
  });
});

describe("fencing decisions on an injected clock", () => {
  const timing = fenceTiming(10); // renew every 3333 ms; margin 1000 ms
  const mine = (renewedAt: number, observedAt = renewedAt): LeaseKnowledge => ({
    record: { holder: "me", durationS: 10, renewTime: renewedAt },
    observedAt,
    renewedAt,
  });
  const theirs = (holder: string, observedAt: number, durationS = 10): LeaseKnowledge => ({
    record: { holder, durationS, renewTime: 0 },
    observedAt,
  });
  const decide = (now: number, elected: string[], leases: [string, LeaseKnowledge][]) =>
    decideFencing({
      self: "me",
      now,
      elected: new Set(elected),
      leases: new Map(leases),
      timing,
    } satisfies FenceInput);

  test("timing: renew three times per duration, margin 10% but at least 500 ms", () => {
    expect(fenceTiming(10)).toEqual({ durationS: 10, renewEveryMs: 3333, marginMs: 1000 });
    expect(fenceTiming(2)).toEqual({ durationS: 2, renewEveryMs: 666, marginMs: 500 });
  });

  const table: {
    name: string;
    now: number;
    elected: string[];
    leases: [string, LeaseKnowledge][];
    announce: string[];
    actions: string[];
    verdicts: string[];
  }[] = [
    {
      name: "elected, never read: acquire first, announce nothing yet",
      now: 0,
      elected: ["10.0.0.1"],
      leases: [],
      announce: [],
      actions: ["acquire 10.0.0.1"],
      verdicts: ["10.0.0.1 Acquiring"],
    },
    {
      name: "elected, the Lease does not exist: acquire (create)",
      now: 0,
      elected: ["10.0.0.1"],
      leases: [["10.0.0.1", { record: null, observedAt: 0 }]],
      announce: [],
      actions: ["acquire 10.0.0.1"],
      verdicts: ["10.0.0.1 Acquiring"],
    },
    {
      name: "elected, released by its holder (holder empty): acquire at once",
      now: 5,
      elected: ["10.0.0.1"],
      leases: [["10.0.0.1", theirs("", 4, 1)]],
      announce: [],
      actions: ["acquire 10.0.0.1"],
      verdicts: ["10.0.0.1 Acquiring"],
    },
    {
      name: "elected, held by another node and fresh: wait, say whom for and until when",
      now: 9_999,
      elected: ["10.0.0.1"],
      leases: [["10.0.0.1", theirs("n2", 0)]],
      announce: [],
      actions: [],
      verdicts: ["10.0.0.1 Waiting n2 10000"],
    },
    {
      name: "elected, another node's Lease expired on this node's clock: take it over",
      now: 10_000,
      elected: ["10.0.0.1"],
      leases: [["10.0.0.1", theirs("n2", 0)]],
      announce: [],
      actions: ["acquire 10.0.0.1"],
      verdicts: ["10.0.0.1 Acquiring n2 10000"],
    },
    {
      name: "held and fresh: announce, no write",
      now: 1_000,
      elected: ["10.0.0.1"],
      leases: [["10.0.0.1", mine(0)]],
      announce: ["10.0.0.1"],
      actions: [],
      verdicts: ["10.0.0.1 Held me 10000"],
    },
    {
      name: "held, renewal due: announce and renew",
      now: 3_333,
      elected: ["10.0.0.1"],
      leases: [["10.0.0.1", mine(0)]],
      announce: ["10.0.0.1"],
      actions: ["renew 10.0.0.1"],
      verdicts: ["10.0.0.1 Held me 10000"],
    },
    {
      name: "held but not renewed in time: silent at duration − margin, keeps trying",
      now: 9_000,
      elected: ["10.0.0.1"],
      leases: [["10.0.0.1", mine(0)]],
      announce: [],
      actions: ["renew 10.0.0.1"],
      verdicts: ["10.0.0.1 Acquiring me 10000"],
    },
    {
      name: "held, no longer elected: silent, hand the Lease back",
      now: 1_000,
      elected: [],
      leases: [["10.0.0.1", mine(0)]],
      announce: [],
      actions: ["release 10.0.0.1"],
      verdicts: [],
    },
    {
      name: "a Lease this node's name holds from a previous run: this node takes it at once",
      now: 1,
      elected: ["10.0.0.1"],
      leases: [["10.0.0.1", { record: { holder: "me", durationS: 10, renewTime: 0 }, observedAt: 0 }]],
      announce: [],
      actions: ["acquire 10.0.0.1"],
      verdicts: ["10.0.0.1 Acquiring"],
    },
    {
      name: "another node's Lease, not elected: nothing to do",
      now: 1,
      elected: [],
      leases: [["10.0.0.1", theirs("n2", 0)]],
      announce: [],
      actions: [],
      verdicts: [],
    },
    {
      name: "several VIPs at once, sorted",
      now: 4_000,
      elected: ["10.0.0.3", "10.0.0.1", "10.0.0.2"],
      leases: [
        ["10.0.0.1", mine(2_000)],
        ["10.0.0.2", theirs("n2", 0)],
        ["10.0.0.4", mine(2_000)],
      ],
      announce: ["10.0.0.1"],
      actions: ["acquire 10.0.0.3", "release 10.0.0.4"],
      verdicts: ["10.0.0.1 Held me 12000", "10.0.0.2 Waiting n2 10000", "10.0.0.3 Acquiring"],
    },
  ];
  for (const row of table)
    test(row.name, () => {
      const d = decide(row.now, row.elected, row.leases);
      expect(d.announce).toEqual(row.announce);
      expect(d.actions.map((a) => `${a.kind} ${a.ip}`)).toEqual(row.actions);
      expect(
        d.verdicts.map((v) => [v.ip, v.state, v.holder, v.until].filter((x) => x !== undefined).join(" ")),
      ).toEqual(row.verdicts);
    });

  test("wakeAt: when the own hold would run out, or the next renewal, or another's Lease expires", () => {
    expect(decide(1_000, ["10.0.0.1"], [["10.0.0.1", mine(0)]]).wakeAt).toBe(3_333);
    expect(decide(3_333, ["10.0.0.1"], [["10.0.0.1", mine(0)]]).wakeAt).toBe(9_000);
    expect(decide(500, ["10.0.0.1"], [["10.0.0.1", theirs("n2", 0)]]).wakeAt).toBe(10_000);
    expect(decide(500, [], []).wakeAt).toBeUndefined();
  });

  test("never two announcers: a waiter takes over only after the holder's own stop time", () => {
    // The holder renewed at r (its send time); the waiter saw that renewal at o ≥ r. For any
    // clock value, holder announcing AND waiter allowed to take over never happen together.
    for (const r of [0, 1_234, 7_000])
      for (const lag of [0, 1, 50, 2_000])
        for (let now = r; now < r + 20_000; now += 97) {
          const holder = decide(now, ["v"], [["v", mine(r)]]).announce.includes("v");
          const waiter = decideFencing({
            self: "other",
            now,
            elected: new Set(["v"]),
            leases: new Map([
              ["v", { record: { holder: "me", durationS: 10, renewTime: r }, observedAt: r + lag }],
            ]),
            timing,
          });
          const takes = waiter.actions.some((a) => a.kind === "acquire");
          expect(holder && takes).toBe(false);
        }
  });
});

describe("vipd k8s arguments for membership and fencing", () => {
  test("cluster key from the flag (required) or the environment (optional file); fencing duration", () => {
    const a = parseK8sArgs(
      [
        "--cluster-key-file",
        "/k",
        "--cluster-port",
        "7000",
        "--l2-lease-fencing",
        "--l2-lease-duration",
        "5",
      ],
      {},
    );
    if ("error" in a) throw new Error(a.error);
    expect(a.cluster).toEqual({
      keyFile: "/k",
      keyFileOptional: false,
      port: 7000,
      intervalMs: 50,
      deadAfterMs: 200,
      riseMs: 1000,
      addressFamily: "ipv4",
    });
    expect(a.leaseFencingS).toBe(5);
    const e = parseK8sArgs([], { VIPD_CLUSTER_KEY_FILE: "/etc/vipd/cluster/key" });
    if ("error" in e) throw new Error(e.error);
    expect(e.cluster.keyFile).toBe("/etc/vipd/cluster/key");
    expect(e.cluster.keyFileOptional).toBe(true);
    expect(e.leaseFencingS).toBeUndefined();
    const f = parseK8sArgs(["--l2-lease-fencing"], {});
    expect("error" in f ? f.error : f.leaseFencingS).toBe(10);
  });

  test("bad values are clear errors", () => {
    const err = (argv: string[]) => {
      const r = parseK8sArgs(argv, {});
      return "error" in r ? r.error : "";
    };
    expect(err(["--cluster-port", "0"])).toMatch(/--cluster-port must be an integer from 1 to 65535/);
    expect(err(["--cluster-interval-ms", "abc"])).toMatch(/--cluster-interval-ms must be an integer/);
    expect(err(["--cluster-interval-ms", "100", "--cluster-dead-after-ms", "150"])).toMatch(/at least twice/);
    expect(err(["--cluster-address-family", "ipx"])).toMatch(/ipv4 or ipv6/);
    expect(err(["--l2-lease-duration", "5"])).toMatch(/needs --l2-lease-fencing/);
    expect(err(["--l2-lease-fencing", "--l2-lease-duration", "1"])).toMatch(/from 2 to 3600/);
  });
});
