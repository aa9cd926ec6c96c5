/**
 * BFD Control packet codec and authentication (RFC 5880 §4, §6.7, §6.8.6): byte-exact vectors,
 * round trips and a fixed-seed fuzz subset (scripts/fuzz-bfd.ts runs a million cases).
 */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { AUTH_RX_INITIAL, type AuthConfig, encodeSigned, verifyAuth } from "../../src/bfd/auth.ts";
import {
  type AuthSection,
  type ControlPacket,
  controlPacket,
  DIAG,
  decodeControl,
  diagName,
  encodeControl,
} from "../../src/bfd/codec.ts";
import { arbControlPacket, FUZZ_SEED } from "../support/bfd/arbitraries.ts";

const hex = (s: string) =>
  Uint8Array.from(
    s
      .replace(/\s+/g, "")
      .match(/../g)!
      .map((b) => Number.parseInt(b, 16)),
  );

describe("encoding", () => {
  test("a Down packet with slow timers is byte-exact", () => {
    const p = controlPacket({ myDiscr: 0x01020304, desiredMinTx: 1_000_000, requiredMinRx: 50_000 });
    expect(encodeControl(p)).toEqual(hex("20 40 03 18 01020304 00000000 000f4240 0000c350 00000000"));
  });

  test("flags, state and diag land in the right bits", () => {
    const p = controlPacket({
      state: "Up",
      poll: true,
      diag: DIAG.NeighborSignaledSessionDown,
      myDiscr: 7,
      yourDiscr: 9,
    });
    const b = encodeControl(p);
    expect(b[0]).toBe(0x23); // version 1, diag 3
    expect(b[1]).toBe(0xe0); // Up (3 << 6) | P
    expect(encodeControl({ ...p, poll: false, final: true })[1]).toBe(0xd0);
  });

  test("diagnostic names", () => {
    expect(diagName(1)).toBe("ControlDetectionTimeExpired");
    expect(diagName(7)).toBe("AdministrativelyDown");
    expect(diagName(20)).toBe("Reserved20");
  });
});

describe("receive checks in RFC 5880 §6.8.6 order", () => {
  const good = encodeControl(controlPacket({ myDiscr: 5 }));
  const mutate = (f: (b: Uint8Array) => void) => {
    const b = good.slice();
    f(b);
    return decodeControl(b);
  };
  const cases: [string, () => ReturnType<typeof decodeControl>, string][] = [
    [
      "version 0",
      () =>
        mutate((b) => {
          b[0] = b[0]! & 0x1f;
        }),
      "BadVersion",
    ],
    ["version 2", () => mutate((b) => (b[0] = (2 << 5) | (b[0]! & 0x1f))), "BadVersion"],
    ["empty payload", () => decodeControl(new Uint8Array(0)), "TooShort"],
    [
      "Length 23",
      () =>
        mutate((b) => {
          b[3] = 23;
        }),
      "TooShort",
    ],
    [
      "A bit with Length 24",
      () =>
        mutate((b) => {
          b[1] = b[1]! | 0x04;
        }),
      "TooShort",
    ],
    [
      "Length beyond payload",
      () =>
        mutate((b) => {
          b[3] = 30;
        }),
      "LengthExceedsPayload",
    ],
    ["truncated payload", () => decodeControl(good.subarray(0, 20)), "LengthExceedsPayload"],
    [
      "Detect Mult 0",
      () =>
        mutate((b) => {
          b[2] = 0;
        }),
      "ZeroDetectMult",
    ],
    [
      "multipoint bit",
      () =>
        mutate((b) => {
          b[1] = b[1]! | 0x01;
        }),
      "MultipointSet",
    ],
    ["My Discriminator 0", () => mutate((b) => b.fill(0, 4, 8)), "ZeroMyDiscriminator"],
    // A version error wins over every later check.
    [
      "version and mult both bad",
      () =>
        mutate((b) => {
          b[0] = 0;
          b[2] = 0;
        }),
      "BadVersion",
    ],
    [
      "mult and discr both bad",
      () =>
        mutate((b) => {
          b[2] = 0;
          b.fill(0, 4, 8);
        }),
      "ZeroDetectMult",
    ],
  ];
  for (const [name, run, reason] of cases) {
    test(`${name} → ${reason}`, () => {
      const r = run();
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toBe(reason as never);
    });
  }

  test("trailing bytes after Length are ignored", () => {
    const b = new Uint8Array(40);
    b.set(good);
    const r = decodeControl(b);
    expect(r.ok).toBe(true);
  });

  test("an unknown auth type is malformed", () => {
    const b = new Uint8Array(28);
    b.set(good);
    b[1] = b[1]! | 0x04;
    b[3] = 28;
    b.set([9, 4, 1, 0], 24);
    expect(decodeControl(b)).toEqual({ ok: false, reason: "AuthMalformed" });
  });
});

describe("round trips", () => {
  test("decode(encode(p)) == p for arbitrary packets (fixed seed)", () => {
    fc.assert(
      fc.property(arbControlPacket, (p) => {
        const r = decodeControl(encodeControl(p));
        expect(r).toEqual({ ok: true, packet: p });
      }),
      { seed: FUZZ_SEED, numRuns: 3000 },
    );
  });

  test("decoding arbitrary bytes never throws; what decodes re-encodes to the same packet (fixed seed)", () => {
    // Biased towards version 1 and plausible lengths so that the deep checks are reached.
    const arb = fc
      .oneof(fc.uint8Array({ maxLength: 30 }), fc.uint8Array({ minLength: 24, maxLength: 64 }))
      .map((b) => {
        if (b.length > 0 && b[0]! % 4 !== 0) b[0] = (1 << 5) | (b[0]! & 0x1f);
        if (b.length >= 24 && b[3]! % 4 !== 0) b[3] = 24 + (b[3]! % (b.length - 23));
        if (b.length > 1 && b[1]! % 4 !== 0) b[1] = b[1]! & 0xfe;
        return b;
      });
    let decoded = 0;
    fc.assert(
      fc.property(arb, (bytes) => {
        const r = decodeControl(bytes);
        if (!r.ok) return;
        decoded++;
        expect(decodeControl(encodeControl(r.packet))).toEqual(r);
      }),
      { seed: FUZZ_SEED, numRuns: 20000 },
    );
    expect(decoded).toBeGreaterThan(100);
  });

  test("mutating one byte of a valid packet never throws (fixed seed)", () => {
    const base = encodeControl(controlPacket({ myDiscr: 1, yourDiscr: 2, state: "Up" }));
    fc.assert(
      fc.property(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 }), (i, v) => {
        const b = base.slice();
        b[i] = v;
        decodeControl(b);
      }),
      { seed: FUZZ_SEED, numRuns: 5000 },
    );
  });
});

describe("authentication (RFC 5880 §6.7)", () => {
  const base = controlPacket({ myDiscr: 0x11, yourDiscr: 0x22, state: "Up" });
  const kinds: AuthConfig[] = [
    { type: "SimplePassword", keyId: 1, secret: "hunter2" },
    { type: "KeyedMd5", keyId: 2, secret: "md5-secret" },
    { type: "MeticulousKeyedMd5", keyId: 3, secret: "md5-secret" },
    { type: "KeyedSha1", keyId: 4, secret: "sha1-secret-20bytes!" },
    { type: "MeticulousKeyedSha1", keyId: 5, secret: "s" },
  ];
  for (const a of kinds) {
    test(`${a.type}: signed packets verify; wrong secret, key id or type do not`, () => {
      const raw = encodeSigned(base, a, 100);
      const d = decodeControl(raw);
      if (!d.ok) throw new Error(d.reason);
      expect(d.packet.auth?.type).toBe(a.type);
      expect(verifyAuth(raw, d.packet, a, AUTH_RX_INITIAL).ok).toBe(true);
      expect(verifyAuth(raw, d.packet, { ...a, secret: "other" }, AUTH_RX_INITIAL)).toEqual({
        ok: false,
        reason: "AuthBadDigest",
      });
      expect(verifyAuth(raw, d.packet, { ...a, keyId: 99 }, AUTH_RX_INITIAL)).toEqual({
        ok: false,
        reason: "AuthUnknownKey",
      });
      const other = a.type === "KeyedSha1" ? "KeyedMd5" : "KeyedSha1";
      expect(verifyAuth(raw, d.packet, { ...a, type: other }, AUTH_RX_INITIAL)).toEqual({
        ok: false,
        reason: "AuthTypeMismatch",
      });
      expect(verifyAuth(raw, d.packet, undefined, AUTH_RX_INITIAL)).toEqual({
        ok: false,
        reason: "AuthNotConfigured",
      });
    });
  }

  test("a session with auth drops packets without it", () => {
    const raw = encodeControl(base);
    const d = decodeControl(raw);
    if (!d.ok) throw new Error(d.reason);
    expect(verifyAuth(raw, d.packet, kinds[3], AUTH_RX_INITIAL)).toEqual({
      ok: false,
      reason: "AuthMissing",
    });
  });

  test("a flipped bit anywhere in a SHA1-signed packet fails the digest", () => {
    const a = kinds[4]!;
    const raw = encodeSigned(base, a, 7);
    for (let i = 0; i < raw.length; i++) {
      const b = raw.slice();
      b[i] = b[i]! ^ 0x40;
      const d = decodeControl(b);
      if (!d.ok) continue; // the header check caught it first
      expect(verifyAuth(b, d.packet, a, AUTH_RX_INITIAL).ok).toBe(false);
    }
  });

  test("sequence window: keyed accepts a repeat, meticulous requires an increase, both bound by 3 × Detect Mult", () => {
    const verifyAt = (a: AuthConfig, seq: number, rcvSeq: number) => {
      const raw = encodeSigned(base, a, seq);
      const d = decodeControl(raw);
      if (!d.ok) throw new Error(d.reason);
      return verifyAuth(raw, d.packet, a, { known: true, rcvSeq });
    };
    const keyed = kinds[3]!;
    const met = kinds[4]!;
    expect(verifyAt(keyed, 10, 10).ok).toBe(true);
    expect(verifyAt(met, 10, 10)).toEqual({ ok: false, reason: "AuthBadSequence" });
    expect(verifyAt(met, 11, 10).ok).toBe(true);
    expect(verifyAt(met, 19, 10).ok).toBe(true); // 10 + 3 × 3
    expect(verifyAt(met, 20, 10)).toEqual({ ok: false, reason: "AuthBadSequence" });
    expect(verifyAt(met, 9, 10)).toEqual({ ok: false, reason: "AuthBadSequence" });
    // Wraps around 2^32.
    expect(verifyAt(met, 2, 0xffffffff).ok).toBe(true);
  });

  test("SHA1 digest matches an independent computation", () => {
    const a: AuthConfig = { type: "KeyedSha1", keyId: 1, secret: "abc" };
    const raw = encodeSigned(base, a, 1);
    const copy = raw.slice();
    copy.fill(0, 32, 52);
    copy.set(new TextEncoder().encode("abc"), 32);
    const h = new Bun.CryptoHasher("sha1").update(copy).digest();
    expect(raw.subarray(32)).toEqual(new Uint8Array(h));
  });
});

test("every decoded auth section re-encodes identically", () => {
  const sections: AuthSection[] = [
    { type: "SimplePassword", keyId: 1, password: new Uint8Array([1, 2, 3]) },
    { type: "KeyedSha1", keyId: 2, seq: 5, digest: new Uint8Array(20).fill(7) },
    { type: "MeticulousKeyedMd5", keyId: 3, seq: 0xffffffff, digest: new Uint8Array(16).fill(9) },
  ];
  for (const auth of sections) {
    const p: ControlPacket = controlPacket({ myDiscr: 3, auth });
    expect(decodeControl(encodeControl(p))).toEqual({ ok: true, packet: p });
  }
});
