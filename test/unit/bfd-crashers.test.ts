/**
 * Replays every saved BFD input under test/fixtures/bfd/crashers/ (written by scripts/fuzz-bfd.ts,
 * plus hand-written seeds): decoding must not throw, must give a named reason or a packet that
 * re-encodes identically, and feeding it to sessions in several states must not throw.
 */

import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DROP_REASONS, decodeControl, encodeControl } from "../../src/bfd/codec.ts";
import { newSession, onPacket, onTimer } from "../../src/bfd/fsm.ts";

const dir = join(import.meta.dir, "../../test/fixtures/bfd/crashers");
const files = readdirSync(dir).filter((f) => f.endsWith(".hex"));

test("the crasher folder is not empty", () => {
  expect(files.length).toBeGreaterThanOrEqual(5);
});

for (const f of files) {
  test(`replay ${f}`, () => {
    const bytes = Uint8Array.from(Buffer.from(readFileSync(join(dir, f), "utf8").trim(), "hex"));
    const d = decodeControl(bytes);
    if (!d.ok) {
      expect(DROP_REASONS).toContain(d.reason);
      return;
    }
    expect(decodeControl(encodeControl(d.packet))).toEqual(d);
    const s = newSession(
      { desiredMinTxUs: 50_000, requiredMinRxUs: 50_000, detectMult: 3, passive: false },
      9,
      0,
    );
    const st = onPacket(s, bytes, d.packet, 10, 0.5);
    onTimer(st.session, 10_000, 0.5);
  });
}
