/**
 * The pre-scan that bounds untrusted manifest text before the YAML parser runs (size, documents,
 * nesting depth, nodes), and the cap on problem lists. The worst bodies are the ones found by
 * probing the API (issue 14): 1 MiB of `[`, `--- {}` × 149k, `---` × 260k.
 */

import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BODY_LIMITS, boundProblems, prescanYaml, type TextLimits } from "../../src/config/budget.ts";
import type { Problem } from "../../src/config/index.ts";
import { configFromText } from "../../src/config/index.ts";

const small: TextLimits = { maxBytes: 10_000, maxDocuments: 5, maxDepth: 4, maxNodes: 50 };

describe("prescanYaml: the issue's worst bodies are refused, with the line", () => {
  test("1 MiB of [ : too deep at line 1", () => {
    expect(prescanYaml("[".repeat(1 << 20))).toEqual({
      ok: false,
      reason: "TooDeep",
      line: 1,
      message: "nesting deeper than 64 levels at line 1",
    });
  });

  test("--- {} × 149k and --- × 260k: too many documents, at the first marker past the limit", () => {
    const a = prescanYaml("--- {}\n".repeat(149_000));
    expect(a).toMatchObject({ ok: false, reason: "TooManyDocuments", line: BODY_LIMITS.maxDocuments + 1 });
    const b = prescanYaml("---\n".repeat(260_000));
    expect(b).toMatchObject({ ok: false, reason: "TooManyDocuments", line: BODY_LIMITS.maxDocuments + 1 });
    if (!b.ok) expect(b.message).toBe(`more than ${BODY_LIMITS.maxDocuments} YAML documents at line 20001`);
  });

  test("documents ended by ... count as well (a bare document may follow them)", () => {
    expect(prescanYaml("x\n...\n".repeat(10), small)).toMatchObject({
      ok: false,
      reason: "TooManyDocuments",
    });
  });

  test("260k one-word list items: too many nodes", () => {
    expect(prescanYaml("- a\n".repeat(260_000))).toMatchObject({ ok: false, reason: "TooManyNodes" });
    expect(prescanYaml(`[${"1,".repeat(60)}1]`, small)).toMatchObject({ ok: false, reason: "TooManyNodes" });
  });

  test("block nesting: by indentation, and compact `- - -` entries on one line", () => {
    const stairs = Array.from({ length: 10 }, (_, i) => `${" ".repeat(i)}k${i}:`).join("\n");
    expect(prescanYaml(stairs, small)).toEqual({
      ok: false,
      reason: "TooDeep",
      line: 5,
      message: "nesting deeper than 4 levels at line 5",
    });
    expect(prescanYaml("- - - - - x\n", small)).toMatchObject({ ok: false, reason: "TooDeep", line: 1 });
    expect(prescanYaml("- ".repeat(500_000))).toMatchObject({ ok: false, reason: "TooDeep", line: 1 });
  });

  test("flow and block depth add up; closing brackets give depth back", () => {
    expect(prescanYaml("a:\n  b: [[x]]\n  c: [[y]]\n", small)).toMatchObject({ ok: true, depth: 4 });
    expect(prescanYaml("a:\n  b:\n    c: [[x]]\n", small)).toMatchObject({
      ok: false,
      reason: "TooDeep",
      line: 3,
    });
  });

  test("an estimate from above: a [ in a quoted string counts, one in a comment line does not", () => {
    expect(prescanYaml('a: "[[[[["\n', small)).toMatchObject({ ok: false, reason: "TooDeep" });
    expect(prescanYaml("# [[[[[[[[\na: 1\n", small)).toMatchObject({ ok: true });
    // A " #" inside a flow collection cannot hide what follows it on the line.
    expect(prescanYaml('[" #", [[[[[[1]]]]]]]\n', small)).toMatchObject({ ok: false, reason: "TooDeep" });
  });

  test("too large: in UTF-8 bytes, not characters", () => {
    const limits = { ...small, maxBytes: 10 };
    expect(prescanYaml("é".repeat(5), limits)).toMatchObject({ ok: true });
    expect(prescanYaml("é".repeat(6), limits)).toMatchObject({
      ok: false,
      reason: "TooLarge",
      message: "the text is 12 bytes; the limit is 10",
    });
  });

  test("an empty text is zero documents; a document marker resets the depth", () => {
    expect(prescanYaml("")).toEqual({ ok: true, documents: 0, depth: 0, nodes: 0 });
    expect(prescanYaml("  \n# only a comment\n")).toMatchObject({ ok: true, documents: 0 });
    expect(prescanYaml("[[[\n---\n[[[\n", small)).toMatchObject({ ok: true, documents: 2, depth: 4 });
  });

  test("every example manifest set passes, far below every bound", () => {
    for (const dir of ["examples/appliance", "examples/bgp"]) {
      for (const f of readdirSync(dir)) {
        const text = readFileSync(join(dir, f), "utf8");
        const r = prescanYaml(text);
        expect(r.ok).toBe(true);
        if (r.ok) expect(r.depth).toBeLessThan(16);
      }
    }
  });

  test("a 1 MiB set of 8,000+ real Services passes the body limits", () => {
    let s =
      "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan, namespace: metallb-system}\nspec:\n  addresses: [10.0.0.0/16]\n";
    let i = 0;
    const svc = (n: number) =>
      `---\napiVersion: v1\nkind: Service\nmetadata: {name: s${n}, namespace: default}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n`;
    while (s.length + svc(i).length <= BODY_LIMITS.maxBytes) s += svc(i++);
    expect(i).toBeGreaterThan(8000);
    expect(prescanYaml(s)).toMatchObject({ ok: true, documents: i + 1 });
  });

  test("anything the pre-scan accepts parses without a stack overflow (depth just below the limit)", () => {
    const deep = `${"[".repeat(63)}1${"]".repeat(63)}`;
    expect(prescanYaml(deep)).toMatchObject({ ok: true, depth: 64 });
    const r = configFromText(deep, "<t>");
    expect(r.ok).toBe(false); // not a manifest, but a problem with a line, not an exception
    if (!r.ok) expect(r.problems[0]?.line).toBe(1);
  });
});

describe("boundProblems", () => {
  const p = (i: number): Problem => ({ file: "f", line: i, field: "-", message: `m${i}`, pointer: "" });

  test("at most N, then one saying how many more", () => {
    const many = Array.from({ length: 1000 }, (_, i) => p(i + 1));
    const b = boundProblems(many, 200);
    expect(b.problems).toHaveLength(201);
    expect(b.omitted).toBe(800);
    expect(b.problems[199]).toEqual(p(200));
    expect(b.problems[200]).toEqual({
      file: "f",
      line: 0,
      field: "-",
      message: "and 800 more problems",
      pointer: "",
    });
    expect(boundProblems(many.slice(0, 201), 200).problems[200]?.message).toBe("and 1 more problem");
  });

  test("a list within the bound is returned whole", () => {
    const few = [p(1), p(2)];
    expect(boundProblems(few, 2)).toEqual({ problems: few, omitted: 0 });
  });
});
