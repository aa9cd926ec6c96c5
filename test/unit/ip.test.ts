/**
 * src/util/ip.ts: addresses as (family, bigint), their text forms (RFC 4291 §2.2 in, RFC 5952
 * out), CIDRs and ranges. Example tests for the tricky spellings, property tests (fast-check, fixed
 * seed) for the laws: format∘parse is the identity, and rangeToCidrs covers exactly its range.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  canonicalIp,
  type Family,
  formatIp,
  formatRange,
  type IpRange,
  ipFromBytes,
  ipToBytes,
  maskOf,
  parseCidr,
  parseIp,
  parseRange,
  rangeContains,
  rangeSize,
  rangesOverlap,
  rangeToCidrs,
} from "../../src/util/ip.ts";

const RUNS = { seed: 42, numRuns: 200 };
const MAX = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n } as const;
const BITS = { 4: 32, 6: 128 } as const;

const family = fc.constantFrom<Family>(4, 6);
const ipOf = (f: Family) => fc.bigInt({ min: 0n, max: MAX[f] }).map((value) => ({ family: f, value }));
/** Addresses biased towards the shapes that break formatters: runs of zero groups, all ones. */
const ip = family.chain((f) =>
  f === 4
    ? ipOf(4)
    : fc
        .array(fc.constantFrom(0, 0, 0, 1, 0xffff, 0xdb8), { minLength: 8, maxLength: 8 })
        .map((g) => ({ family: 6 as Family, value: g.reduce((v, x) => (v << 16n) | BigInt(x), 0n) }))
        .chain((biased) => fc.oneof(fc.constant(biased), ipOf(6))),
);
const range = family.chain((f) =>
  fc
    .tuple(ipOf(f), ipOf(f))
    .map(
      ([a, b]): IpRange =>
        a.value <= b.value
          ? { family: f, first: a.value, last: b.value }
          : { family: f, first: b.value, last: a.value },
    ),
);

describe("parsing addresses", () => {
  test.each([
    ["192.168.1.1", 4, 0xc0a80101n],
    ["0.0.0.0", 4, 0n],
    ["255.255.255.255", 4, 0xffffffffn],
    ["::", 6, 0n],
    ["::1", 6, 1n],
    ["fd00::", 6, 0xfd00n << 112n],
    ["2001:DB8::8:800:200C:417A", 6, 0x20010db8000000000008080020_0c417an],
    ["::ffff:192.0.2.1", 6, 0xffffc0000201n],
    ["64:ff9b::192.0.2.33", 6, (0x64ff9bn << 96n) | 0xc0000221n],
    ["1:2:3:4:5:6:7::", 6, 0x00010002000300040005000600070000n],
    ["::2:3:4:5:6:7:8", 6, 0x00000002000300040005000600070008n],
  ] as const)("%s", (text, fam, value) => {
    expect(parseIp(text)).toEqual({ family: fam, value });
  });

  test.each([
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "01.2.3.4",
    "1.2.3.-4",
    " 1.2.3.4",
    "1::2::3",
    ":::",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7:8::",
    "12345::",
    "g::1",
    ":1::",
    "::ffff:1.2.3",
    "1:2:3:4:5:6:7:1.2.3.4",
    "fe80::1%eth0",
    "[::1]",
  ])("refuses %j", (text) => {
    expect(parseIp(text)).toBeNull();
  });
});

describe("formatting addresses (RFC 5952)", () => {
  test.each([
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group is not shortened (§4.2.2)
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // the longest run is shortened (§4.2.3)
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // a tie: the first run (§4.2.3)
    ["FD00::ABCD", "fd00::abcd"], // lower case (§4.3)
    ["0:0:0:0:0:0:0:0", "::"],
    ["1:0:0:0:0:0:0:0", "1::"],
  ])("%s → %s", (text, canonical) => {
    expect(canonicalIp(text)).toBe(canonical);
  });

  test("format∘parse is the identity on addresses", () => {
    fc.assert(
      fc.property(ip, (a) => {
        expect(parseIp(formatIp(a))).toEqual(a);
      }),
      RUNS,
    );
  });

  test("any spelling of an address (leading zeros, upper case, no ::) parses to it and formats canonically", () => {
    fc.assert(
      fc.property(ipOf(6), fc.boolean(), (a, upper) => {
        const groups: string[] = [];
        for (let i = 7; i >= 0; i--)
          groups.push(((a.value >> BigInt(i * 16)) & 0xffffn).toString(16).padStart(4, "0"));
        const text = groups.join(":");
        const parsed = parseIp(upper ? text.toUpperCase() : text);
        expect(parsed).toEqual(a);
        expect(canonicalIp(text)).toBe(formatIp(a));
        expect(formatIp(a)).toBe(formatIp(a).toLowerCase());
      }),
      RUNS,
    );
  });

  test("network-order bytes round-trip", () => {
    fc.assert(
      fc.property(ip, (a) => {
        const bytes = ipToBytes(a);
        expect(bytes.length).toBe(a.family === 4 ? 4 : 16);
        expect(ipFromBytes(bytes)).toEqual(a);
      }),
      RUNS,
    );
    expect(ipToBytes({ family: 4, value: 0xc0a80101n })).toEqual(new Uint8Array([192, 168, 1, 1]));
    expect(() => ipFromBytes(new Uint8Array(5))).toThrow("an IP address is 4 or 16 bytes, not 5");
  });
});

describe("CIDRs and ranges", () => {
  test("a CIDR with host bits set means its network, as Go's net.ParseCIDR does", () => {
    expect(parseCidr("10.0.0.5/24")).toEqual({
      ok: true,
      value: { family: 4, first: 0x0a000000n, last: 0x0a0000ffn, prefixLen: 24 },
    });
    expect(parseCidr("fd00::1/127")).toEqual({
      ok: true,
      value: { family: 6, first: 0xfd00n << 112n, last: (0xfd00n << 112n) | 1n, prefixLen: 127 },
    });
    expect(parseCidr("0.0.0.0/0")).toEqual({
      ok: true,
      value: { family: 4, first: 0n, last: MAX[4], prefixLen: 0 },
    });
  });

  test.each([
    ["10.0.0.0", '"10.0.0.0" is not a CIDR (missing /length)'],
    ["10.0.0/8", '"10.0.0" is not an IP address'],
    ["10.0.0.0/33", '"/33" is not a valid prefix length for IPv4'],
    ["10.0.0.0/-1", '"/-1" is not a valid prefix length for IPv4'],
    ["10.0.0.0/08x", '"/08x" is not a valid prefix length for IPv4'],
    ["::/129", '"/129" is not a valid prefix length for IPv6'],
  ])("parseCidr refuses %j", (text, error) => {
    expect(parseCidr(text)).toEqual({ ok: false, error });
  });

  test("pool entries: CIDR, a-b range (spaces allowed), single address", () => {
    expect(parseRange("192.168.1.200-192.168.1.250")).toEqual({
      ok: true,
      value: { family: 4, first: 0xc0a801c8n, last: 0xc0a801fan },
    });
    expect(parseRange(" fd00::1 - fd00::ff ")).toEqual({
      ok: true,
      value: { family: 6, first: (0xfd00n << 112n) | 1n, last: (0xfd00n << 112n) | 0xffn },
    });
    expect(parseRange("10.0.0.7")).toEqual({
      ok: true,
      value: { family: 4, first: 0x0a000007n, last: 0x0a000007n },
    });
    expect(parseRange("10.0.0.0/31")).toMatchObject({
      ok: true,
      value: { family: 4, first: 0x0a000000n, last: 0x0a000001n },
    });
    expect(parseRange("10.0.0.9-10.0.0.9").ok).toBe(true);
  });

  test.each([
    ["10.0.0.9-10.0.0.1", 'range "10.0.0.9-10.0.0.1" starts after it ends'],
    ["10.0.0.1-fd00::1", 'range "10.0.0.1-fd00::1" mixes IPv4 and IPv6'],
    ["10.0.0.1-", '"" is not an IP address'],
    ["-10.0.0.1", '"" is not an IP address'],
    ["banana", '"banana" is not an IP address, CIDR or range'],
  ])("parseRange refuses %j", (text, error) => {
    expect(parseRange(text)).toEqual({ ok: false, error });
  });

  test("formatRange prints a single address alone, otherwise first-last", () => {
    expect(formatRange({ family: 4, first: 5n, last: 5n })).toBe("0.0.0.5");
    expect(formatRange({ family: 6, first: 0n, last: 0xffn })).toBe("::-::ff");
  });

  test("size, overlap and containment agree with their definitions", () => {
    fc.assert(
      fc.property(range, range, ip, (a, b, x) => {
        expect(rangeSize(a)).toBe(a.last - a.first + 1n);
        // They share an address unless one ends before the other starts.
        const shared = a.family === b.family && !(a.last < b.first || b.last < a.first);
        expect(rangesOverlap(a, b)).toBe(shared);
        expect(rangesOverlap(a, b)).toBe(rangesOverlap(b, a));
        expect(rangeContains(a, x)).toBe(a.family === x.family && a.first <= x.value && x.value <= a.last);
      }),
      RUNS,
    );
  });

  test("a range formatted and parsed again is the same range", () => {
    fc.assert(
      fc.property(range, (r) => {
        expect(parseRange(formatRange(r))).toEqual({ ok: true, value: r });
      }),
      RUNS,
    );
  });
});

describe("rangeToCidrs", () => {
  test("examples: an aligned block is one CIDR; the guide's range is six", () => {
    const show = (r: IpRange) =>
      rangeToCidrs(r).map((c) => `${formatIp({ family: c.family, value: c.base })}/${c.prefixLen}`);
    const guide = parseRange("192.168.1.200-192.168.1.250");
    if (!guide.ok) throw new Error(guide.error);
    expect(show(guide.value)).toEqual([
      "192.168.1.200/29",
      "192.168.1.208/28",
      "192.168.1.224/28",
      "192.168.1.240/29",
      "192.168.1.248/31",
      "192.168.1.250/32",
    ]);
    expect(show({ family: 6, first: 0n, last: MAX[6] })).toEqual(["::/0"]);
    expect(show({ family: 4, first: 7n, last: 7n })).toEqual(["0.0.0.7/32"]);
  });

  test("covers exactly the range: aligned blocks, back to back, from first to last, none mergeable", () => {
    fc.assert(
      fc.property(range, (r) => {
        const blocks = rangeToCidrs(r);
        const bits = BITS[r.family];
        expect(blocks.length).toBeGreaterThan(0);
        expect(blocks.length).toBeLessThanOrEqual(2 * bits);
        let next = r.first;
        blocks.forEach((c, i) => {
          expect(c.family).toBe(r.family);
          expect(c.base).toBe(next);
          expect(c.base & ~maskOf(r.family, c.prefixLen) & MAX[r.family]).toBe(0n); // aligned
          next = c.base + (1n << BigInt(bits - c.prefixLen));
          const after = blocks[i + 1];
          // Two equal neighbours that form an aligned block of twice the size would not be minimal.
          if (after && after.prefixLen === c.prefixLen && c.prefixLen > 0)
            expect(c.base & ((1n << BigInt(bits - c.prefixLen + 1)) - 1n)).not.toBe(0n);
        });
        expect(next - 1n).toBe(r.last);
      }),
      RUNS,
    );
  });

  test("small IPv4 ranges, address by address", () => {
    const small = fc
      .tuple(fc.bigInt({ min: 0n, max: MAX[4] - 600n }), fc.bigInt({ min: 0n, max: 600n }))
      .map(([first, n]): IpRange => ({ family: 4, first, last: first + n }));
    fc.assert(
      fc.property(small, (r) => {
        const covered = new Set<bigint>();
        for (const c of rangeToCidrs(r))
          for (let v = c.base; v < c.base + (1n << BigInt(32 - c.prefixLen)); v++) {
            expect(covered.has(v)).toBe(false);
            covered.add(v);
          }
        expect(covered.size).toBe(Number(rangeSize(r)));
        for (const v of covered) expect(v >= r.first && v <= r.last).toBe(true);
      }),
      { seed: 42, numRuns: 100 },
    );
  });
});
