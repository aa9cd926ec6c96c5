/**
 * BGP codec: every message and attribute round-trips, the framer survives a split at every byte,
 * malformed input yields the NOTIFICATION code/subcode and the RFC 7606 action, and the packer
 * fills UPDATEs to 4096 bytes.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  type BgpMessage,
  decodeMessage,
  encodeMessage,
  endOfRib,
  Framer,
  formatCommunity,
  formatPrefix,
  MAX_MESSAGE_LEN,
  type OpenMessage,
  type PathAttributes,
  type Prefix,
  packReach,
  packWithdraw,
  parseCommunity,
  parseLargeCommunity,
  parsePrefix,
  type UpdateMessage,
  validateOpen,
} from "../../src/bgp/codec/index.ts";
import { formatIp, parseCidr } from "../../src/util/ip.ts";

const P = (s: string): Prefix => {
  const p = parsePrefix(s);
  if (!p) throw new Error(s);
  return p;
};

const fullOpen: OpenMessage = {
  type: "open",
  version: 4,
  myAs: 23456,
  holdTime: 90,
  bgpId: 0x0a000001,
  capabilities: [
    { kind: "multiprotocol", afi: 1, safi: 1 },
    { kind: "multiprotocol", afi: 2, safi: 1 },
    { kind: "route-refresh" },
    { kind: "extended-next-hop", entries: [{ afi: 1, safi: 1, nextHopAfi: 2 }] },
    { kind: "extended-message" },
    {
      kind: "graceful-restart",
      restarting: true,
      notification: false,
      time: 120,
      families: [
        { afi: 1, safi: 1, forwardingPreserved: true },
        { afi: 2, safi: 1, forwardingPreserved: false },
      ],
    },
    { kind: "as4", asn: 4200000001 },
    { kind: "unknown", code: 73, value: new Uint8Array([3, 102, 111, 111, 0]) },
  ],
};

const fullAttrs: PathAttributes = {
  origin: 2,
  asPath: [
    { type: 2, asns: [64512, 4200000001, 1] },
    { type: 1, asns: [7, 8] },
  ],
  nextHop: "10.0.0.2",
  med: 50,
  localPref: 200,
  atomicAggregate: true,
  aggregator: { asn: 4200000001, address: "10.0.0.9" },
  communities: [parseCommunity("65000:100")!, 0xffffff01],
  originatorId: "1.2.3.4",
  clusterList: ["5.6.7.8", "9.9.9.9"],
  mpReach: {
    afi: 2,
    safi: 1,
    nextHops: ["2001:db8::1", "fe80::1"],
    nlri: [P("2001:db8:1::/48"), P("2001:db8::5/128")],
  },
  mpUnreach: { afi: 2, safi: 1, withdrawn: [P("2001:db8:2::/64")] },
  as4Path: [{ type: 2, asns: [4200000001] }],
  as4Aggregator: { asn: 4200000001, address: "10.0.0.9" },
  largeCommunities: [
    [4200000001, 1, 2],
    [0, 0, 0xffffffff],
  ],
  unknown: [{ flags: 0xc0, type: 99, value: new Uint8Array([1, 2, 3]) }],
};

function roundTrip(m: BgpMessage, as4 = true): BgpMessage {
  const bytes = encodeMessage(m, { as4 });
  const r = decodeMessage(bytes, { as4 });
  if (!r.ok) throw r.error;
  return r.msg;
}

describe("round trips", () => {
  test("OPEN with every capability we know, plus an unknown one", () => {
    expect(roundTrip(fullOpen)).toEqual(fullOpen);
  });
  test("OPEN without capabilities", () => {
    const m: OpenMessage = { type: "open", version: 4, myAs: 65000, holdTime: 0, bgpId: 1, capabilities: [] };
    expect(roundTrip(m)).toEqual(m);
  });
  test("UPDATE with every attribute, 4-octet AS session", () => {
    const m: UpdateMessage = {
      type: "update",
      withdrawn: [P("10.1.0.0/16"), P("0.0.0.0/0")],
      attributes: fullAttrs,
      nlri: [P("192.0.2.0/24"), P("198.51.100.7/32")],
    };
    expect(roundTrip(m)).toEqual(m);
  });
  test("UPDATE on a 2-octet AS session (AS_PATH and AGGREGATOR in 2 octets, AS4_PATH carries the real path)", () => {
    const attrs: PathAttributes = {
      origin: 0,
      asPath: [{ type: 2, asns: [23456, 65001] }],
      as4Path: [{ type: 2, asns: [4200000001, 65001] }],
      nextHop: "10.0.0.2",
      aggregator: { asn: 23456, address: "10.0.0.1" },
    };
    const m: UpdateMessage = { type: "update", withdrawn: [], attributes: attrs, nlri: [P("192.0.2.0/24")] };
    const bytes = encodeMessage(m, { as4: false });
    expect(roundTrip(m, false)).toEqual(m);
    // The same bytes read as a 4-octet session are a malformed AS_PATH: treat-as-withdraw, not a crash.
    const r = decodeMessage(bytes, { as4: true });
    expect(r.ok && r.msg.type === "update" && r.msg.errors?.[0]?.action).toBe("treat-as-withdraw");
  });
  test("NOTIFICATION, KEEPALIVE, ROUTE-REFRESH", () => {
    const msgs: BgpMessage[] = [
      { type: "notification", code: 6, subcode: 2, data: new Uint8Array([5, 104, 101, 108, 108, 111]) },
      { type: "keepalive" },
      { type: "route-refresh", afi: 2, subtype: 0, safi: 1 },
    ];
    for (const m of msgs) expect(roundTrip(m)).toEqual(m);
    expect(encodeMessage({ type: "keepalive" }).length).toBe(19);
  });
  test("prefixes of every length round-trip and host bits are cleared", () => {
    for (let len = 0; len <= 32; len++) {
      const p = P(`255.255.255.255/${len}`);
      const m: UpdateMessage = { type: "update", withdrawn: [p], attributes: {}, nlri: [] };
      expect(roundTrip(m)).toEqual(m);
    }
    for (let len = 0; len <= 128; len += 7) {
      const p = P(`ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/${len}`);
      const m: UpdateMessage = {
        type: "update",
        withdrawn: [],
        attributes: { mpUnreach: { afi: 2, safi: 1, withdrawn: [p] } },
        nlri: [],
      };
      expect(roundTrip(m)).toEqual(m);
    }
    expect(formatPrefix(P("10.1.2.3/8"))).toBe("10.0.0.0/8");
  });
  test("communities parse and format", () => {
    expect(parseCommunity("65535:65535")).toBe(0xffffffff);
    expect(parseCommunity("no-export")).toBe(0xffffff01);
    expect(parseCommunity("65536:1")).toBeNull();
    expect(formatCommunity(parseCommunity("64512:100")!)).toBe("64512:100");
    expect(parseLargeCommunity("4294967295:0:1")).toEqual([4294967295, 0, 1]);
    expect(parseLargeCommunity("4294967296:0:1")).toBeNull();
  });
});

describe("framer", () => {
  const stream: BgpMessage[] = [
    fullOpen,
    { type: "keepalive" },
    { type: "update", withdrawn: [], attributes: fullAttrs, nlri: [P("192.0.2.0/24")] },
    { type: "route-refresh", afi: 1, subtype: 0, safi: 1 },
    { type: "notification", code: 4, subcode: 0, data: new Uint8Array(0) },
  ];
  const parts = stream.map((m) => encodeMessage(m));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }

  test("splitting the stream at every byte (in two) yields the same messages", () => {
    for (let cut = 0; cut <= all.length; cut++) {
      const f = new Framer();
      const a = f.push(all.subarray(0, cut));
      const b = f.push(all.subarray(cut));
      expect(a.error).toBeUndefined();
      expect(b.error).toBeUndefined();
      expect([...a.messages, ...b.messages]).toEqual(parts);
      expect(f.pending).toBe(0);
    }
  });
  test("one byte at a time", () => {
    const f = new Framer();
    const got: Uint8Array[] = [];
    for (let i = 0; i < all.length; i++) got.push(...f.push(all.subarray(i, i + 1)).messages);
    expect(got).toEqual(parts);
  });
  test("a bad marker is Message Header Error / Connection Not Synchronized, and the framer stays failed", () => {
    const bad = encodeMessage({ type: "keepalive" });
    bad[3] = 0;
    const f = new Framer();
    const r = f.push(bad);
    expect(r.error?.code).toBe(1);
    expect(r.error?.subcode).toBe(1);
    expect(f.push(encodeMessage({ type: "keepalive" })).messages).toEqual([]);
  });
  test("a bad length or type is reported as soon as the header is complete", () => {
    const long = encodeMessage({ type: "keepalive" });
    long[16] = 0x10;
    long[17] = 0x01; // 4097
    expect(new Framer().push(long.subarray(0, 19)).error?.subcode).toBe(2);
    const ka = encodeMessage({ type: "keepalive" });
    ka[17] = 20; // KEEPALIVE must be exactly 19
    expect(new Framer().push(ka).error?.subcode).toBe(2);
    const t = encodeMessage({ type: "keepalive" });
    t[18] = 9;
    const e = new Framer().push(t).error;
    expect([e?.code, e?.subcode, [...(e?.data ?? [])]]).toEqual([1, 3, [9]]);
  });
});

/** Builds an UPDATE with raw attribute bytes. */
function rawUpdate(attrs: number[], nlri: number[] = [], withdrawn: number[] = []): Uint8Array {
  const body = [
    withdrawn.length >> 8,
    withdrawn.length & 255,
    ...withdrawn,
    attrs.length >> 8,
    attrs.length & 255,
    ...attrs,
    ...nlri,
  ];
  const len = 19 + body.length;
  return new Uint8Array([...new Array(16).fill(0xff), len >> 8, len & 255, 2, ...body]);
}
const ORIGIN = [0x40, 1, 1, 0];
const ASPATH = [0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe8];
const NEXTHOP = [0x40, 3, 4, 10, 0, 0, 1];
const NLRI = [24, 192, 0, 2];

describe("RFC 7606 error handling", () => {
  const decode = (b: Uint8Array, ebgp = false) => {
    const r = decodeMessage(b, { as4: true, ebgp });
    return r;
  };
  const actionOf = (b: Uint8Array, ebgp = false) => {
    const r = decode(b, ebgp);
    if (!r.ok) return [r.error.action, r.error.code, r.error.subcode];
    const u = r.msg as UpdateMessage;
    return u.errors ? [u.errors[0]!.action, u.errors[0]!.code, u.errors[0]!.subcode] : ["ok"];
  };
  test("a well-formed UPDATE has no errors", () => {
    expect(actionOf(rawUpdate([...ORIGIN, ...ASPATH, ...NEXTHOP], NLRI))).toEqual(["ok"]);
  });
  test("ORIGIN value 3 → treat-as-withdraw, Invalid ORIGIN", () => {
    expect(actionOf(rawUpdate([0x40, 1, 1, 3, ...ASPATH, ...NEXTHOP], NLRI))).toEqual([
      "treat-as-withdraw",
      3,
      6,
    ]);
  });
  test("AS_PATH segment overrun → treat-as-withdraw, Malformed AS_PATH", () => {
    expect(actionOf(rawUpdate([...ORIGIN, 0x40, 2, 6, 2, 5, 0, 0, 0xfd, 0xe8, ...NEXTHOP], NLRI))).toEqual([
      "treat-as-withdraw",
      3,
      11,
    ]);
  });
  test("missing NEXT_HOP with IPv4 NLRI → treat-as-withdraw, Missing Well-known Attribute", () => {
    expect(actionOf(rawUpdate([...ORIGIN, ...ASPATH], NLRI))).toEqual(["treat-as-withdraw", 3, 3]);
  });
  test("ATOMIC_AGGREGATE with a length → attribute-discard", () => {
    expect(actionOf(rawUpdate([...ORIGIN, ...ASPATH, ...NEXTHOP, 0x40, 6, 1, 0], NLRI))[0]).toBe(
      "attribute-discard",
    );
  });
  test("bad LOCAL_PREF: discard from eBGP, treat-as-withdraw from iBGP", () => {
    const b = rawUpdate([...ORIGIN, ...ASPATH, ...NEXTHOP, 0x40, 5, 2, 0, 1], NLRI);
    expect(actionOf(b, true)[0]).toBe("attribute-discard");
    expect(actionOf(b, false)[0]).toBe("treat-as-withdraw");
  });
  test("COMMUNITIES not a multiple of 4 → treat-as-withdraw", () => {
    expect(actionOf(rawUpdate([...ORIGIN, ...ASPATH, ...NEXTHOP, 0xc0, 8, 3, 1, 2, 3], NLRI))[0]).toBe(
      "treat-as-withdraw",
    );
  });
  test("wrong flags on a well-known attribute → its own action (ORIGIN marked optional)", () => {
    expect(actionOf(rawUpdate([0xc0, 1, 1, 0, ...ASPATH, ...NEXTHOP], NLRI))).toEqual([
      "treat-as-withdraw",
      3,
      4,
    ]);
  });
  test("repeated ORIGIN → discard the repeat; repeated MP_REACH_NLRI → session reset", () => {
    expect(actionOf(rawUpdate([...ORIGIN, ...ORIGIN, ...ASPATH, ...NEXTHOP], NLRI))[0]).toBe(
      "attribute-discard",
    );
    const mp = [0x80, 14, 21, 0, 2, 1, 16, 0x20, 1, 0x0d, 0xb8, ...new Array(12).fill(0), 0];
    expect(actionOf(rawUpdate([...ORIGIN, ...ASPATH, ...mp, ...mp]))).toEqual(["session-reset", 3, 1]);
  });
  // Issue 17, "BGP behaviour found with GoBGP and ExaBGP as peers": a malformed MP_REACH_NLRI got
  // 3/1 or 3/5. RFC 4760 §7: UPDATE Message Error / Optional Attribute Error (3/9), and RFC 4271
  // §6.3: the data is the attribute (type, length, value). RFC 7606 §7.11: a next hop length that
  // does not fit the AFI cannot be treat-as-withdraw (the NLRI cannot be located).
  test("MP_REACH_NLRI with an IPv6 next hop of length 5 → session reset, 3/9, the attribute as data (RFC 4760 §7, RFC 7606 §7.11)", () => {
    const mp = [0x80, 14, 10, 0, 2, 1, 5, 0x20, 1, 0x0d, 0xb8, 0, 0];
    const r = decode(rawUpdate([...ORIGIN, ...ASPATH, ...mp]));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect([r.error.action, r.error.code, r.error.subcode]).toEqual(["session-reset", 3, 9]);
    expect([...r.error.data]).toEqual(mp);
  });
  test("MP_REACH_NLRI whose NLRI has prefix length 129 → session reset, 3/9 (RFC 7606 §5.3)", () => {
    const mp = [0x80, 14, 23, 0, 2, 1, 16, 0x20, 1, 0x0d, 0xb8, ...new Array(12).fill(0), 0, 129, 1, 2];
    expect(actionOf(rawUpdate([...ORIGIN, ...ASPATH, ...mp]))).toEqual(["session-reset", 3, 9]);
  });
  test("MP_UNREACH_NLRI cut inside its AFI → session reset, 3/9", () => {
    expect(actionOf(rawUpdate([...ORIGIN, ...ASPATH, 0x80, 15, 1, 0]))).toEqual(["session-reset", 3, 9]);
  });
  test("attribute length overrunning the list → treat-as-withdraw", () => {
    expect(actionOf(rawUpdate([...ORIGIN, ...ASPATH, 0x40, 3, 9, 10, 0, 0, 1], NLRI))[0]).toBe(
      "treat-as-withdraw",
    );
  });
  test("unrecognised well-known attribute → session reset (3/2)", () => {
    expect(actionOf(rawUpdate([...ORIGIN, ...ASPATH, ...NEXTHOP, 0x40, 77, 0], NLRI))).toEqual([
      "session-reset",
      3,
      2,
    ]);
  });
  test("unknown optional attribute is kept", () => {
    const r = decode(rawUpdate([...ORIGIN, ...ASPATH, ...NEXTHOP, 0xc0, 77, 1, 9], NLRI));
    expect(r.ok && (r.msg as UpdateMessage).attributes.unknown).toEqual([
      { flags: 0xc0, type: 77, value: new Uint8Array([9]) },
    ]);
  });
  test("NLRI prefix length 33 → session reset, Invalid Network Field", () => {
    expect(actionOf(rawUpdate([...ORIGIN, ...ASPATH, ...NEXTHOP], [33, 1, 2, 3, 4, 5]))).toEqual([
      "session-reset",
      3,
      10,
    ]);
  });
  test("withdrawn length overrunning the message → session reset", () => {
    const b = rawUpdate([], [], [24, 1, 2, 3]);
    b[20] = 200;
    expect(actionOf(b)[0]).toBe("session-reset");
  });
  test("OPEN version 3 → Unsupported Version Number with our version as data", () => {
    const b = encodeMessage(fullOpen);
    b[19] = 3;
    const r = decodeMessage(b);
    expect(!r.ok && [r.error.code, r.error.subcode, [...r.error.data]]).toEqual([2, 1, [0, 4]]);
  });
  test("OPEN with an optional parameter other than capabilities → 2/4", () => {
    const b = new Uint8Array([
      ...new Array(16).fill(0xff),
      0,
      32,
      1,
      4,
      0xfd,
      0xe8,
      0,
      90,
      10,
      0,
      0,
      1,
      3,
      1,
      1,
      0,
    ]);
    const r = decodeMessage(b);
    expect(!r.ok && [r.error.code, r.error.subcode]).toEqual([2, 4]);
  });
});

describe("OPEN validation (RFC 4271 §6.2)", () => {
  const base: OpenMessage = {
    type: "open",
    version: 4,
    myAs: 64500,
    holdTime: 90,
    bgpId: 0x0a000001,
    capabilities: [{ kind: "as4", asn: 64500 }],
  };
  const exp = { peerAsn: 64500, localAsn: 64512, localBgpId: 0x0a000002 };
  const check = (
    m: Partial<OpenMessage>,
    e: Partial<typeof exp> & { dynamic?: "internal" | "external" } = {},
  ) => {
    const r = validateOpen({ ...base, ...m }, { ...exp, ...e });
    return r.ok ? "ok" : `${r.error.code}/${r.error.subcode}`;
  };
  test("accepts a good OPEN, and hold time 0 or 3", () => {
    expect(check({})).toBe("ok");
    expect(check({ holdTime: 0 })).toBe("ok");
    expect(check({ holdTime: 3 })).toBe("ok");
  });
  test("hold time 1 or 2 → Unacceptable Hold Time", () => {
    expect(check({ holdTime: 1 })).toBe("2/6");
    expect(check({ holdTime: 2 })).toBe("2/6");
  });
  test("wrong peer AS → Bad Peer AS; 4-octet ASN via AS_TRANS is accepted", () => {
    expect(check({}, { peerAsn: 64501 })).toBe("2/2");
    expect(
      check({ myAs: 23456, capabilities: [{ kind: "as4", asn: 4200000001 }] }, { peerAsn: 4200000001 }),
    ).toBe("ok");
    expect(
      check({ myAs: 64501, capabilities: [{ kind: "as4", asn: 4200000001 }] }, { peerAsn: 4200000001 }),
    ).toBe("2/2");
  });
  test("dynamic ASN: internal must equal ours, external must differ", () => {
    expect(check({}, { peerAsn: undefined, dynamic: "external" })).toBe("ok");
    expect(check({}, { peerAsn: undefined, dynamic: "internal" })).toBe("2/2");
  });
  test("BGP identifier 0, or ours on iBGP → Bad BGP Identifier", () => {
    expect(check({ bgpId: 0 })).toBe("2/3");
    expect(check({ myAs: 64512, capabilities: [], bgpId: 0x0a000002 }, { peerAsn: 64512 })).toBe("2/3");
  });
});

describe("packing", () => {
  const hosts = (n: number, fam: 4 | 6 = 4) =>
    Array.from({ length: n }, (_, i) =>
      fam === 4
        ? P(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`)
        : P(`2001:db8::${i.toString(16)}/128`),
    );
  const decodeAll = (msgs: Uint8Array[]) =>
    msgs.map((b) => {
      const r = decodeMessage(b);
      if (!r.ok) throw r.error;
      return r.msg as UpdateMessage;
    });

  test("100,000 IPv4 /32s fill 4096-byte UPDATEs (~810 each) and decode back to the same prefixes", () => {
    const ps = hosts(100_000);
    const msgs = packReach(
      {
        attributes: { origin: 0, asPath: [{ type: 2, asns: [64512] }], communities: [1] },
        family: 4,
        nextHops: ["10.0.0.2"],
        prefixes: ps,
      },
      { as4: true },
    );
    for (const m of msgs) expect(m.length).toBeLessThanOrEqual(MAX_MESSAGE_LEN);
    // Every UPDATE but the last is full: not even one more 5-byte /32 would fit.
    for (const m of msgs.slice(0, -1)) expect(m.length).toBeGreaterThan(MAX_MESSAGE_LEN - 5);
    expect(msgs.length).toBe(124);
    const got = decodeAll(msgs).flatMap((u) => {
      expect(u.errors).toBeUndefined();
      expect(u.attributes.nextHop).toBe("10.0.0.2");
      return u.nlri;
    });
    expect(got).toEqual(ps);
  }, 30_000);
  test("IPv6 goes in MP_REACH_NLRI with global + link-local next hops", () => {
    const ps = hosts(2000, 6);
    const msgs = packReach(
      {
        attributes: { origin: 0, asPath: [], localPref: 100 },
        family: 6,
        nextHops: ["2001:db8::2", "fe80::2"],
        prefixes: ps,
      },
      { as4: true },
    );
    for (const m of msgs) expect(m.length).toBeLessThanOrEqual(MAX_MESSAGE_LEN);
    const us = decodeAll(msgs);
    expect(us.flatMap((u) => u.attributes.mpReach?.nlri ?? [])).toEqual(ps);
    expect(us[0]!.attributes.mpReach?.nextHops).toEqual(["2001:db8::2", "fe80::2"]);
    expect(us[0]!.attributes.localPref).toBe(100);
  });
  test("IPv4 with an IPv6 next hop (RFC 8950) uses MP_REACH_NLRI for AFI 1", () => {
    const us = decodeAll(
      packReach(
        { attributes: { origin: 0, asPath: [] }, family: 4, nextHops: ["2001:db8::2"], prefixes: hosts(3) },
        { as4: true },
      ),
    );
    expect(us[0]!.attributes.mpReach?.afi).toBe(1);
    expect(us[0]!.attributes.mpReach?.nlri).toEqual(hosts(3));
    expect(us[0]!.nlri).toEqual([]);
  });
  test("withdrawals pack too, IPv4 in Withdrawn Routes and IPv6 in MP_UNREACH_NLRI", () => {
    const w4 = packWithdraw(4, hosts(5000));
    for (const m of w4) expect(m.length).toBeLessThanOrEqual(MAX_MESSAGE_LEN);
    expect(decodeAll(w4).flatMap((u) => u.withdrawn)).toEqual(hosts(5000));
    const w6 = packWithdraw(6, hosts(500, 6));
    expect(decodeAll(w6).flatMap((u) => u.attributes.mpUnreach?.withdrawn ?? [])).toEqual(hosts(500, 6));
  });
  test("End-of-RIB markers (RFC 4724 §2)", () => {
    const [e4, e6] = decodeAll([endOfRib(4), endOfRib(6)]);
    expect(e4).toEqual({ type: "update", withdrawn: [], attributes: {}, nlri: [] });
    expect(e6).toEqual({
      type: "update",
      withdrawn: [],
      attributes: { mpUnreach: { afi: 2, safi: 1, withdrawn: [] } },
      nlri: [],
    });
  });
});

describe("parsePrefix (fast IPv4 path agrees with src/util/ip.ts)", () => {
  const slow = (s: string) => {
    const c = s.includes("/") ? parseCidr(s) : parseCidr(`${s}/32`);
    return c.ok && c.value.family === 4
      ? `${formatIp({ family: 4, value: c.value.first })}/${c.value.prefixLen}`
      : null;
  };
  test("valid prefixes", () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), fc.boolean(), (ip, len, bare) => {
        const s = bare ? ip : `${ip}/${len}`;
        const p = parsePrefix(s);
        expect(p ? formatPrefix(p) : null).toBe(slow(s));
      }),
      { numRuns: 2000, seed: 3 },
    );
  });
  test("invalid forms are rejected like the slow path rejects them", () => {
    for (const s of [
      "01.2.3.4",
      "1.2.3",
      "1.2.3.4/33",
      "1.2.3.4/",
      "1.2.3.4.5",
      "1.2.3.256",
      "1..2.3",
      " 1.2.3.4",
      "a.b.c.d",
      "",
    ]) {
      expect(parsePrefix(s)).toBeNull();
      expect(slow(s)).toBeNull();
    }
  });
});
