/**
 * Fuzzes the BFD codec, authentication and session FSM (a million cases by default):
 *   bun scripts/fuzz-bfd.ts [CASES] [SEED]
 * Properties: decoding arbitrary (biased) bytes never throws; whatever decodes re-encodes to the
 * same packet; every generated packet round-trips; verifyAuth and the FSM never throw on any
 * decodable packet in any session state. A failing input is saved under
 * test/fixtures/bfd/crashers/ (hex), which test/unit/bfd-crashers.test.ts replays forever.
 */

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { type AuthConfig, encodeSigned, verifyAuth } from "../src/bfd/auth.ts";
import { decodeControl, encodeControl } from "../src/bfd/codec.ts";
import { newSession, onPacket, onTimer, type Session, type SessionParams } from "../src/bfd/fsm.ts";
import { arbControlPacket } from "../test/support/bfd/arbitraries.ts";

const cases = Number(process.argv[2] ?? 1_000_000);
const seed = Number(process.argv[3] ?? Date.now() % 0x7fffffff);
const crashDir = join(import.meta.dir, "../test/fixtures/bfd/crashers");

const auths: (AuthConfig | undefined)[] = [
  undefined,
  { type: "KeyedSha1", keyId: 1, secret: "k" },
  { type: "MeticulousKeyedSha1", keyId: 2, secret: "twenty-bytes-secret!" },
  { type: "KeyedMd5", keyId: 3, secret: "md5" },
  { type: "SimplePassword", keyId: 4, secret: "pw" },
];

/** Bytes biased towards valid headers so that the deep paths are reached. */
const arbBytes = fc.oneof(
  fc.uint8Array({ maxLength: 30 }),
  fc.uint8Array({ minLength: 24, maxLength: 64 }).map((b) => {
    if (b[0]! % 8 !== 0) b[0] = (1 << 5) | (b[0]! & 0x1f);
    if (b[3]! % 4 !== 0) b[3] = 24 + (b[3]! % (b.length - 23));
    if (b[1]! % 4 !== 0) b[1] = b[1]! & 0xfe;
    if (b[1]! & 0x04 && b.length >= 26 && b[24]! % 2 === 0) {
      b[24] = 1 + (b[24]! % 5);
      b[25] = [0, 7, 24, 24, 28, 28][b[24]!]!;
      b[3] = Math.min(b.length, 24 + b[25]!);
    }
    return b;
  }),
);

/** Some session states to feed packets into: new, Up, passive. */
function sessions(auth: AuthConfig | undefined): Session[] {
  const p: SessionParams = { desiredMinTxUs: 50_000, requiredMinRxUs: 50_000, detectMult: 3, passive: false };
  if (auth) p.auth = auth;
  const fresh = newSession(p, 0x1234, 0);
  const passive = newSession({ ...p, passive: true }, 0x1234, 0);
  return [fresh, passive, onTimer(fresh, 0, 0.3).session];
}
const states = auths.map((a) => sessions(a));

function save(kind: string, bytes: Uint8Array): void {
  mkdirSync(crashDir, { recursive: true });
  const hex = Buffer.from(bytes).toString("hex");
  writeFileSync(join(crashDir, `${kind}-${hex.slice(0, 16)}-${bytes.length}.hex`), `${hex}\n`);
}

const t0 = performance.now();
let decoded = 0;
const check = (bytes: Uint8Array, now: number, rand: number) => {
  try {
    const d = decodeControl(bytes);
    if (!d.ok) return true;
    decoded++;
    const again = decodeControl(encodeControl(d.packet));
    if (JSON.stringify(again) !== JSON.stringify(d)) throw new Error("re-encode mismatch");
    for (let i = 0; i < auths.length; i++) {
      verifyAuth(bytes, d.packet, auths[i], { known: true, rcvSeq: 5 });
      for (const s of states[i]!) {
        const st = onPacket(s, bytes, d.packet, now, rand);
        onTimer(st.session, now + 1000, rand);
      }
    }
    return true;
  } catch (e) {
    save("decode", bytes);
    throw e;
  }
};

fc.assert(
  fc.property(
    arbBytes,
    fc.double({ min: 0, max: 1e6, noNaN: true }),
    fc.double({ min: 0, max: 0.999, noNaN: true }),
    check,
  ),
  { seed, numRuns: Math.floor(cases * 0.8) },
);
fc.assert(
  fc.property(arbControlPacket, fc.constantFrom(...auths.slice(1)), (p, a) => {
    const raw = a ? encodeSigned({ ...p, auth: undefined }, a, 9) : encodeControl(p);
    const d = decodeControl(raw);
    if (!d.ok) {
      save("roundtrip", raw);
      throw new Error(`own packet dropped: ${d.reason}`);
    }
    if (a && !verifyAuth(raw, d.packet, a, { known: false, rcvSeq: 0 }).ok) {
      save("auth", raw);
      throw new Error("own signature rejected");
    }
    return true;
  }),
  { seed, numRuns: Math.ceil(cases * 0.2) },
);
const secs = (performance.now() - t0) / 1000;
console.log(
  `fuzz-bfd: ${cases} cases (seed ${seed}), ${decoded} decodable byte strings, ${secs.toFixed(1)} s, no failures`,
);
