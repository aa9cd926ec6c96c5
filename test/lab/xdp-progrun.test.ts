/**
 * The XDP responder run through BPF_PROG_RUN (nothing attached), on a table of crafted frames
 * declared as data: each request sits beside the exact reply expected (byte for byte, checksums
 * included) or the named reason it must be passed to the kernel untouched.
 *
 * Needs root (loads a BPF program); uses a private bpffs, removed afterwards. BPF_PROG_RUN
 * rejects frames shorter than an Ethernet header, so truncation starts at 14 bytes.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Ip, parseIp } from "../../src/util/ip.ts";
import {
  arpFrame,
  arpReply,
  arpRequest,
  BROADCAST_MAC,
  ETH_P_8021Q,
  ethHeader,
  gratuitousArp,
  icmp6Checksum,
  llaOption,
  multicastMac,
  NA_FLAG_O,
  NA_FLAG_S,
  ND_NA,
  ND_NS,
  ndFrame,
  neighborAdvertisement,
  neighborSolicitation,
  solicitedNode,
  ZERO_MAC,
} from "../../src/xdp/frames.ts";
import { COUNTERS, type CounterName, type PassReason } from "../../src/xdp/layout.ts";
import { BpfError, monotonicNs } from "../../src/xdp/libbpf.ts";
import { loadPinned } from "../../src/xdp/loader.ts";
import { XdpMaps } from "../../src/xdp/maps.ts";
import { buildXdp, objectPath, type TempPins, tempPins } from "../support/xdp-testkit.ts";

const ip = (s: string): Ip => parseIp(s)!;
const mac = (s: string) => Uint8Array.from(s.split(":").map((x) => Number.parseInt(x, 16)));

// The world of the table: the program runs with ingress ifindex 1 (loopback, which always exists
// in the test's namespace); some VIPs are owned on a different interface (7777).
const HERE = 1;
const ELSEWHERE = 7777;
const OWNER = mac("02:00:5e:00:00:aa");
const OTHER_OWNER = mac("02:00:5e:00:00:bb");
const CLIENT = mac("02:00:00:00:00:01");
const CLIENT2 = mac("02:00:00:00:00:02");
const VIP4 = ip("192.0.2.10");
const VIP4_ELSEWHERE = ip("192.0.2.20");
const VIP4_UNOWNED = ip("192.0.2.99");
const CLIENT4 = ip("192.0.2.1");
const VIP6 = ip("2001:db8::10");
const VIP6_ELSEWHERE = ip("2001:db8::20");
const VIP6_UNOWNED = ip("2001:db8::99");
const CLIENT6 = ip("fe80::1");
const ANY6: Ip = { family: 6, value: 0n };
const ALL_NODES = ip("ff02::1");

type Expect = { tx: Uint8Array } | { pass: PassReason };
interface Case {
  name: string;
  frame: Uint8Array;
  expect: Expect;
}

const req4 = (target: Ip, extra: { vlan?: number; padTo?: number } = {}) =>
  arpRequest({ mac: CLIENT, ip: CLIENT4, target, ...extra });
const reply4 = (extra: { vlan?: number; padTo?: number } = {}) =>
  arpReply({ ownerMac: OWNER, vip: VIP4, peerMac: CLIENT, peerIp: CLIENT4, ...extra });
const arpWith = (over: Partial<Parameters<typeof arpFrame>[0]>) =>
  arpFrame({
    ethDst: BROADCAST_MAC,
    ethSrc: CLIENT,
    op: 1,
    sha: CLIENT,
    spa: CLIENT4,
    tha: ZERO_MAC,
    tpa: VIP4,
    ...over,
  });
const ns = (over: Partial<Parameters<typeof neighborSolicitation>[0]> = {}) =>
  neighborSolicitation({ mac: CLIENT, src: CLIENT6, target: VIP6, ...over });
const na = (over: Partial<Parameters<typeof neighborAdvertisement>[0]> = {}) =>
  neighborAdvertisement({
    ownerMac: OWNER,
    target: VIP6,
    dstMac: CLIENT,
    dst: CLIENT6,
    flags: NA_FLAG_S | NA_FLAG_O,
    ...over,
  });
const cut = (frame: Uint8Array, len: number) => frame.slice(0, len);
const withByte = (frame: Uint8Array, at: number, value: number) => {
  const f = frame.slice();
  f[at] = value;
  return f;
};
const nonce = { type: 14, data: Uint8Array.of(1, 2, 3, 4, 5, 6) };

const CASES: Case[] = [
  // ARP (RFC 826): requests for an owned VIP on this interface are answered.
  { name: "ARP request for owned VIP", frame: req4(VIP4), expect: { tx: reply4() } },
  {
    name: "ARP request padded to 60 bytes",
    frame: req4(VIP4, { padTo: 60 }),
    expect: { tx: reply4({ padTo: 60 }) },
  },
  {
    name: "ARP request with one 802.1Q tag",
    frame: req4(VIP4, { vlan: 42 }),
    expect: { tx: reply4({ vlan: 42 }) },
  },
  {
    name: "unicast ARP request (cache refresh)",
    frame: arpWith({ ethDst: OWNER }),
    expect: { tx: reply4() },
  },
  {
    name: "ARP probe from 0.0.0.0 (RFC 5227) is defended",
    frame: arpWith({ spa: ip("0.0.0.0") }),
    expect: { tx: arpReply({ ownerMac: OWNER, vip: VIP4, peerMac: CLIENT, peerIp: ip("0.0.0.0") }) },
  },
  { name: "ARP request for a VIP not owned", frame: req4(VIP4_UNOWNED), expect: { pass: "not_owned" } },
  {
    name: "ARP request for a VIP owned on another interface",
    frame: req4(VIP4_ELSEWHERE),
    expect: { pass: "not_owned" },
  },
  {
    name: "gratuitous ARP request",
    frame: gratuitousArp(CLIENT, VIP4, "request"),
    expect: { pass: "arp_gratuitous" },
  },
  {
    name: "gratuitous ARP reply",
    frame: gratuitousArp(CLIENT, VIP4, "reply"),
    expect: { pass: "arp_not_request" },
  },
  { name: "ARP reply", frame: arpWith({ op: 2, tha: OWNER }), expect: { pass: "arp_not_request" } },
  { name: "RARP request (op 3)", frame: arpWith({ op: 3 }), expect: { pass: "arp_not_request" } },
  {
    name: "ARP with hardware type 6 (IEEE 802)",
    frame: arpWith({ htype: 6 }),
    expect: { pass: "arp_bad_hw" },
  },
  { name: "ARP with hardware length 8", frame: arpWith({ hlen: 8 }), expect: { pass: "arp_bad_hw" } },
  { name: "ARP for protocol IPv6", frame: arpWith({ ptype: 0x86dd }), expect: { pass: "arp_bad_proto" } },
  { name: "ARP with protocol length 16", frame: arpWith({ plen: 16 }), expect: { pass: "arp_bad_proto" } },
  // Truncated at every header boundary (and inside them).
  { name: "Ethernet header only (ARP type)", frame: cut(req4(VIP4), 14), expect: { pass: "truncated" } },
  { name: "ARP cut inside its fixed part", frame: cut(req4(VIP4), 22), expect: { pass: "truncated" } },
  { name: "ARP missing its last byte", frame: cut(req4(VIP4), 41), expect: { pass: "truncated" } },
  { name: "802.1Q tag cut short", frame: cut(req4(VIP4, { vlan: 42 }), 16), expect: { pass: "truncated" } },
  {
    name: "tagged ARP missing its last byte",
    frame: cut(req4(VIP4, { vlan: 42 }), 45),
    expect: { pass: "truncated" },
  },
  { name: "IPv6 header cut short", frame: cut(ns(), 14 + 39), expect: { pass: "truncated" } },
  { name: "ICMPv6 header cut short", frame: cut(ns(), 14 + 40 + 3), expect: { pass: "truncated" } },
  {
    name: "NS shorter than its payload length",
    frame: cut(ns(), 14 + 40 + 24),
    expect: { pass: "truncated" },
  },
  { name: "NS cut inside the target", frame: cut(ns(), 14 + 40 + 12), expect: { pass: "truncated" } },
  // Neighbor Solicitation (RFC 4861 §7.1.1 validation, §7.2.4 answer).
  { name: "NS with source link-layer option", frame: ns(), expect: { tx: na() } },
  {
    name: "NS answered to the link-layer option's address, not the frame's source",
    frame: ns({ options: [llaOption(1, CLIENT2)] }),
    expect: { tx: na({ dstMac: CLIENT2 }) },
  },
  {
    name: "unicast NS without source link-layer option (NUD): frame grows",
    frame: ns({ dst: VIP6, ethDst: OWNER, sll: false }),
    expect: { tx: na() },
  },
  {
    name: "NS with link-layer and nonce options: frame shrinks",
    frame: ns({ options: [llaOption(1, CLIENT), nonce] }),
    expect: { tx: na() },
  },
  {
    name: "NS with one 802.1Q tag",
    frame: ns({ vlan: 7 }),
    expect: { tx: na({ vlan: 7 }) },
  },
  {
    name: "DAD NS from :: is defended to all-nodes, Solicited clear",
    frame: ns({ src: ANY6 }),
    expect: { tx: na({ dstMac: multicastMac(ALL_NODES), dst: ALL_NODES, flags: NA_FLAG_O }) },
  },
  {
    name: "DAD NS with a nonce option",
    frame: ns({ src: ANY6, options: [nonce] }),
    expect: { tx: na({ dstMac: multicastMac(ALL_NODES), dst: ALL_NODES, flags: NA_FLAG_O }) },
  },
  { name: "NS with hop limit 254", frame: ns({ hopLimit: 254 }), expect: { pass: "ns_bad_hoplimit" } },
  { name: "NS with hop limit 1", frame: ns({ hopLimit: 1 }), expect: { pass: "ns_bad_hoplimit" } },
  {
    name: "NS with a wrong checksum",
    frame: withByte(ns(), 14 + 40 + 3, ns()[14 + 40 + 3]! ^ 0x01),
    expect: { pass: "ns_bad_checksum" },
  },
  {
    name: "NS with ICMP code 1",
    frame: ndFrame({
      ethSrc: CLIENT,
      src: CLIENT6,
      dst: solicitedNode(VIP6),
      type: ND_NS,
      code: 1,
      target: VIP6,
    }),
    expect: { pass: "ns_bad_code" },
  },
  {
    name: "NS for a multicast target",
    frame: ns({ target: ip("ff02::1:ff00:10"), dst: ip("ff02::1:ff00:10") }),
    expect: { pass: "ns_bad_target" },
  },
  {
    name: "NS with a zero-length option",
    frame: ns({ options: [{ type: 1, len: 0, data: CLIENT }] }),
    expect: { pass: "ns_bad_option" },
  },
  {
    name: "NS with an option running past the end",
    frame: ns({ options: [{ type: 1, len: 2, data: CLIENT }] }),
    expect: { pass: "ns_bad_option" },
  },
  {
    name: "NS whose length is not a multiple of 8",
    frame: ndFrame({
      ethSrc: CLIENT,
      src: CLIENT6,
      dst: solicitedNode(VIP6),
      type: ND_NS,
      target: VIP6,
      options: [llaOption(1, CLIENT)],
      payloadLength: 28,
    }),
    expect: { pass: "ns_bad_length" },
  },
  {
    name: "DAD NS carrying a source link-layer option",
    frame: ns({ src: ANY6, sll: true }),
    expect: { pass: "ns_bad_dad" },
  },
  {
    name: "DAD NS sent to the target itself",
    frame: ns({ src: ANY6, dst: VIP6, ethDst: OWNER }),
    expect: { pass: "ns_bad_dad" },
  },
  {
    name: "NS sent to all-nodes",
    frame: ns({ dst: ALL_NODES }),
    expect: { pass: "ns_bad_dest" },
  },
  {
    name: "NS from a multicast source",
    frame: ns({ src: ip("ff02::1") }),
    expect: { pass: "ns_bad_source" },
  },
  { name: "NS for a VIP not owned", frame: ns({ target: VIP6_UNOWNED }), expect: { pass: "not_owned" } },
  {
    name: "NS for a VIP owned on another interface",
    frame: ns({ target: VIP6_ELSEWHERE }),
    expect: { pass: "not_owned" },
  },
  // Not ours at all.
  {
    name: "Neighbor Advertisement",
    frame: ndFrame({
      ethSrc: CLIENT,
      src: CLIENT6,
      dst: ALL_NODES,
      type: ND_NA,
      flags: NA_FLAG_O,
      target: CLIENT6,
    }),
    expect: { pass: "not_arp_or_nd" },
  },
  {
    name: "ICMPv6 echo request",
    frame: ndFrame({ ethDst: OWNER, ethSrc: CLIENT, src: CLIENT6, dst: VIP6, type: 128, target: VIP6 }),
    expect: { pass: "not_arp_or_nd" },
  },
  {
    name: "IPv6 UDP",
    frame: ndFrame({
      ethDst: OWNER,
      ethSrc: CLIENT,
      src: CLIENT6,
      dst: VIP6,
      type: ND_NS,
      target: VIP6,
      nextHeader: 17,
    }),
    expect: { pass: "not_arp_or_nd" },
  },
  {
    name: "IPv4 packet",
    frame: new Uint8Array([...ethHeader(OWNER, CLIENT, 0x0800), ...new Uint8Array(46)]),
    expect: { pass: "not_arp_or_nd" },
  },
  {
    name: "two 802.1Q tags (QinQ)",
    frame: new Uint8Array([
      ...ethHeader(BROADCAST_MAC, CLIENT, ETH_P_8021Q, 5),
      ...req4(VIP4, { vlan: 6 }).slice(12),
    ]),
    expect: { pass: "vlan_stacked" },
  },
  {
    name: "802.1ad S-tag",
    frame: (() => {
      const f = req4(VIP4, { vlan: 6 });
      f[12] = 0x88;
      f[13] = 0xa8;
      return f;
    })(),
    expect: { pass: "vlan_stacked" },
  },
];

let pins: TempPins;
let maps: XdpMaps;

beforeAll(async () => {
  await buildXdp();
  pins = await tempPins("progrun");
  await loadPinned(objectPath("arp_responder"), pins.pinDir);
  maps = XdpMaps.open(pins.pinDir);
  maps.setVip(HERE, VIP4, OWNER);
  maps.setVip(ELSEWHERE, VIP4_ELSEWHERE, OTHER_OWNER);
  maps.setVip(HERE, VIP6, OWNER);
  maps.setVip(ELSEWHERE, VIP6_ELSEWHERE, OTHER_OWNER);
  maps.setLiveness(monotonicNs(), 60_000_000_000n);
});

afterAll(async () => {
  maps?.close();
  await pins?.cleanup();
});

function delta(before: Record<CounterName, bigint>, after: Record<CounterName, bigint>) {
  const d: Partial<Record<CounterName, bigint>> = {};
  for (const k of COUNTERS) if (after[k] !== before[k]) d[k] = after[k] - before[k];
  return d;
}

const XDP_PASS = 2;
const XDP_TX = 3;

describe("BPF_PROG_RUN table", () => {
  test("has at least 25 cases with unique names", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(25);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
  });

  for (const c of CASES) {
    test(c.name, () => {
      const before = maps.counters();
      const r = maps.testRun(c.frame, { ingressIfindex: HERE });
      const d = delta(before, maps.counters());
      if ("tx" in c.expect) {
        expect(r.retval).toBe(XDP_TX);
        expect([...r.data]).toEqual([...c.expect.tx]);
        expect(d.arp_replies ?? d.na_replies).toBe(1n);
      } else {
        expect(r.retval).toBe(XDP_PASS);
        expect([...r.data]).toEqual([...c.frame]); // untouched
        expect(d[`pass_${c.expect.pass}`]).toBe(1n);
      }
      expect(d.seen).toBe(1n);
    });
  }

  test("every NA the program sends carries a valid ICMPv6 checksum", () => {
    const bytesToIp = (b: Uint8Array): Ip => ({
      family: 6,
      value: b.reduce((v, x) => (v << 8n) | BigInt(x), 0n),
    });
    let checked = 0;
    for (const c of CASES) {
      if (!("tx" in c.expect)) continue;
      const r = maps.testRun(c.frame, { ingressIfindex: HERE });
      const l2 = r.data[12] === 0x81 ? 18 : 14;
      if (r.data[l2 - 2] !== 0x86 || r.data[l2 - 1] !== 0xdd) continue;
      const src = bytesToIp(r.data.slice(l2 + 8, l2 + 24));
      const dst = bytesToIp(r.data.slice(l2 + 24, l2 + 40));
      expect(icmp6Checksum(src, dst, r.data.slice(l2 + 40))).toBe(0); // a correct checksum sums to zero
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(5);
  });
});

describe("liveness gate", () => {
  test("a stale heartbeat stops answers, a fresh one restores them", () => {
    maps.setLiveness(monotonicNs() - 5_000_000_000n, 1_000_000_000n);
    const before = maps.counters();
    expect(maps.testRun(req4(VIP4), { ingressIfindex: HERE }).retval).toBe(XDP_PASS);
    expect(maps.testRun(ns(), { ingressIfindex: HERE }).retval).toBe(XDP_PASS);
    expect(delta(before, maps.counters()).pass_stale).toBe(2n);
    maps.setLiveness(monotonicNs(), 1_000_000_000n);
    expect(maps.testRun(req4(VIP4), { ingressIfindex: HERE }).retval).toBe(XDP_TX);
    maps.setLiveness(0n, 0n); // window 0: no gate
    expect(maps.testRun(req4(VIP4), { ingressIfindex: HERE }).retval).toBe(XDP_TX);
    maps.setLiveness(monotonicNs(), 60_000_000_000n);
  });

  test("removing a VIP stops answers at once", () => {
    const extra = ip("192.0.2.77");
    maps.setVip(HERE, extra, OWNER);
    expect(maps.testRun(req4(extra), { ingressIfindex: HERE }).retval).toBe(XDP_TX);
    expect(maps.deleteVip(HERE, extra)).toBe(true);
    expect(maps.testRun(req4(extra), { ingressIfindex: HERE }).retval).toBe(XDP_PASS);
    expect(maps.deleteVip(HERE, extra)).toBe(false);
  });
});

describe("errors", () => {
  test("a failed libbpf call is a BpfError carrying the operation and errno", () => {
    const missing = `${pins.pinDir}-missing`;
    let err: unknown;
    try {
      XdpMaps.open(missing);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BpfError);
    expect(err).toMatchObject({ op: `bpf_obj_get ${missing}/prog`, errno: 2, code: "ENOENT" });
    expect(String(err)).toContain("failed: ENOENT");
  });
});
