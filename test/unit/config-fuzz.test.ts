/**
 * Bad input gets a clear error, never an exception: every manifest of the guide and of the invalid
 * corpus, mutated at random (characters deleted, YAML punctuation inserted, lines duplicated,
 * swapped or re-indented), is loaded; the loader must return, and every problem must be one
 * well-formed `path:line: ...: message` line pointing inside the file.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { configFromText, formatProblem } from "../../src/config/index.ts";

const FIXTURES = join(import.meta.dir, "../fixtures");
const texts: string[] = [];
for (const dir of ["guide/single-pool", "guide/multi-pool", "invalid"])
  for (const f of readdirSync(join(FIXTURES, dir)).sort())
    if (/\.ya?ml$/.test(f)) texts.push(readFileSync(join(FIXTURES, dir, f), "utf8"));

const PUNCTUATION = [
  ":",
  "{",
  "}",
  "[",
  "]",
  "-",
  "#",
  "&a",
  "*a",
  "!!str",
  "|",
  ">",
  "'",
  '"',
  "\t",
  "---",
  "<<: *a",
  "~",
  "null",
];

/** A mutation as data, so that fast-check prints a counterexample a person can replay. */
type Mutation =
  | { op: "delete"; line: number; col: number }
  | { op: "insert"; line: number; col: number; text: string }
  | { op: "duplicate"; line: number }
  | { op: "swap"; line: number; other: number }
  | { op: "indent"; line: number; by: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("delete" as const), line: fc.nat(), col: fc.nat() }),
  fc.record({
    op: fc.constant("insert" as const),
    line: fc.nat(),
    col: fc.nat(),
    text: fc.constantFrom(...PUNCTUATION),
  }),
  fc.record({ op: fc.constant("duplicate" as const), line: fc.nat() }),
  fc.record({ op: fc.constant("swap" as const), line: fc.nat(), other: fc.nat() }),
  fc.record({ op: fc.constant("indent" as const), line: fc.nat(), by: fc.integer({ min: -4, max: 4 }) }),
);

function mutate(ls: string[], m: Mutation): string[] {
  const i = m.line % ls.length;
  const s = ls[i] ?? "";
  switch (m.op) {
    case "delete": {
      const at = m.col % (s.length + 1);
      return ls.with(i, s.slice(0, at) + s.slice(at + 1));
    }
    case "insert": {
      const at = m.col % (s.length + 1);
      return ls.with(i, s.slice(0, at) + m.text + s.slice(at));
    }
    case "duplicate":
      return [...ls.slice(0, i + 1), s, ...ls.slice(i + 1)];
    case "swap": {
      const j = m.other % ls.length;
      return ls.with(i, ls[j] ?? "").with(j, s);
    }
    case "indent":
      return ls.with(i, m.by >= 0 ? " ".repeat(m.by) + s : s.replace(new RegExp(`^ {0,${-m.by}}`), ""));
  }
}

test("mutated manifests produce problems or a config, never an exception", () => {
  fc.assert(
    fc.property(fc.constantFrom(...texts), fc.array(mutation, { minLength: 1, maxLength: 4 }), (text, ms) => {
      const lines = ms.reduce(mutate, text.split("\n"));
      const mutated = lines.join("\n");
      const r = configFromText(mutated, "fuzz.yaml");
      for (const p of r.problems) {
        expect(p.line).toBeGreaterThanOrEqual(1);
        expect(p.line).toBeLessThanOrEqual(lines.length);
        expect(p.message.length).toBeGreaterThan(0);
        // One line, whatever the input held: control characters are shown escaped.
        expect(formatProblem(p)).toMatch(/^fuzz\.yaml:\d+: [^\p{Cc}\u2028\u2029]+$/u);
      }
      expect(r.ok).toBe(r.problems.length === 0);
    }),
    { seed: 42, numRuns: 1000 },
  );
}, 60_000);

test("arbitrary text is refused or read, never an exception", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: fc.constantFrom(...PUNCTUATION, " ", "\n", "a", "1", "kind", "apiVersion", "spec") }),
      (text) => {
        const r = configFromText(text, "fuzz.yaml");
        for (const p of r.problems) expect(formatProblem(p)).toStartWith("fuzz.yaml:");
      },
    ),
    { seed: 42, numRuns: 500 },
  );
});
