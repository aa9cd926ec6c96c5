/**
 * Fuzzing the XDP responder through BPF_PROG_RUN: valid requests mutated (bytes changed, bits
 * flipped, cut short, grown) and random frames. Whatever comes in, the program either passes
 * the frame untouched or answers with a well-formed reply for an owned VIP; every frame is
 * counted exactly once as a reply or under one pass reason. Needs root (loads the program).
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import fc from "fast-check";
import { type Ip, ipFromBytes, parseIp } from "../../src/util/ip.ts";
import { arpRequest, icmp6Checksum, neighborSolicitation } from "../../src/xdp/frames.ts";
import { COUNTERS, type CounterName, formatMac, parseMac } from "../../src/xdp/layout.ts";
import { monotonicNs } from "../../src/xdp/libbpf.ts";
import { loadPinned } from "../../src/xdp/loader.ts";
import { XdpMaps } from "../../src/xdp/maps.ts";
import { buildXdp, objectPath, type TempPins, tempPins } from "../support/xdp-testkit.ts";

const OWNER = parseMac("02:00:5e:00:00:aa")!;
const CLIENT = parseMac("02:00:00:00:00:01")!;
const VIP4 = parseIp("192.0.2.10")!;
const VIP6 = parseIp("2001:db8::10")!;
const OWNED = new Set([`4/${VIP4.value}`, `6/${VIP6.value}`]);

let pins: TempPins;
let maps: XdpMaps;

beforeAll(async () => {
  await buildXdp();
  pins = await tempPins("fuzz");
  await loadPinned(objectPath("arp_responder"), pins.pinDir);
  maps = XdpMaps.open(pins.pinDir);
  maps.setVip(1, VIP4, OWNER);
  maps.setVip(1, VIP6, OWNER);
  maps.setLiveness(monotonicNs(), 0n);
});

afterAll(async () => {
  maps?.close();
  await pins?.cleanup();
});

const seeds = [
  arpRequest({ mac: CLIENT, ip: parseIp("192.0.2.1")!, target: VIP4 }),
  arpRequest({ mac: CLIENT, ip: parseIp("192.0.2.1")!, target: VIP4, vlan: 9, padTo: 60 }),
  neighborSolicitation({ mac: CLIENT, src: parseIp("fe80::1")!, target: VIP6 }),
  neighborSolicitation({ mac: CLIENT, src: { family: 6, value: 0n }, target: VIP6 }),
  neighborSolicitation({ mac: CLIENT, src: parseIp("fe80::1")!, target: VIP6, vlan: 9 }),
];

const mutation = fc.oneof(
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("grow" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
);

type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(seed: Uint8Array, ms: Mutation[]): Uint8Array {
  let f = seed.slice();
  for (const m of ms) {
    if (m.kind === "set") f[m.at % f.length] = m.value;
    else if (m.kind === "flip") f[m.at % f.length]! ^= 1 << m.bit;
    else if (m.kind === "cut") f = f.slice(0, Math.max(14, m.at % (f.length + 1)));
    else f = new Uint8Array([...f, ...m.bytes]);
  }
  return f;
}

/** Recomputes the ICMPv6 checksum of a (mutated) IPv6 frame, so mutations reach past it. */
function fixChecksum(f: Uint8Array): Uint8Array {
  const l2 = f[12] === 0x81 && f[13] === 0x00 ? 18 : 14;
  if (f.length < l2 + 44 || f[l2 - 2] !== 0x86 || f[l2 - 1] !== 0xdd || f[l2 + 6] !== 58) return f;
  const len = (f[l2 + 4]! << 8) | f[l2 + 5]!;
  if (len < 4 || l2 + 40 + len > f.length) return f;
  const icmp = f.slice(l2 + 40, l2 + 40 + len);
  icmp[2] = 0;
  icmp[3] = 0;
  const sum = icmp6Checksum(
    ipFromBytes(f.slice(l2 + 8, l2 + 24)),
    ipFromBytes(f.slice(l2 + 24, l2 + 40)),
    icmp,
  );
  const out = f.slice();
  out[l2 + 42] = sum >> 8;
  out[l2 + 43] = sum & 0xff;
  return out;
}

function delta(a: Record<CounterName, bigint>, b: Record<CounterName, bigint>) {
  const d: Partial<Record<CounterName, bigint>> = {};
  for (const k of COUNTERS) if (a[k] !== b[k]) d[k] = b[k] - a[k];
  return d;
}

/** Checks one run; returns a description of what happened for the coverage tally. */
function check(frame: Uint8Array): string {
  const before = maps.counters();
  const r = maps.testRun(frame);
  const d = delta(before, maps.counters());
  expect(d.seen).toBe(1n);
  const outcomes = COUNTERS.filter((k) => k === "arp_replies" || k === "na_replies" || k.startsWith("pass_"));
  expect(outcomes.filter((k) => d[k] !== undefined)).toHaveLength(1);
  if (r.retval === 2) {
    expect([...r.data]).toEqual([...frame]);
    return outcomes.find((k) => d[k] !== undefined)!;
  }
  expect(r.retval).toBe(3);
  const out = r.data;
  const l2 = out[12] === 0x81 && out[13] === 0x00 ? 18 : 14;
  expect(formatMac(out.subarray(6, 12))).toBe(formatMac(OWNER));
  if (out[l2 - 2] === 0x08 && out[l2 - 1] === 0x06) {
    expect(d.arp_replies).toBe(1n);
    expect(out[l2 + 7]).toBe(2); // op reply
    expect(formatMac(out.subarray(l2 + 8, l2 + 14))).toBe(formatMac(OWNER));
    const spa = ipFromBytes(out.slice(l2 + 14, l2 + 18));
    expect(OWNED.has(`4/${spa.value}`)).toBe(true);
    expect(out.length).toBe(frame.length); // answered in place
    return "arp_replies";
  }
  expect(d.na_replies).toBe(1n);
  expect([out[l2 - 2], out[l2 - 1]]).toEqual([0x86, 0xdd]);
  expect(out.length).toBe(l2 + 40 + 32);
  expect(out[l2 + 7]).toBe(255);
  expect(out[l2 + 40]).toBe(136);
  const src: Ip = ipFromBytes(out.slice(l2 + 8, l2 + 24));
  const dst: Ip = ipFromBytes(out.slice(l2 + 24, l2 + 40));
  expect(OWNED.has(`6/${src.value}`)).toBe(true);
  expect(icmp6Checksum(src, dst, out.slice(l2 + 40))).toBe(0);
  return "na_replies";
}

test("mutated requests: passed untouched or answered well, each counted once", () => {
  const seen = new Map<string, number>();
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: seeds.length - 1 }),
      fc.array(mutation, { minLength: 0, maxLength: 3 }),
      fc.boolean(),
      (i, ms, fix) => {
        const m = mutate(seeds[i]!, ms);
        const what = check(fix ? fixChecksum(m) : m);
        seen.set(what, (seen.get(what) ?? 0) + 1);
      },
    ),
    { numRuns: 3000, seed: 20261126 },
  );
  // The fuzzer reached both answers and a spread of pass reasons.
  expect(seen.get("arp_replies")).toBeGreaterThan(0);
  expect(seen.get("na_replies")).toBeGreaterThan(0);
  expect([...seen.keys()].filter((k) => k.startsWith("pass_")).length).toBeGreaterThanOrEqual(12);
}, 60_000);

test("random frames: never answered unless they are requests for an owned VIP", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 14, maxLength: 200 }), (frame) => {
      check(frame);
    }),
    { numRuns: 2000, seed: 7 },
  );
}, 60_000);
