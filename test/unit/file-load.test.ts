/**
 * The file worker's loader (src/appliance/file-load.ts): its pre-scan, which reuses the verdicts of
 * chunks unchanged since the last call, equals `prescanYaml` of the whole text — refusals, lines
 * and messages included — across random edits; and a load after it gives what a fresh parse gives.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ChunkedLoader } from "../../src/appliance/file-load.ts";
import { prescanYaml, type TextLimits } from "../../src/config/budget.ts";
import { configFromText } from "../../src/config/index.ts";
import { StringTable } from "../../src/config/load-reuse.ts";

const pool = `apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: { name: lan, namespace: metallb-system }\nspec: { addresses: ["10.0.0.0/16"] }\n`;
const service = (i: number) =>
  `apiVersion: v1\nkind: Service\nmetadata: { name: s${i}, namespace: ns${i % 3}, labels: { app: a${i % 5} } }\nspec:\n  type: LoadBalancer\n  ports: [{ port: 80 }]\n`;
const join = (docs: string[]) => docs.map((d) => `---\n${d}`).join("");
const strip = (r: unknown) => JSON.parse(JSON.stringify(r));

describe("ChunkedLoader.prescan", () => {
  // Small limits, so that random texts are refused for each reason, at various lines.
  const LIMITS: TextLimits[] = [
    { maxBytes: 64 * 1024, maxDocuments: 12, maxDepth: 64, maxNodes: 1000 },
    { maxBytes: 64 * 1024, maxDocuments: 1000, maxDepth: 4, maxNodes: 100_000 },
    { maxBytes: 1500, maxDocuments: 1000, maxDepth: 64, maxNodes: 100_000 },
    { maxBytes: 64 * 1024, maxDocuments: 1000, maxDepth: 64, maxNodes: 40 },
    { maxBytes: 64 * 1024, maxDocuments: 1000, maxDepth: 64, maxNodes: 100_000 },
  ];
  const piece = fc.oneof(
    fc.nat(40).map((i) => service(i)),
    fc.constantFrom(
      pool,
      "a: [[[[[1]]]]]\n",
      "a:\n  b:\n    c:\n      d:\n        e: 1\n",
      "- - - - - x\n",
      "{}\n",
      "# only a comment\n",
      "x: [1, 2,\n  3, 4]\n",
      "",
      "%YAML 1.2\n",
      "k: v\n...\n",
    ),
  );
  const edits = fc.array(
    fc.record({
      at: fc.nat(),
      doc: piece,
      op: fc.constantFrom("set", "add", "remove"),
      limits: fc.nat(LIMITS.length - 1),
      // The first document without its `---`, or after a comment.
      head: fc.constantFrom("", "bare", "# head\n"),
    }),
    { minLength: 1, maxLength: 25 },
  );

  test("equals prescanYaml of the whole text across random edits, refusals included", () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.array(piece, { minLength: 5, maxLength: 30 }), edits, (start, steps) => {
        const loader = new ChunkedLoader(0x1n);
        const d = [...start];
        for (const e of steps) {
          const i = d.length === 0 ? 0 : e.at % d.length;
          if (e.op === "add" || d.length === 0) d.splice(e.at % (d.length + 1), 0, e.doc);
          else if (e.op === "set") d[i] = e.doc;
          else d.splice(i, 1);
          const joined = join(d);
          const text = e.head === "bare" ? joined.slice(4) : e.head + joined;
          const limits = LIMITS[e.limits] as TextLimits;
          const whole = prescanYaml(text, limits);
          seen.add(whole.ok ? "ok" : whole.reason);
          expect(loader.prescan(text, limits)).toEqual(whole);
        }
      }),
      { seed: 20261203, numRuns: 300 },
    );
    expect([...seen].sort()).toEqual(["TooDeep", "TooLarge", "TooManyDocuments", "TooManyNodes", "ok"]);
  });

  test("a load after the pre-scan (its chunks kept for it) gives what a fresh parse gives", () => {
    const limits = LIMITS[4] as TextLimits;
    const loader = new ChunkedLoader(0x3n);
    const d = [pool, ...Array.from({ length: 40 }, (_, i) => service(i))];
    for (const change of [0, 1, 2]) {
      if (change === 1) d[20] = service(99);
      if (change === 2) d.splice(5, 1);
      const text = join(d);
      expect(loader.prescan(text, limits).ok).toBe(true);
      expect(strip(loader.load(text, "f.yaml"))).toEqual(strip(configFromText(text, "f.yaml")));
      if (change > 0) expect(loader.last.loaded).toBeLessThan(4);
    }
    // A refused text is not kept (no load follows); a text that is not the pre-scanned one is cut
    // afresh.
    const deep = join([...d, "a: [[[[[[[[1]]]]]]]]\n"]);
    expect(loader.prescan(deep, { ...limits, maxDepth: 4 }).ok).toBe(false);
    expect((loader as unknown as { lastCut: unknown }).lastCut).toBeUndefined();
    loader.prescan(join(d), limits);
    const other = join([...d, service(7)]);
    expect(strip(loader.load(other, "f.yaml"))).toEqual(strip(configFromText(other, "f.yaml")));
  });
});

describe("ChunkedLoader.load", () => {
  test("chunks kept but moved (documents and lines inserted before them) point their problems at their new lines", () => {
    const loader = new ChunkedLoader(0x3n);
    const d = [pool, ...Array.from({ length: 30 }, (_, i) => service(i))];
    const first = join(d);
    expect(strip(loader.load(first, "f.yaml"))).toEqual(strip(configFromText(first, "f.yaml")));
    // Two documents and four lines more before every chunk but the first; then a duplicate of a
    // Service of a moved chunk, whose problem names the first one's line (lineOf of a moved object).
    d.splice(1, 0, "# one\n# two\nx: 1\n", service(40));
    d.push(service(25));
    const second = join(d);
    const r = loader.load(second, "f.yaml");
    expect(loader.last.kept).toBeGreaterThan(0);
    expect(r.ok).toBe(false);
    expect(strip(r)).toEqual(strip(configFromText(second, "f.yaml")));
    // Then a document of a moved chunk changes, and a line comes before it: the chunk is loaded
    // again from its cache, which holds the objects moved last time.
    d[20] = `# note\n${service(41)}`;
    d.splice(2, 1);
    const third = join(d);
    expect(strip(loader.load(third, "f.yaml"))).toEqual(strip(configFromText(third, "f.yaml")));
    expect(loader.last.loaded).toBeLessThan(loader.last.kept);
  });
});

describe("StringTable", () => {
  test("sharing strings changes no value (any depth, arrays, a table cleared when full)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.jsonValue(), { maxLength: 8 }),
        fc.integer({ min: 1, max: 6 }),
        (values, max) => {
          const table = new StringTable(max);
          const before = structuredClone(values);
          for (const v of values) table.share(v);
          expect(values).toEqual(before);
        },
      ),
    );
  });
});
