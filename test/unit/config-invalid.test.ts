/**
 * The invalid-manifest corpus: every file in test/fixtures/invalid is one small manifest with one
 * thing wrong, named for it. Its leading `# expect: LINE: Kind/name: field: message` comment is the
 * exact line `vipd validate` must print for it (the file path is put in front). Nothing else may be
 * reported, and nothing from the file may reach a Config.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { configFromPaths, formatProblem } from "../../src/config/index.ts";

const DIR = join(import.meta.dir, "../fixtures/invalid");
const fixtures = readdirSync(DIR)
  .filter((f) => f.endsWith(".yaml"))
  .sort();

/** The `# expect:` lines of a fixture, as full output lines (path in front). */
function expectedLines(path: string): string[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("# expect: "))
    .map((l) => `${path}:${l.slice("# expect: ".length)}`);
}

describe("the invalid-manifest corpus", () => {
  test("holds 45 to 60 manifests, each announcing what it expects", () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(45);
    expect(fixtures.length).toBeLessThanOrEqual(60);
    for (const f of fixtures) expect(expectedLines(join(DIR, f))).toHaveLength(1);
  });

  for (const f of fixtures) {
    test(f.replace(/\.yaml$/, ""), () => {
      const path = join(DIR, f);
      const r = configFromPaths([path]);
      expect(r.ok).toBe(false);
      expect(r.problems.map(formatProblem)).toEqual(expectedLines(path));
    });
  }
});
