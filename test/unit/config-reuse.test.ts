/**
 * Per-document reuse on reload (src/config/load-reuse.ts loadTextReusing, used by the body worker for
 * the manifest files): over random edit sequences (fast-check, fixed seed) — a document changed,
 * added, removed or moved, comments and blank lines added before it, syntax and schema errors
 * coming and going — one long-lived DocumentCache gives the same objects (with the same lines of
 * their fields), problems and notes as a fresh full parse, and the same Config and plan.
 */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { configFromText, DocumentCache } from "../../src/config/index.ts";
import { type LoadResult, loadText, type PathKey } from "../../src/config/load.ts";
import { loadTextReusing, splitDocuments } from "../../src/config/load-reuse.ts";
import { allocate, emptyAllocation } from "../../src/plan/allocate.ts";
import { type NodeInfo, Planner } from "../../src/plan/plan.ts";

const SEED = 20261202;
/** The shared CI machine can be many times slower than a quiet one. */
const SLOW = 120_000;

const POOL = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan, namespace: metallb-system }
spec:
  addresses: ["10.0.0.0/24"]
`;
const L2 = `apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: l2
  namespace: metallb-system
spec:
  ipAddressPools: [lan]
`;

/** A document's body (what follows its `---` line), by kind of fragment. */
const fragment = fc.oneof(
  // A valid Service, block or flow style, sometimes with extra lines.
  fc
    .record({
      name: fc.constantFrom("a", "b", "c", "d", "e"),
      app: fc.constantFrom("web", "db"),
      lines: fc.nat(3),
      flow: fc.boolean(),
    })
    .map(({ name, app, lines, flow }) =>
      flow
        ? `{apiVersion: v1, kind: Service, metadata: {name: ${name}, namespace: ns, labels: {app: ${app}}}, spec: {type: LoadBalancer, ports: [{port: 80}]}}\n`
        : `apiVersion: v1\nkind: Service\n${"# note\n".repeat(lines)}metadata:\n  name: ${name}\n  namespace: ns\n  labels: { app: ${app} }\nspec:\n  type: LoadBalancer\n  ports:\n    - port: 80\n`,
    ),
  // Schema errors: a port out of range, an unknown field, an unknown kind, a pool that does not exist.
  fc
    .constantFrom("a", "f")
    .map(
      (n) =>
        `apiVersion: v1\nkind: Service\nmetadata: { name: ${n}, namespace: ns }\nspec:\n  ports: [{ port: 99999 }]\n`,
    ),
  fc.constant("apiVersion: v1\nkind: Service\nmetadata: { name: g, namespace: ns }\nspce: {}\n"),
  fc.constant("apiVersion: v1\nkind: Servce\nmetadata: { name: h }\n"),
  fc.constant(
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: i\n  namespace: ns\n  annotations: { metallb.io/address-pool: nope }\nspec: { type: LoadBalancer }\n",
  ),
  // A YAML syntax error, an empty document, comments only, a List, a status object (a note).
  fc.constant("a: [1, 2\nb: 3\n"),
  fc.constant(""),
  fc.constant("# only a comment\n\n"),
  fc.constant(
    "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Service\n    metadata: { name: j, namespace: ns }\n    spec: { type: LoadBalancer }\n",
  ),
  fc.constant("apiVersion: metallb.io/v1beta1\nkind: ServiceL2Status\nmetadata: { name: s }\nstatus: {}\n"),
  fc.constant(POOL),
  fc.constant(L2),
);

/** How a document is introduced: the `---` line's spelling, leading comments. */
const opener = fc.constantFrom("---\n", "--- \n", "---\r\n", "# before\n---\n", "\n---\n");

const edit = fc.oneof(
  fc.record({ op: fc.constant("set" as const), at: fc.nat(), doc: fragment, open: opener }),
  fc.record({ op: fc.constant("add" as const), at: fc.nat(), doc: fragment, open: opener }),
  fc.record({ op: fc.constant("remove" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("move" as const), at: fc.nat(), to: fc.nat() }),
  fc.record({ op: fc.constant("lead" as const), text: fc.constantFrom("", "# head\n", "\n\n# head\n\n") }),
);

interface Doc {
  open: string;
  body: string;
}

function textOf(lead: string, docs: readonly Doc[]): string {
  return (
    lead +
    docs.map((d, i) => (i === 0 && lead === "" && d.open === "---\n" ? d.body : d.open + d.body)).join("")
  );
}

const PATHS: PathKey[][] = [
  [],
  ["metadata", "name"],
  ["spec", "type"],
  ["spec", "ports", 0, "port"],
  ["nope"],
];

/** The result with each object's field lines read out (lineOf is a function). */
function plain(r: LoadResult) {
  return {
    objects: r.objects.map((l) => ({
      kind: l.kind,
      obj: l.obj,
      file: l.file,
      doc: l.doc,
      line: l.line,
      at: l.at,
      lines: PATHS.map((p) => l.lineOf(p)),
    })),
    problems: r.problems,
    notes: r.notes,
  };
}

describe("per-document reuse gives what a full parse gives", () => {
  test(
    "random edit sequences: objects, lines, problems, notes, Config and plan",
    () => {
      const nodes: NodeInfo[] = ["n1", "n2"].map((name) => ({ name, labels: {} }));
      fc.assert(
        fc.property(
          fc.array(fc.record({ doc: fragment, open: opener }), { minLength: 0, maxLength: 6 }),
          fc.array(edit, { minLength: 1, maxLength: 12 }),
          (initial, edits) => {
            const cache = new DocumentCache();
            const configCache = new DocumentCache();
            const docs: Doc[] = initial.map((d) => ({ open: d.open, body: d.doc }));
            let lead = "";
            const check = () => {
              const text = textOf(lead, docs);
              expect(plain(loadTextReusing(text, "f.yaml", cache))).toEqual(plain(loadText(text, "f.yaml")));
              const full = configFromText(text, "f.yaml");
              const reused = configFromText(text, "f.yaml", configCache);
              expect(reused).toEqual(full);
              if (full.ok && reused.ok) {
                const a = allocate(full.config, emptyAllocation());
                const b = allocate(reused.config, emptyAllocation());
                expect(b.assignments).toEqual(a.assignments);
                const pa = new Planner().plan(full.config, a.assignments, nodes[0] as NodeInfo, nodes);
                const pb = new Planner().plan(reused.config, b.assignments, nodes[0] as NodeInfo, nodes);
                expect(pb).toEqual(pa);
              }
            };
            check();
            for (const e of edits) {
              const n = docs.length;
              if (e.op === "set" && n > 0) docs[e.at % n] = { open: e.open, body: e.doc };
              else if (e.op === "add") docs.splice(e.at % (n + 1), 0, { open: e.open, body: e.doc });
              else if (e.op === "remove" && n > 0) docs.splice(e.at % n, 1);
              else if (e.op === "move" && n > 1) {
                const [d] = docs.splice(e.at % n, 1);
                docs.splice(e.to % n, 0, d as Doc);
              } else if (e.op === "lead") lead = e.text;
              check();
            }
          },
        ),
        { seed: SEED, numRuns: 80 },
      );
    },
    SLOW,
  );

  test("an unchanged document is reused, and its error line follows an earlier document's growth", () => {
    const bad =
      "---\napiVersion: v1\nkind: Service\nmetadata: { name: bad, namespace: ns }\nspec:\n  ports: [{ port: 99999 }]\n";
    const cache = new DocumentCache();
    const first = loadTextReusing(`${POOL}${bad}`, "f.yaml", cache);
    expect(first.problems.map((p) => [p.line, p.field])).toEqual([[11, "spec.ports[0].port"]]);
    expect(cache.last).toEqual({ parsed: 2, reused: 0, whole: false });
    // Three lines more in the first document: the second is reused, its problem three lines lower.
    const grown = POOL.replace("spec:\n", "# one\n# two\n# three\nspec:\n");
    const second = loadTextReusing(`${grown}${bad}`, "f.yaml", cache);
    expect(cache.last).toEqual({ parsed: 1, reused: 1, whole: false });
    expect(second.problems.map((p) => [p.line, p.field])).toEqual([[14, "spec.ports[0].port"]]);
    expect(second.problems).toEqual(loadText(`${grown}${bad}`, "f.yaml").problems);
  });

  test("a cross-object problem in a reused document points at its line (the document is parsed again for it)", () => {
    const svc = (name: string) =>
      `---\napiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  namespace: ns\nspec: { type: LoadBalancer }\n`;
    const cache = new DocumentCache();
    configFromText(`${POOL}${svc("a")}${svc("b")}`, "f.yaml", cache);
    // The first Service is renamed to the second's name: the duplicate is the reused document.
    const text = `# moved\n${POOL}${svc("b")}${svc("b")}`;
    const r = configFromText(text, "f.yaml", cache);
    expect(cache.last.reused).toBe(2);
    expect(r).toEqual(configFromText(text, "f.yaml"));
    expect(r.ok ? [] : r.problems.map((p) => [p.line, p.message])).toEqual([
      [18, 'duplicate Service "b" (first defined at line 11); rename one'],
    ]);
  });

  test("texts the lines alone cannot split are parsed whole", () => {
    expect(splitDocuments("%YAML 1.2\n---\na: 1\n")).toBeUndefined();
    expect(splitDocuments("a: 1\n...\n---\nb: 2\n")).toBeUndefined();
    expect(splitDocuments("\uFEFFa: 1\n")).toBeUndefined();
    const cache = new DocumentCache();
    const text = `${POOL}...\n---\n${L2}`;
    expect(plain(loadTextReusing(text, "f.yaml", cache))).toEqual(plain(loadText(text, "f.yaml")));
    expect(cache.last.whole).toBe(true);
    // A syntax error anywhere: the whole text, as loadText reads it.
    const broken = `${POOL}---\na: "open\n---\n${L2}`;
    expect(plain(loadTextReusing(broken, "f.yaml", cache))).toEqual(plain(loadText(broken, "f.yaml")));
    expect(cache.last.whole).toBe(true);
  });

  test("splitDocuments: markers at column 0 followed by a blank or the end; leading comments join the first", () => {
    expect(splitDocuments("# c\n\n---\na: 1\n---\nb: 2\n--- \n----\n---")).toEqual([
      { text: "# c\n\n---\na: 1\n", line: 1 },
      { text: "---\nb: 2\n", line: 5 },
      { text: "--- \n----\n", line: 7 },
      { text: "---", line: 9 },
    ]);
    expect(splitDocuments("a: 1\n---\nb: ---x\n ---\n")).toEqual([
      { text: "a: 1\n", line: 1 },
      { text: "---\nb: ---x\n ---\n", line: 2 },
    ]);
    expect(splitDocuments("")).toEqual([{ text: "", line: 1 }]);
  });
});
