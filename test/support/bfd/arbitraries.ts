/**
 * fast-check generators for BFD Control packets, shared by the unit tests (fixed seed, a few
 * thousand cases) and scripts/fuzz-bfd.ts (a million cases).
 */

import fc from "fast-check";
import type { AuthSection, BfdState, ControlPacket } from "../../../src/bfd/codec.ts";

/** The seed CI uses; the fuzz script takes its own. */
export const FUZZ_SEED = 0x5880;

const u32 = fc.integer({ min: 0, max: 0xffffffff });

export const arbAuth: fc.Arbitrary<AuthSection> = fc.oneof(
  fc.record({
    type: fc.constant("SimplePassword" as const),
    keyId: fc.integer({ min: 0, max: 255 }),
    password: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc
    .record({
      type: fc.constantFrom("KeyedMd5" as const, "MeticulousKeyedMd5" as const),
      keyId: fc.integer({ min: 0, max: 255 }),
      seq: u32,
    })
    .chain((r) => fc.uint8Array({ minLength: 16, maxLength: 16 }).map((digest) => ({ ...r, digest }))),
  fc
    .record({
      type: fc.constantFrom("KeyedSha1" as const, "MeticulousKeyedSha1" as const),
      keyId: fc.integer({ min: 0, max: 255 }),
      seq: u32,
    })
    .chain((r) => fc.uint8Array({ minLength: 20, maxLength: 20 }).map((digest) => ({ ...r, digest }))),
);

/** Packets that pass every packet-only check (so they must round-trip exactly). */
export const arbControlPacket: fc.Arbitrary<ControlPacket> = fc
  .record({
    diag: fc.integer({ min: 0, max: 31 }),
    state: fc.constantFrom<BfdState>("AdminDown", "Down", "Init", "Up"),
    poll: fc.boolean(),
    final: fc.boolean(),
    cpi: fc.boolean(),
    demand: fc.boolean(),
    detectMult: fc.integer({ min: 1, max: 255 }),
    myDiscr: fc.integer({ min: 1, max: 0xffffffff }),
    yourDiscr: u32,
    desiredMinTx: u32,
    requiredMinRx: u32,
    requiredMinEchoRx: u32,
    auth: fc.option(arbAuth, { nil: undefined }),
  })
  .map((r) => {
    const { auth, ...rest } = r;
    const p: ControlPacket = { version: 1, multipoint: false, ...rest };
    if (auth) p.auth = auth;
    return p;
  });
