/**
 * The frame builders against frames the Linux kernel itself put on the wire, and properties of
 * the ICMPv6 checksum.
 *
 * Fixtures: captured with `tcpdump -i eth0 -w` on the client end of a veth pair between two
 * namespaces (Linux 6.18, 2026-11-26), client 02:00:00:00:00:01 192.0.2.1 / 2001:db8::1, node
 * 02:00:5e:00:00:aa 192.0.2.10 / 2001:db8::10, while the client pinged the node over IPv4 and
 * IPv6. The DAD probe is the node's own, for its link-local address, when the link came up.
 */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { type Ip, parseIp } from "../../src/util/ip.ts";
import {
  announcementFrames,
  arpReply,
  arpRequest,
  gratuitousArp,
  icmp6Checksum,
  multicastMac,
  NA_FLAG_O,
  NA_FLAG_S,
  ND_NS,
  ndFrame,
  neighborAdvertisement,
  neighborSolicitation,
  solicitedNode,
  unsolicitedNa,
} from "../../src/xdp/frames.ts";

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((b) => Number.parseInt(b, 16)));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const ip = (s: string): Ip => parseIp(s)!;
const CLIENT = hex("020000000001");
const NODE = hex("02005e0000aa");

const KERNEL = {
  arpRequest: "ffffffffffff02000000000108060001080006040001020000000001c0000201000000000000c000020a",
  arpReply: "02000000000102005e0000aa0806000108000604000202005e0000aac000020a020000000001c0000201",
  ns:
    "3333ff00001002000000000186dd6000000000203aff20010db8000000000000000000000001ff02000000000000" +
    "00000001ff00001087001c0b0000000020010db80000000000000000000000100101020000000001",
  na:
    "02000000000102005e0000aa86dd6000000000203aff20010db800000000000000000000001020010db800000000" +
    "000000000000000188002bad6000000020010db8000000000000000000000010020102005e0000aa",
  dadNs:
    "3333ff786d3302005e0000aa86dd6000000000203aff00000000000000000000000000000000ff02000000000000" +
    "00000001ff786d3387002dc100000000fe800000000000000cf3b3fffe786d330e016df99cec9b2c",
};

describe("frames match what the Linux kernel sends", () => {
  test("ARP request", () => {
    expect(toHex(arpRequest({ mac: CLIENT, ip: ip("192.0.2.1"), target: ip("192.0.2.10") }))).toBe(
      KERNEL.arpRequest,
    );
  });

  test("ARP reply", () => {
    const f = arpReply({ ownerMac: NODE, vip: ip("192.0.2.10"), peerMac: CLIENT, peerIp: ip("192.0.2.1") });
    expect(toHex(f)).toBe(KERNEL.arpReply);
  });

  test("Neighbor Solicitation with source link-layer option", () => {
    const f = neighborSolicitation({ mac: CLIENT, src: ip("2001:db8::1"), target: ip("2001:db8::10") });
    expect(toHex(f)).toBe(KERNEL.ns);
  });

  test("solicited Neighbor Advertisement (S and O, target link-layer option)", () => {
    const f = neighborAdvertisement({
      ownerMac: NODE,
      target: ip("2001:db8::10"),
      dstMac: CLIENT,
      dst: ip("2001:db8::1"),
      flags: NA_FLAG_S | NA_FLAG_O,
    });
    expect(toHex(f)).toBe(KERNEL.na);
  });

  test("DAD probe with a nonce option (RFC 7527)", () => {
    const target = ip("fe80::cf3:b3ff:fe78:6d33");
    const f = ndFrame({
      ethSrc: NODE,
      src: { family: 6, value: 0n },
      dst: solicitedNode(target),
      type: ND_NS,
      target,
      options: [{ type: 14, data: hex("6df99cec9b2c") }],
    });
    expect(toHex(f)).toBe(KERNEL.dadNs);
  });
});

describe("announcements", () => {
  test("IPv4: gratuitous ARP request and reply, broadcast, sender = target = VIP", () => {
    const [req, rep] = announcementFrames(NODE, ip("192.0.2.10"));
    expect(toHex(req!)).toBe(toHex(gratuitousArp(NODE, ip("192.0.2.10"), "request")));
    expect(toHex(rep!.subarray(0, 42))).toBe(
      "ffffffffffff02005e0000aa0806000108000604000202005e0000aac000020affffffffffffc000020a",
    );
    expect(req!.length).toBe(60);
  });

  test("IPv6: one unsolicited NA to all-nodes, Override set, Solicited clear", () => {
    const frames = announcementFrames(NODE, ip("2001:db8::10"));
    expect(frames).toHaveLength(1);
    const f = frames[0]!;
    expect(toHex(f.subarray(0, 6))).toBe("333300000001");
    expect(f[14 + 40 + 4]).toBe(NA_FLAG_O);
    expect(toHex(f)).toBe(toHex(unsolicitedNa(NODE, ip("2001:db8::10"))));
  });
});

describe("helpers", () => {
  test("solicited-node group and its MAC (RFC 4291 §2.7.1, RFC 2464 §7)", () => {
    expect(solicitedNode(ip("2001:db8::1:2345:6789")).value).toBe(ip("ff02::1:ff45:6789").value);
    expect(toHex(multicastMac(ip("ff02::1:ff45:6789")))).toBe("3333ff456789");
  });

  test("one 802.1Q tag sits between the MACs and the ethertype", () => {
    const f = arpRequest({ mac: CLIENT, ip: ip("192.0.2.1"), target: ip("192.0.2.10"), vlan: 42 });
    expect(toHex(f.subarray(12, 18))).toBe("8100002a0806");
    expect(toHex(f.subarray(18))).toBe(KERNEL.arpRequest.slice(28));
  });

  test("any ND frame's checksum verifies to zero; flipping any ICMPv6 bit breaks it", () => {
    const addr = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }).map((v): Ip => ({ family: 6, value: v }));
    fc.assert(
      fc.property(
        addr,
        addr,
        addr,
        fc.integer({ min: 0, max: 255 }),
        fc.nat(),
        (src, dst, target, flags, bit) => {
          const f = ndFrame({ ethSrc: CLIENT, ethDst: NODE, src, dst, type: 136, flags, target });
          const icmp = f.slice(54);
          expect(icmp6Checksum(src, dst, icmp)).toBe(0);
          const i = bit % (icmp.length * 8);
          icmp[i >> 3]! ^= 1 << (i & 7);
          expect(icmp6Checksum(src, dst, icmp)).not.toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});
