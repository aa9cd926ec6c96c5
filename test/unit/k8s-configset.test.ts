/**
 * The rule for metallb.io objects that got past admission (src/k8s/configset.ts): a bad object
 * and what depends on it stay out, everything else applies; what was in force keeps its place.
 */
import { describe, expect, test } from "bun:test";
import type { Kind } from "../../src/config/schemas.ts";
import type { KubeObject } from "../../src/k8s/client.ts";
import { type CrObject, contentKey, describeProblems, selectCrs } from "../../src/k8s/configset.ts";

const NS = "vipd-system";
let t = 0;
const obj = (kind: Kind, name: string, spec: Record<string, unknown>, at?: number): CrObject => ({
  kind,
  obj: {
    apiVersion: kind === "BGPPeer" ? "metallb.io/v1beta2" : "metallb.io/v1beta1",
    kind,
    metadata: {
      name,
      namespace: NS,
      uid: `uid-${name}`,
      creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, at ?? ++t)).toISOString(),
    },
    spec,
  },
});
const pool = (name: string, addresses: string[], at?: number) =>
  obj("IPAddressPool", name, { addresses }, at);
const names = (s: ReturnType<typeof selectCrs>) => s.accepted.map((l) => `${l.kind}/${l.obj.metadata.name}`);
const none = new Map<string, KubeObject>();

describe("selectCrs", () => {
  test("a valid set is taken whole", () => {
    const s = selectCrs(
      [pool("a", ["10.0.0.0/24"]), obj("L2Advertisement", "l2", { ipAddressPools: ["a"] })],
      none,
      NS,
      new Set(),
    );
    expect(names(s)).toEqual(["IPAddressPool/a", "L2Advertisement/l2"]);
    expect(s.rejected).toEqual([]);
  });

  test("a pool with 192.168.300.0/24 stays out, with what names it; a new good pool applies", () => {
    const s = selectCrs(
      [
        pool("bad", ["192.168.300.0/24"]),
        pool("good", ["10.1.0.0/24"]),
        obj("L2Advertisement", "on-bad", { ipAddressPools: ["bad"] }),
        obj("L2Advertisement", "on-good", { ipAddressPools: ["good"] }),
      ],
      none,
      NS,
      new Set(),
    );
    expect(names(s)).toEqual(["IPAddressPool/good", "L2Advertisement/on-good"]);
    expect(s.rejected.map((r) => [r.kind, r.name, describeProblems(r.problems)])).toEqual([
      ["IPAddressPool", "bad", 'IPAddressPool/bad: spec.addresses[0]: "192.168.300.0" is not an IP address'],
      [
        "L2Advertisement",
        "on-bad",
        'L2Advertisement/on-bad: spec.ipAddressPools[0]: IPAddressPool "bad" does not exist',
      ],
    ]);
    expect(s.rejected[0]?.uid).toBe("uid-bad");
  });

  test("overlapping pools: the one in force keeps its place even when the other is older", () => {
    const old = pool("old", ["10.2.0.0/24"], 100);
    const first = selectCrs([old], none, NS, new Set());
    const inForce = new Set(first.accepted.map(contentKey));
    const s = selectCrs([pool("older-but-new", ["10.2.0.128/25"], 1), old], none, NS, inForce);
    expect(names(s)).toEqual(["IPAddressPool/old"]);
    expect(s.rejected.map((r) => r.name)).toEqual(["older-but-new"]);
    expect(describeProblems(s.rejected[0]?.problems ?? [])).toContain("overlaps");
  });

  test("at start (nothing in force) the oldest of two overlapping pools wins", () => {
    const s = selectCrs(
      [pool("young", ["10.3.0.0/24"], 50), pool("aged", ["10.3.0.0/24"], 10)],
      none,
      NS,
      new Set(),
    );
    expect(names(s)).toEqual(["IPAddressPool/aged"]);
    expect(s.rejected.map((r) => r.name)).toEqual(["young"]);
  });

  test("a changed object that breaks the set is left out; and the unchanged advertisement naming it goes out too", () => {
    // The pool is edited into an invalid one: the pool and the advertisement naming it go out,
    // an unrelated pool stays.
    const a = pool("a", ["10.4.0.0/24"]);
    const l2 = obj("L2Advertisement", "l2", { ipAddressPools: ["a"] });
    const other = pool("other", ["10.5.0.0/24"]);
    const first = selectCrs([a, l2, other], none, NS, new Set());
    const inForce = new Set(first.accepted.map(contentKey));
    const broken: CrObject = {
      kind: "IPAddressPool",
      obj: { ...a.obj, spec: { addresses: ["10.4.0.0/33"] } },
    };
    const s = selectCrs([broken, l2, other], none, NS, inForce);
    expect(names(s)).toEqual(["IPAddressPool/other"]);
    expect(s.rejected.map((r) => r.name).sort()).toEqual(["a", "l2"]);
  });

  test("a BGPPeer whose password Secret is missing stays out, and so does its BGPAdvertisement", () => {
    const s = selectCrs(
      [
        pool("p", ["10.6.0.0/24"]),
        obj("BGPPeer", "peer", {
          myASN: 64500,
          peerASN: 64501,
          peerAddress: "192.0.2.1",
          passwordSecret: { name: "nope", namespace: NS },
        }),
        obj("BGPAdvertisement", "adv", { peers: ["peer"] }),
      ],
      none,
      NS,
      new Set(),
    );
    expect(names(s)).toEqual(["IPAddressPool/p"]);
    expect(s.rejected.map((r) => [r.name, r.problems[0]?.field])).toEqual([
      ["peer", "spec.passwordSecret"],
      ["adv", "spec.peers[0]"],
    ]);
  });
});
