/**
 * Fuzzes the BGP decoder and framer: `bun scripts/fuzz-bgp.ts [cases=1000000] [seed=random]`.
 * Mutates real messages (captured from BIRD and FRR) and our own; every failing input is saved to
 * test/fixtures/bgp/crashers/<sha1>.hex, which the unit tests replay forever. Also runs fast-check
 * over raw bytes behind a valid header. Exits non-zero if anything failed.
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import fc from "fast-check";
import { check, fuzz } from "../test/fixtures/bgp/fuzzlib.ts";

const cases = Number(process.argv[2] ?? 1_000_000);
const seed = Number(process.argv[3] ?? Math.floor(Math.random() * 2 ** 31));
const dir = new URL("../test/fixtures/bgp/crashers/", import.meta.url).pathname;
const t0 = performance.now();
let saved = 0;
const save = (bytes: Uint8Array, reason: string) => {
  const hex = Buffer.from(bytes).toString("hex");
  const name = createHash("sha1").update(hex).digest("hex").slice(0, 16);
  writeFileSync(`${dir}${name}.hex`, `${hex}\n`);
  if (saved++ < 20) console.error(`crasher ${name}: ${reason}`);
};
const batch = 100_000;
let failures = 0;
for (let done = 0; done < cases; done += batch) {
  const n = Math.min(batch, cases - done);
  failures += fuzz(seed + done, n, save);
  console.log(
    `${done + n} mutated cases, ${failures} failures, ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
}
// Unstructured bytes behind a valid header, for every message type.
const rawRuns = Math.max(1000, Math.floor(cases / 10));
fc.assert(
  fc.property(
    fc.integer({ min: 1, max: 6 }),
    fc.uint8Array({ maxLength: 300 }),
    fc.nat(),
    (type, body, cut) => {
      const len = 19 + body.length;
      const b = new Uint8Array([...new Array(16).fill(0xff), len >> 8, len & 255, type, ...body]);
      const v = check(b, cut % (b.length + 1));
      if (!v.ok) save(b, v.reason);
      return v.ok;
    },
  ),
  { numRuns: rawRuns, seed },
);
console.log(
  `seed ${seed}: ${cases} mutated + ${rawRuns} raw cases in ${((performance.now() - t0) / 1000).toFixed(1)} s, ${failures} failures`,
);
process.exit(failures === 0 ? 0 : 1);
