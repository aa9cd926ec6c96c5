/**
 * BGP decoder robustness in CI: the captured BIRD/FRR messages decode cleanly, a fixed-seed subset
 * of the fuzzer (scripts/fuzz-bgp.ts runs the million), fast-check round trips of generated
 * UPDATEs, and every saved crasher replayed forever.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  type AsPathSegment,
  decodeMessage,
  encodeMessage,
  type PathAttributes,
  type Prefix,
  type UpdateMessage,
} from "../../src/bgp/codec/index.ts";
import { capturedFixtures, check, crashers, fromHex, fuzz } from "../fixtures/bgp/fuzzlib.ts";

describe("captured messages (test/fixtures/bgp/captured.json, see capture.ts)", () => {
  const fx = capturedFixtures();
  test("there are OPENs and UPDATEs from both BIRD and FRR", () => {
    for (const router of ["BIRD", "bgpd"]) {
      const mine = fx.filter((f) => f.origin.startsWith(router));
      expect(mine.some((f) => f.type === "OPEN")).toBe(true);
      expect(mine.filter((f) => f.type === "UPDATE").length).toBeGreaterThanOrEqual(3);
    }
  });
  test("every one decodes without errors and survives encode → decode unchanged", () => {
    for (const f of fx) {
      const r = decodeMessage(fromHex(f.hex), { as4: true });
      if (!r.ok) throw new Error(`${f.origin.split(",")[0]} ${f.type}: ${r.error.message}`);
      if (r.msg.type === "update") expect(r.msg.errors).toBeUndefined();
      const again = decodeMessage(encodeMessage(r.msg));
      expect(again.ok && again.msg).toEqual(r.msg);
    }
  });
  test("what the routers said: BIRD's OPEN offers graceful restart; FRR's v6 next hop has a link-local part", () => {
    const birdOpen = decodeMessage(
      fromHex(fx.find((f) => f.origin.startsWith("BIRD") && f.type === "OPEN")!.hex),
    );
    expect(
      birdOpen.ok &&
        birdOpen.msg.type === "open" &&
        birdOpen.msg.capabilities.some((c) => c.kind === "graceful-restart"),
    ).toBe(true);
    const frr6 = fx
      .filter((f) => f.origin.startsWith("bgpd") && f.type === "UPDATE")
      .map((f) => decodeMessage(fromHex(f.hex)))
      .find((r) => r.ok && r.msg.type === "update" && (r.msg.attributes.mpReach?.nlri.length ?? 0) > 0);
    const nh = frr6?.ok && frr6.msg.type === "update" ? frr6.msg.attributes.mpReach?.nextHops : undefined;
    expect(nh?.length).toBe(2);
    expect(nh?.[1]?.startsWith("fe80:")).toBe(true);
  });
});

describe("fuzzing (fixed seed)", () => {
  test("15,000 mutated real messages: only typed decode errors, no throw, no hang", () => {
    const failures: string[] = [];
    fuzz(42, 15_000, (b, reason) => failures.push(`${Buffer.from(b).toString("hex")}: ${reason}`));
    expect(failures).toEqual([]);
  }, 60_000);
  test("every saved crasher still passes", () => {
    for (const c of crashers()) {
      const v = check(c.bytes, Math.floor(c.bytes.length / 2));
      if (!v.ok) throw new Error(`${c.name}: ${v.reason}`);
    }
  });
  test("raw bytes behind a valid header, every message type", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.uint8Array({ maxLength: 200 }), (type, body) => {
        const len = 19 + body.length;
        const b = new Uint8Array([...new Array(16).fill(0xff), len >> 8, len & 255, type, ...body]);
        return check(b, 19).ok;
      }),
      { numRuns: 5000, seed: 7 },
    );
  }, 30_000);
});

describe("generated UPDATEs round-trip (fast-check)", () => {
  const prefix4 = fc
    .tuple(fc.integer({ min: 0, max: 32 }), fc.uint8Array({ minLength: 4, maxLength: 4 }))
    .map(([len, a]): Prefix => {
      const addr = a.slice();
      for (let i = 0; i < 4; i++) {
        const keep = Math.max(0, Math.min(8, len - i * 8));
        addr[i] = (addr[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
      }
      return { family: 4, len, addr };
    });
  const seg = (as4: boolean) =>
    fc.record({
      type: fc.integer({ min: 1, max: 4 }),
      asns: fc.array(fc.integer({ min: 0, max: as4 ? 0xffffffff : 0xffff }), { minLength: 1, maxLength: 20 }),
    });
  const attrs = (as4: boolean) =>
    fc.record(
      {
        origin: fc.constantFrom(0 as const, 1 as const, 2 as const),
        asPath: fc.array(seg(as4), { maxLength: 3 }) as fc.Arbitrary<AsPathSegment[]>,
        nextHop: fc.ipV4(),
        med: fc.nat({ max: 0xffffffff }),
        localPref: fc.nat({ max: 0xffffffff }),
        communities: fc.array(fc.nat({ max: 0xffffffff }), { minLength: 1, maxLength: 10 }),
        largeCommunities: fc.array(
          fc.tuple(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff })),
          {
            minLength: 1,
            maxLength: 5,
          },
        ),
      },
      { requiredKeys: ["origin", "asPath", "nextHop"] },
    ) as fc.Arbitrary<PathAttributes>;
  for (const as4 of [true, false]) {
    test(`${as4 ? "4" : "2"}-octet AS session`, () => {
      fc.assert(
        fc.property(
          attrs(as4),
          fc.array(prefix4, { maxLength: 50 }),
          fc.array(prefix4, { maxLength: 50 }),
          (a, nlri, withdrawn) => {
            const m: UpdateMessage = { type: "update", withdrawn, attributes: a, nlri };
            const r = decodeMessage(encodeMessage(m, { as4 }), { as4 });
            expect(r.ok && r.msg).toEqual(m);
          },
        ),
        { numRuns: 500, seed: 11 },
      );
    }, 30_000);
  }
});
