/**
 * Adj-RIB-Out: validating the caller's routes (bad input changes nothing), attributes per session
 * kind (iBGP/eBGP, 2- and 4-octet AS), and sending only the difference.
 */
import { describe, expect, test } from "bun:test";
import { AdjRibOut } from "../../src/bgp/adj-rib-out.ts";
import { generateRoutes } from "../../src/bgp/cli.ts";
import {
  decodeMessage,
  formatCommunity,
  formatPrefix,
  type UpdateMessage,
} from "../../src/bgp/codec/index.ts";
import { validatePeer } from "../../src/bgp/config.ts";
import {
  attrKey,
  internAttrSet,
  outAttributes,
  parseRoutes,
  type RouteTable,
  type SessionView,
} from "../../src/bgp/ribout.ts";

const routes = (specs: Parameters<typeof parseRoutes>[0]) => {
  const r = parseRoutes(specs);
  if (!r.ok) throw new Error(r.errors.join("; "));
  return r.value;
};
const ebgp: SessionView = {
  localAsn: 64512,
  peerAsn: 64500,
  as4: true,
  families: new Set([4, 6]),
  localAddress: "10.0.0.2",
  extendedNextHop: false,
};
const ibgp: SessionView = { ...ebgp, peerAsn: 64512 };
const decodeAll = (ms: Uint8Array[], as4 = true) =>
  ms.map((b) => {
    const r = decodeMessage(b, { as4 });
    if (!r.ok) throw r.error;
    return r.msg as UpdateMessage;
  });

describe("parseRoutes", () => {
  test("rejects the whole set with one line per problem", () => {
    const r = parseRoutes([
      { prefix: "10.0.0.1/33" },
      { prefix: "10.0.0.2/32", communities: ["65536:1"], largeCommunities: ["1:2"] },
      { prefix: "10.0.0.3/32", nextHop: "nope", localPref: -1 },
      { prefix: "10.0.0.4/32" },
      { prefix: "10.0.0.4" },
    ]);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.errors).toHaveLength(6);
      expect(r.errors[0]).toContain("routes[0]");
      expect(r.errors.at(-1)).toContain("given twice");
    }
  });
  test('MetalLB\'s "large:A:B:C" among the communities is a large community', () => {
    const v = [
      ...routes([
        { prefix: "192.0.2.1/32", communities: ["large:64512:1:2", "64512:5"], largeCommunities: ["1:1:1"] },
      ]).values(),
    ][0]!;
    expect(v.communities.map(formatCommunity)).toEqual(["64512:5"]);
    expect(v.largeCommunities).toEqual([
      [1, 1, 1],
      [64512, 1, 2],
    ]);
    expect(parseRoutes([{ prefix: "192.0.2.1/32", communities: ["large:1:2"] }]).ok).toBe(false);
  });
  test("a bare address is a host route; communities are sorted and deduplicated", () => {
    const r = routes([{ prefix: "2001:db8::1", communities: ["65000:2", "65000:1", "65000:2"] }]);
    const v = [...r.values()][0]!;
    expect(v.key).toBe("2001:db8::1/128");
    expect(v.communities.map(formatCommunity)).toEqual(["65000:1", "65000:2"]);
  });
});

describe("attributes per session", () => {
  const r = [
    ...routes([
      {
        prefix: "192.0.2.1/32",
        localPref: 300,
        med: 7,
        communities: ["65000:1"],
        largeCommunities: ["64512:1:2"],
      },
    ]).values(),
  ][0]!;
  test("eBGP: AS_PATH [myASN], no LOCAL_PREF, next hop = our session address", () => {
    const o = outAttributes(r, ebgp);
    expect("attrs" in o && o.attrs).toEqual({
      origin: 0,
      asPath: [{ type: 2, asns: [64512] }],
      med: 7,
      communities: [0xfde80001],
      largeCommunities: [[64512, 1, 2]],
    });
    expect("nextHops" in o && o.nextHops).toEqual(["10.0.0.2"]);
  });
  test("iBGP: empty AS_PATH and LOCAL_PREF (default 100)", () => {
    const o = outAttributes(r, ibgp);
    expect("attrs" in o && [o.attrs.asPath, o.attrs.localPref]).toEqual([[], 300]);
    const d = [...routes([{ prefix: "192.0.2.2/32" }]).values()][0]!;
    const o2 = outAttributes(d, ibgp);
    expect("attrs" in o2 && o2.attrs.localPref).toBe(100);
  });
  test("4-octet local ASN to a 2-octet peer: AS_TRANS in AS_PATH, the real ASN in AS4_PATH", () => {
    const o = outAttributes(r, { ...ebgp, localAsn: 4200000001, as4: false });
    expect("attrs" in o && [o.attrs.asPath, o.attrs.as4Path]).toEqual([
      [{ type: 2, asns: [23456] }],
      [{ type: 2, asns: [4200000001] }],
    ]);
  });
  // Issue 17, "BGP behaviour found with GoBGP and ExaBGP as peers": the next hop for the other
  // family comes from the session's own interface (nexthop.ts), not from a host-wide address.
  test("an IPv6 route on an IPv4 session takes the session interface's IPv6 next hops (RFC 2545 §3), or is not sent", () => {
    const v6 = [...routes([{ prefix: "2001:db8::1/128" }]).values()][0]!;
    expect(outAttributes(v6, ebgp)).toEqual({
      error: "no IPv6 address on the interface of this IPv4 session to use as next hop",
    });
    const o = outAttributes(v6, { ...ebgp, otherFamilyNextHops: { 6: ["fd00:2::2", "fe80::2"] } });
    expect("nextHops" in o && o.nextHops).toEqual(["fd00:2::2", "fe80::2"]);
  });
  test("an IPv4 route on an IPv6 session takes the interface's IPv4 address, else (RFC 8950) the session address", () => {
    const v4 = [...routes([{ prefix: "192.0.2.7/32" }]).values()][0]!;
    const s6: SessionView = { ...ebgp, localAddress: "fd00::2" };
    expect("error" in outAttributes(v4, s6)).toBe(true);
    const a = outAttributes(v4, { ...s6, otherFamilyNextHops: { 4: "10.0.2.2" } });
    expect("nextHops" in a && a.nextHops).toEqual(["10.0.2.2"]);
    const b = outAttributes(v4, { ...s6, extendedNextHop: true });
    expect("nextHops" in b && b.nextHops).toEqual(["fd00::2"]);
  });
  test("an explicit next hop wins", () => {
    const v6nh = [...routes([{ prefix: "2001:db8::1/128", nextHop: "fd00::2" }]).values()][0]!;
    expect("nextHops" in outAttributes(v6nh, ebgp)).toBe(true);
    expect(outAttributes(v6nh, { ...ebgp, families: new Set([4]) })).toEqual({
      error: "IPv6 not negotiated",
    });
  });
});

/** The UPDATEs from one flush of `rib` to `want`, decoded (End-of-RIB markers left out). */
const flushTo = (rib: AdjRibOut, want: RouteTable, v = ebgp) => {
  rib.setDesired(want);
  const f = rib.flush(v);
  return decodeAll(f?.messages ?? []).filter(
    (u) =>
      u.nlri.length + u.withdrawn.length + (u.attributes.mpReach?.nlri.length ?? 0) > 0 ||
      (u.attributes.mpUnreach?.withdrawn.length ?? 0) > 0,
  );
};
const announcedIn = (us: UpdateMessage[]) =>
  us.flatMap((u) => [...u.nlri, ...(u.attributes.mpReach?.nlri ?? [])].map(formatPrefix)).sort();
const withdrawnIn = (us: UpdateMessage[]) =>
  us.flatMap((u) => [...u.withdrawn, ...(u.attributes.mpUnreach?.withdrawn ?? [])].map(formatPrefix)).sort();

describe("diff", () => {
  test("only new, changed and removed prefixes move", () => {
    const before = routes([
      { prefix: "192.0.2.1/32" },
      { prefix: "192.0.2.2/32" },
      { prefix: "192.0.2.3/32", communities: ["1:1"] },
    ]);
    const after = routes([
      { prefix: "192.0.2.1/32" },
      { prefix: "192.0.2.3/32", communities: ["1:2"] },
      { prefix: "192.0.2.4/32" },
    ]);
    const rib = new AdjRibOut();
    rib.established();
    expect(announcedIn(flushTo(rib, before))).toEqual(["192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"]);
    const us = flushTo(rib, after);
    expect(announcedIn(us)).toEqual(["192.0.2.3/32", "192.0.2.4/32"]);
    expect(withdrawnIn(us)).toEqual(["192.0.2.2/32"]);
    expect(rib.flush(ebgp)).toBeNull();
    // An equal set parsed again (a new table over the same interned attribute sets) moves nothing.
    expect(
      flushTo(
        rib,
        routes([
          { prefix: "192.0.2.4/32" },
          { prefix: "192.0.2.1/32" },
          { prefix: "192.0.2.3/32", communities: ["1:2"] },
        ]),
      ),
    ).toEqual([]);
    expect(rib.size).toBe(3);
  });
  test("groups by attribute set: withdrawals first, then one UPDATE per group", () => {
    const rib = new AdjRibOut();
    rib.established();
    flushTo(rib, routes([{ prefix: "198.51.100.1/32" }]));
    const want = routes([
      { prefix: "192.0.2.1/32", communities: ["1:1"] },
      { prefix: "192.0.2.2/32", communities: ["1:1"] },
      { prefix: "192.0.2.3/32", communities: ["2:2"] },
      { prefix: "2001:db8::1/128", nextHop: "fd00::2" },
    ]);
    rib.setDesired(want);
    const f = rib.flush(ebgp)!;
    const us = decodeAll(f.messages);
    expect(
      us.map((u) => [u.withdrawn.length, u.nlri.length, u.attributes.mpReach?.nlri.length ?? 0]),
    ).toEqual([
      [1, 0, 0],
      [0, 2, 0],
      [0, 1, 0],
      [0, 0, 1],
    ]);
    expect(announcedIn(us)).toEqual(["192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32", "2001:db8::1/128"]);
    expect(withdrawnIn(us)).toEqual(["198.51.100.1/32"]);
    expect([f.announced, f.withdrawn, rib.size]).toEqual([4, 1, 4]);
  });
});

describe("packed RIB-out", () => {
  test("equal attributes are one interned set, whatever the order they were written in", () => {
    const a = [...routes([{ prefix: "192.0.2.1/32", communities: ["1:2", "1:1"], med: 5 }]).values()][0]!;
    const b = [
      ...routes([{ prefix: "192.0.2.9/32", med: 5, communities: ["1:1", "1:2", "1:1"] }]).values(),
    ][0]!;
    const c = [...routes([{ prefix: "192.0.2.9/32", med: 6, communities: ["1:1", "1:2"] }]).values()][0]!;
    expect(a.set).toBe(b.set);
    expect(a.set).not.toBe(c.set);
    expect(attrKey(a)).toBe(attrKey(b));
    expect(internAttrSet({ med: 5, communities: a.communities, largeCommunities: [] })).toBe(a.set);
  });
  test("100k routes with one attribute set: one shared set, 5 packed bytes per IPv4 prefix, sorted", () => {
    const specs = generateRoutes("10.0.0.0", 100_000).reverse();
    const t = routes(specs);
    expect([t.size, t.sets.length, t.v4.bytes.length, t.v4.set.length]).toEqual([
      100_000, 1, 500_000, 100_000,
    ]);
    const keys = [...t.values()].map((r) => r.key);
    expect([keys[0], keys[1], keys.at(-1)]).toEqual(["10.0.0.0/32", "10.0.0.1/32", "10.1.134.159/32"]);
    const bad = parseRoutes([...specs.slice(0, 10), { prefix: specs[3]!.prefix }]);
    expect(bad.ok ? [] : bad.errors).toEqual([
      `routes[10] (${specs[3]!.prefix}): prefix ${specs[3]!.prefix} given twice`,
    ]);
  }, 60_000);
  test("100k routes go out in full UPDATEs; withdraw one, add it back, change one: only that prefix moves", () => {
    const specs = generateRoutes("10.0.0.0", 100_000);
    const rib = new AdjRibOut();
    rib.established();
    const all = flushTo(rib, routes(specs));
    expect(announcedIn(all).length).toBe(100_000);
    expect(all.length).toBeLessThan(130); // ~810 /32s per 4096-byte UPDATE
    expect(rib.size).toBe(100_000);
    const without = specs.filter((_, i) => i !== 500);
    let us = flushTo(rib, routes(without));
    expect([announcedIn(us), withdrawnIn(us)]).toEqual([[], [specs[500]!.prefix]]);
    us = flushTo(rib, routes(specs));
    expect([announcedIn(us), withdrawnIn(us)]).toEqual([[specs[500]!.prefix], []]);
    const changed = specs.map((s, i) => (i === 7 ? { ...s, med: 9 } : s));
    us = flushTo(rib, routes(changed));
    expect([announcedIn(us), withdrawnIn(us), us[0]?.attributes.med]).toEqual([[specs[7]!.prefix], [], 9]);
    expect(rib.size).toBe(100_000);
  }, 60_000);
  test("ROUTE-REFRESH re-sends one family; a stale family is sent again or withdrawn", () => {
    const t = routes([{ prefix: "192.0.2.1/32" }, { prefix: "2001:db8::1/128" }]);
    const v: SessionView = { ...ebgp, otherFamilyNextHops: { 6: ["fd00::2"] } };
    const rib = new AdjRibOut();
    rib.established();
    expect(announcedIn(flushTo(rib, t, v))).toEqual(["192.0.2.1/32", "2001:db8::1/128"]);
    rib.forgetFamily(6);
    expect(rib.size).toBe(1);
    expect(announcedIn(flushTo(rib, t, v))).toEqual(["2001:db8::1/128"]);
    rib.markStale(6);
    const f = rib.flush({ ...v, otherFamilyNextHops: {} })!;
    expect([withdrawnIn(decodeAll(f.messages)), f.skipped.map((x) => x.key), rib.size]).toEqual([
      ["2001:db8::1/128"],
      ["2001:db8::1/128"],
      1,
    ]);
    rib.down();
    expect(rib.size).toBe(0);
  });
});

describe("peer config validation", () => {
  test("clear messages, one per problem", () => {
    expect(validatePeer({ name: "p", myASN: 64512, peerASN: 64500, peerAddress: "10.0.0.1" })).toEqual([]);
    const e = validatePeer({
      name: "p",
      myASN: 0,
      peerAddress: "x",
      holdTime: 2,
      keepaliveTime: 5,
      password: "k".repeat(81),
    });
    expect(e).toEqual([
      "p: myASN: 0 is not an ASN (1..4294967295)",
      "p: peerASN: one of peerASN or dynamicASN is required",
      'p: peerAddress: "x" is not an IP address',
      "p: holdTime: 2 must be 0 or 3..65535 seconds",
      "p: keepaliveTime: 5 must be less than holdTime 2",
      "p: password: longer than 80 bytes (TCP-MD5 limit)",
    ]);
    expect(
      validatePeer({
        name: "p",
        myASN: 1,
        peerASN: 2,
        peerAddress: "10.0.0.1",
        holdTime: 9,
        keepaliveTime: 9,
      }),
    ).toEqual(["p: keepaliveTime: 9 must be less than holdTime 9"]);
  });
});
