/**
 * The fast path (src/config/yaml-fast.ts: Bun.YAML.parse on a plain subset) against the `yaml`
 * package as vipd configures it. Over random documents (fast-check, fixed seed) built from the
 * constructs where the two parsers differ or could — duplicate keys, `null:` / `~:` keys, signed
 * and unsigned hexadecimal and octal, `.inf`, YAML 1.1 booleans and directives, timestamps, large
 * integers, tags, anchors, aliases, merge keys, explicit and collection keys, block and multi-line
 * scalars, quoted strings and escapes, flow collections, comments, BOM, CRLF, tabs, bad
 * indentation — whenever the fast path takes a document its value and first line are the yaml
 * package's. Then whole manifests: `loadText` (document by document, fast path where it can)
 * gives the same objects (and lines of their fields), problems and notes, and the same Config, as
 * `loadTextWhole` (the yaml package alone).
 */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { LineCounter, parseAllDocuments } from "yaml";
import { configFromText } from "../../src/config/index.ts";
import { type LoadResult, loadText, loadTextWhole, type PathKey } from "../../src/config/load.ts";
import { buildConfig } from "../../src/config/validate.ts";
import { fastDocument, safeWord } from "../../src/config/yaml-fast.ts";
import { splitDocuments } from "../../src/config/yaml-split.ts";
import { docLines, PARSE_OPTIONS } from "../../src/config/yaml-tree.ts";

const SEED = 20261203;
const SLOW = 120_000;

/** What the yaml package makes of one document: its value, or undefined (error, not one doc). */
function reference(text: string): { value: unknown; line: number } | undefined {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, ...PARSE_OPTIONS });
  const list = Array.isArray(docs) ? docs : [docs];
  const doc = list[0];
  if (list.length !== 1 || doc === undefined || doc.errors.length > 0) return undefined;
  try {
    return { value: doc.toJS({ maxAliasCount: 100 }), line: docLines(doc, lc)([]) };
  } catch {
    return undefined;
  }
}

/** The first PLAIN of these are in the subset the fast path takes. */
const PLAIN = 43;
const SCALARS = [
  "x",
  "web-1",
  "LoadBalancer",
  "yes",
  "no",
  "on",
  "off",
  "y",
  "n",
  "True",
  "FALSE",
  "tRue",
  "null",
  "Null",
  "~",
  "",
  "0",
  "80",
  "080",
  "017",
  "1.5",
  "-7",
  "10.0.0.1",
  "10.0.0.0/24",
  "10.0.0.1-10.0.0.9",
  "fd00::1",
  "2001-12-14",
  "a#b",
  "x # comment",
  "a, b",
  "'it''s'",
  "'x: y'",
  '"dq"',
  "'multi\n  line'",
  '"multi\n\n  line"',
  "plain\n  continued",
  "[1, 2, x]",
  "[ ]",
  "{a: 1, b: [x]}",
  "{a: 1,}",
  "Infinity",
  "NaN",
  "http://x:80/p",
  // Outside the subset from here on.
  "x",
  "web-1",
  "LoadBalancer",
  "yes",
  "no",
  "on",
  "off",
  "y",
  "n",
  "True",
  "FALSE",
  "tRue",
  "null",
  "Null",
  "~",
  "",
  "0",
  "80",
  "080",
  "017",
  "0o17",
  "0x1F",
  "+0x1",
  "-0x1",
  "-0o7",
  "0b101",
  "1e3",
  "1E3",
  "1e400",
  "1.5",
  "1.",
  ".5",
  "-0",
  "+1",
  "-7",
  "1_000",
  ".inf",
  "-.Inf",
  ".NaN",
  "Infinity",
  "NaN",
  "2001-12-14",
  "2001-12-14T21:59:43.10-05:00",
  "12:30:00",
  "123456789012345678901234567890",
  "9007199254740993",
  "10.0.0.1",
  "10.0.0.0/24",
  "10.0.0.1-10.0.0.9",
  "fd00::1",
  "fd00::",
  "http://x:80/p",
  "a#b",
  "x # comment",
  "a, b",
  "'it''s'",
  "'x: y'",
  '"dq"',
  '"esc\\x41\\n"',
  '"a\\\n  b"',
  "'multi\n  line'",
  '"multi\n\n  line"',
  "plain\n  continued",
  "!!binary aGVsbG8=",
  '!!int "3"',
  "!!str 3",
  "!local x",
  "&a x",
  "*a",
  "|\n  literal\n",
  ">-\n  folded\n  text\n",
  "[1, 2, x]",
  "[ ]",
  "{a: 1, b: [x]}",
  "{a, b}",
  "{a: 1, a: 2}",
  "[a: 1]",
  "{a: 1,}",
  "a: b",
  "-",
  "- x",
  "@x",
  "`x`",
  "%x",
  "é",
  "x\u00a0y",
  "x\u2028y",
  "{a: 1}: x",
];

const PLAIN_KEYS = 8;
const KEYS = [
  "a",
  "b",
  "name",
  "x.y/z",
  '"a"',
  "'b'",
  "kind",
  "spec",
  // Outside the subset (or duplicates) from here on.
  "a",
  "b",
  "name",
  "a",
  "b",
  "x.y/z",
  "null",
  "~",
  "true",
  "1",
  "01",
  "0x1",
  '"a"',
  "'b'",
  '""',
  "a b",
  "__proto__",
  "<<",
  "? a",
  "[a]",
  "é",
  "-a",
];

interface Node {
  t: "s" | "m" | "q";
  s?: string;
  entries?: [string, Node][];
  items?: Node[];
  flow?: boolean;
}

/** Mostly values in the subset (the property must not hold only vacuously), some outside it. */
const scalar = fc
  .oneof(
    { weight: 4, arbitrary: fc.constantFrom(...SCALARS.slice(0, PLAIN)) },
    { weight: 1, arbitrary: fc.constantFrom(...SCALARS) },
  )
  .map((s): Node => ({ t: "s", s }));
const key = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...KEYS.slice(0, PLAIN_KEYS)) },
  { weight: 1, arbitrary: fc.constantFrom(...KEYS) },
);

const node: fc.Memo<Node> = fc.memo((d) =>
  d <= 1
    ? scalar
    : fc.oneof(
        { weight: 3, arbitrary: scalar },
        fc
          .record({ entries: fc.array(fc.tuple(key, node(d - 1)), { maxLength: 4 }), flow: fc.boolean() })
          .map(({ entries, flow }): Node => ({ t: "m", entries, flow })),
        fc
          .record({ items: fc.array(node(d - 1), { maxLength: 3 }), flow: fc.boolean() })
          .map(({ items, flow }): Node => ({ t: "q", items, flow })),
      ),
);

const sp = (n: number) => " ".repeat(n);

function flowText(n: Node): string {
  if (n.t === "s") return n.s ?? "";
  if (n.t === "m") return `{${(n.entries ?? []).map(([k, v]) => `${k}: ${flowText(v)}`).join(", ")}}`;
  return `[${(n.items ?? []).map(flowText).join(", ")}]`;
}

/** The value part after `key:` or `- ` at indentation `ind`. */
function valueText(n: Node, ind: number, step: number): string {
  if (n.t === "s") return ` ${(n.s ?? "").replaceAll("\n", `\n${sp(ind + step)}`)}`;
  if (n.flow || (n.entries ?? n.items ?? []).length === 0) return ` ${flowText(n)}`;
  return `\n${blockText(n, ind + step, step)}`;
}

function blockText(n: Node, ind: number, step: number): string {
  if (n.t === "m")
    return (n.entries ?? []).map(([k, v]) => `${sp(ind)}${k}:${valueText(v, ind, step)}\n`).join("");
  if (n.t === "q") return (n.items ?? []).map((v) => `${sp(ind)}-${valueText(v, ind, step)}\n`).join("");
  return `${sp(ind)}${n.s}\n`;
}

/** Whole-text changes: a directive, a BOM, CRLF, tabs, a line's indentation off by one, comments. */
const mutation = fc.oneof(
  { weight: 5, arbitrary: fc.constant("none") },
  { weight: 3, arbitrary: fc.constantFrom("directive", "bom", "crlf", "tab", "indent", "comments") },
);

function mutate(text: string, m: string, at: number): string {
  const lines = text.split("\n");
  const i = lines.length > 1 ? at % (lines.length - 1) : 0;
  switch (m) {
    case "directive":
      return `%YAML 1.1\n---\n${text}`;
    case "bom":
      return `\uFEFF${text}`;
    case "crlf":
      return text.replaceAll("\n", "\r\n");
    case "tab":
      return text.replace(/: /, ":\t");
    case "indent":
      lines[i] = at % 2 === 0 ? ` ${lines[i]}` : (lines[i] ?? "").replace(/^ /, "");
      return lines.join("\n");
    case "comments":
      lines.splice(i, 0, "# a comment", "", "  # indented comment");
      return `# leading\n\n${lines.join("\n")}`;
    default:
      return text;
  }
}

const document = fc
  .record({
    entries: fc.array(fc.tuple(key, node(3)), { minLength: 1, maxLength: 5 }),
    flow: fc.boolean(),
    step: fc.integer({ min: 1, max: 3 }),
    m: mutation,
    at: fc.nat(50),
    marker: fc.boolean(),
  })
  .map(({ entries, flow, step, m, at, marker }) => {
    const top: Node = { t: "m", entries, flow: flow && entries.length < 3 };
    const body = top.t === "m" && !top.flow ? blockText(top, 0, step) : `${flowText(top)}\n`;
    return mutate(`${marker ? "---\n" : ""}${body}`, m, at);
  });

describe("fast path (Bun.YAML.parse) against the yaml package", () => {
  test("the differences found: each is refused", () => {
    for (const t of [
      "a: 1\na: 2\n",
      "a: 1\n'a': 2\n",
      "{a: 1, a: 2}\n",
      "1: a\n01: b\n",
      "null: 1\n",
      "~: 1\n",
      "a: +0x1\n",
      "a: -0x1\n",
      "%YAML 1.1\n---\na: yes\n",
      "? [a]\n: 1\n",
      "a: !!binary aGVsbG8=\n",
      'a: !!int "3"\n',
      "a: &x 1\nb: *x\n",
      "a: {p: 1}\nb:\n  <<: {q: 2}\n",
      "a: |\n  x\n",
      "# only a comment\n",
      "",
      "- a\n",
      "{a, b: 1}\n",
      "a:\n  b: 1\n c: 2\n",
    ])
      expect(fastDocument(t)).toBeUndefined();
  });

  test("plain manifests take it", () => {
    const svc =
      "---\napiVersion: v1\nkind: Service\nmetadata: { name: svc-1, namespace: ns-1, labels: { app: a1 } }\nspec:\n  type: LoadBalancer\n  ports: [{ port: 80 }]\n";
    expect(fastDocument(svc)?.line).toBe(2);
    expect(
      fastDocument("# c\n\n  # d\nkind: x\nspec:\n  addresses:\n    - 10.0.0.0/24\n    - fd00::/120\n")?.line,
    ).toBe(4);
  });

  test("words: numbers only in forms both read alike", () => {
    for (const w of [
      "x",
      "web-1",
      "80",
      "0",
      "-7",
      "1.5",
      "10.0.0.1",
      "10.0.0.0/24",
      "2001-12-14",
      "fd00::1",
      "~",
    ])
      expect(safeWord(w)).toBe(true);
    for (const w of [
      "+1",
      ".5",
      "0x1F",
      "1e3",
      "1.",
      ".inf",
      "1_000",
      "0o17",
      "-0",
      "-0x1",
      "1234567890123456",
    ])
      expect(safeWord(w)).toBe(false);
  });

  test(
    "whenever it takes a document, its value and first line are the yaml package's",
    () => {
      let taken = 0;
      fc.assert(
        fc.property(document, (text) => {
          const fast = fastDocument(text);
          if (fast === undefined) return;
          taken++;
          const ref = reference(text);
          expect(ref).toBeDefined();
          expect(fast.value).toStrictEqual(ref?.value as Record<string, unknown>);
          expect(fast.line).toBe(ref?.line as number);
        }),
        { seed: SEED, numRuns: 4000 },
      );
      // The property must not hold vacuously.
      expect(taken).toBeGreaterThan(600);
    },
    SLOW,
  );
});

/** Service documents with holes for tricky values and extra fields. */
const manifestDoc = fc
  .record({
    name: fc.constantFrom("a", "b", "c", "null", "yes", "0x1", "'q'", "+0x1", "a"),
    port: fc.constantFrom("80", "0x50", "+0x50", "080", "'80'", "1e2", "!!int 80", "99999", "80.0", "~"),
    ip: fc.constantFrom("", "10.0.0.7", "'10.0.0.7'", "10.0.0.256", "&ip 10.0.0.8", "0x0a000001"),
    labels: fc.array(
      fc.tuple(
        fc.constantFrom("app", "tier", "app", "null", "~", "<<", "x.io/y"),
        fc.constantFrom("web", "yes", "on", "1", "*ip", "{a: b}"),
      ),
      { maxLength: 3 },
    ),
    flow: fc.boolean(),
    extra: fc.constantFrom("", "", "spce: {}\n", "spec: {}\n", "status: {}\n", "kind: Service\n"),
    kind: fc.constantFrom("Service", "Service", "Service", "Servce", "ServiceL2Status", "List"),
    m: mutation,
    at: fc.nat(30),
  })
  .map(({ name, port, ip, labels, flow, extra, kind, m, at }) => {
    const lab = labels.map(([k, v]) => `${k}: ${v}`);
    const body =
      kind === "List"
        ? `apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Service\n    metadata: { name: ${name}, namespace: ns }\n    spec: { type: LoadBalancer, ports: [{ port: ${port} }] }\n`
        : `apiVersion: ${kind === "ServiceL2Status" ? "metallb.io/v1beta1" : "v1"}\nkind: ${kind}\nmetadata:\n  name: ${name}\n  namespace: ns\n${
            flow
              ? `  labels: {${lab.join(", ")}}\n`
              : lab.length > 0
                ? `  labels:\n${lab.map((l) => `    ${l}\n`).join("")}`
                : ""
          }spec:\n  type: LoadBalancer\n${ip === "" ? "" : `  loadBalancerIP: ${ip}\n`}  ports:\n    - port: ${port}\n${extra}`;
    return mutate(body, m, at);
  });

const POOL =
  "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: { name: lan, namespace: metallb-system }\nspec:\n  addresses: [10.0.0.0/24]\n";

const manifest = fc
  .record({
    docs: fc.array(manifestDoc, { minLength: 1, maxLength: 6 }),
    lead: fc.constantFrom("", "---\n", "# c\n"),
  })
  .map(({ docs, lead }) => `${lead}${POOL}${docs.map((d) => `---\n${d}`).join("")}`);

const PATHS: readonly PathKey[][] = [
  [],
  ["metadata", "name"],
  ["spec", "ports", 0, "port"],
  ["spec", "loadBalancerIP"],
  ["metadata", "labels", "app"],
  ["nope"],
];

function shape(r: LoadResult) {
  return {
    objects: r.objects.map((o) => ({ ...o, lineOf: PATHS.map((p) => o.lineOf(p)) })),
    problems: r.problems,
    notes: r.notes,
  };
}

describe("loadText (document by document, fast path) against loadTextWhole (the yaml package)", () => {
  test(
    "same objects and lines of their fields, problems, notes and Config",
    () => {
      let taken = 0;
      let refused = 0;
      fc.assert(
        fc.property(manifest, (text) => {
          for (const p of splitDocuments(text) ?? []) {
            if (fastDocument(p.text) === undefined) refused++;
            else taken++;
          }
          const fast = loadText(text, "m.yaml");
          const full = loadTextWhole(text, "m.yaml");
          expect(shape(fast)).toStrictEqual(shape(full));
          const a = buildConfig(fast.objects, { invalid: fast.problems });
          const b = buildConfig(full.objects, { invalid: full.problems });
          expect(a.problems).toStrictEqual(b.problems);
          expect(a.config).toStrictEqual(b.config);
        }),
        { seed: SEED, numRuns: 1500 },
      );
      expect(taken).toBeGreaterThan(800);
      expect(refused).toBeGreaterThan(800);
    },
    SLOW,
  );

  test("a duplicate definition points at the other object's exact line", () => {
    const svc = (pad: string) =>
      `apiVersion: v1\nkind: Service\n${pad}metadata:\n  name: a\n  namespace: ns\nspec:\n  type: LoadBalancer\n  ports: [{ port: 80 }]\n`;
    const text = `${POOL}---\n${svc("# c\n\n")}---\n${svc("")}`;
    const r = configFromText(text, "m.yaml");
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => `${p.line}: ${p.message}`)).toEqual([
      '21: duplicate Service "a" (first defined at line 12); rename one',
    ]);
  });
});
