/**
 * The bytes shared with src/xdp/arp_responder.c: map keys with zeroed padding, values, the
 * liveness record, and the counter list, which must follow the C enum exactly.
 */

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { parseIp } from "../../src/util/ip.ts";
import {
  COUNTERS,
  decodeLiveness,
  decodeVipKey,
  encodeLiveness,
  encodeVipKey,
  encodeVipVal,
  formatMac,
  parseMac,
  VIP_KEY_SIZE,
} from "../../src/xdp/layout.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("vip key", () => {
  test("IPv4: ifindex (host order), family, three zero bytes, address, twelve zero bytes", () => {
    const k = encodeVipKey(7, parseIp("192.0.2.10")!);
    expect(k.length).toBe(VIP_KEY_SIZE);
    expect(hex(k)).toBe(`07000000${"04000000"}c000020a${"00".repeat(12)}`);
  });

  test("IPv6: the 16 address bytes follow the padding", () => {
    const k = encodeVipKey(0x01020304, parseIp("2001:db8::10")!);
    expect(hex(k)).toBe("04030201" + "06000000" + "20010db8000000000000000000000010");
  });

  test("decode(encode(k)) is k, for any ifindex and address", () => {
    const v4 = fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }).map((value) => ({ family: 4 as const, value }));
    const v6 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }).map((value) => ({ family: 6 as const, value }));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 0x7fffffff }), fc.oneof(v4, v6), (ifindex, ip) => {
        expect(decodeVipKey(encodeVipKey(ifindex, ip))).toEqual({ ifindex, ip });
      }),
    );
  });

  test("a key with an unknown family is rejected", () => {
    const k = encodeVipKey(1, parseIp("192.0.2.1")!);
    k[4] = 5;
    expect(() => decodeVipKey(k)).toThrow(/family 5/);
  });
});

describe("values", () => {
  test("MAC value: six bytes and two zero bytes", () => {
    expect(hex(encodeVipVal(parseMac("02:00:5e:00:00:aa")!))).toBe("02005e0000aa0000");
  });

  test("liveness: heartbeat and window as host-order u64", () => {
    const v = encodeLiveness(123456789012345n, 30_000_000_000n);
    expect(decodeLiveness(v)).toEqual({ heartbeatNs: 123456789012345n, windowNs: 30_000_000_000n });
  });

  test("MAC parsing accepts : and -, rejects the rest", () => {
    expect(formatMac(parseMac("02-00-5E-00-00-AA")!)).toBe("02:00:5e:00:00:aa");
    for (const bad of ["", "02:00:5e:00:00", "02:00:5e:00:00:aa:01", "0g:00:00:00:00:00", "2:0:0:0:0:0"]) {
      expect(parseMac(bad)).toBeNull();
    }
  });
});

test("COUNTERS follows enum counter in arp_responder.c, in order", () => {
  const c = readFileSync(new URL("../../src/xdp/arp_responder.c", import.meta.url), "utf8");
  const body = c.slice(c.indexOf("enum counter {"), c.indexOf("C_MAX"));
  const names = [...body.matchAll(/^\s*C_([A-Z0-9_]+)\s*(?:=\s*0\s*)?,/gm)].map((m) => m[1]!.toLowerCase());
  expect(names).toEqual([...COUNTERS]);
});
