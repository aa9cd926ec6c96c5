/**
 * Loading manifests: files and directories of multi-document YAML 1.2 (JSON is YAML too), each
 * document validated against its kind's schema. Every problem is one line,
 * `path:line: Kind/name: field.path: message`, pointing at the offending key or value, and says
 * what to do (the closest field for a misspelled one, the minimum for a value too small, ...).
 *
 * Read the way kubectl and the API server read manifests: `kind: List` documents hold their
 * objects in `items`, `<<` merge keys apply, null fields are absent. Unknown kinds and fields are
 * problems, never ignored; malformed YAML (syntax, unknown anchors, alias bombs) is a problem,
 * never an exception. The status kinds MetalLB writes (ConfigurationState, ServiceL2Status,
 * ServiceBGPStatus), found in a dump of a cluster, are skipped with a note, not a problem.
 *
 * Pure apart from `loadPaths`, which only reads files and hands their text to `loadText`.
 */

import { readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Document, LineCounter, type Node, parseAllDocuments } from "yaml";
import { z } from "zod";
import { type AnyObject, KINDS, type Kind, SCHEMAS } from "./schemas.ts";
import { fastDocument } from "./yaml-fast.ts";
import { splitDocuments } from "./yaml-split.ts";
import { docLines, lineOfNode, PARSE_OPTIONS, syntaxProblems } from "./yaml-tree.ts";

export { docLines, PARSE_OPTIONS } from "./yaml-tree.ts";

export type PathKey = string | number;

/** One problem with the manifests, located in its source. */
export interface Problem {
  file: string;
  line: number;
  kind?: string | undefined;
  name?: string | undefined;
  /** Dotted field path, e.g. `spec.addresses[0]`; `-` for the whole document. */
  field: string;
  message: string;
  /** RFC 6901 JSON pointer to the field within its document. */
  pointer: string;
  /** Index of the document within its file (0-based). */
  doc?: number | undefined;
}

/** A validated object, with a way to find the source line of any of its fields. */
export interface Loaded<T extends AnyObject = AnyObject> {
  kind: Kind;
  obj: T;
  file: string;
  doc: number;
  line: number;
  /** Source line of `path` (or of its deepest existing ancestor). */
  lineOf(path: readonly PathKey[]): number;
  /** Where the object sits in its document: [] for the document itself, ["items", i] in a List. */
  at?: readonly PathKey[] | undefined;
}

export interface LoadResult {
  objects: Loaded[];
  problems: Problem[];
  /** Not problems: what was read and deliberately left out (MetalLB's status objects). */
  notes: Problem[];
}

/** Kinds MetalLB writes to report state, never configuration: skipped with a note. */
export const METALLB_STATUS_KINDS: ReadonlySet<string> = new Set([
  "ConfigurationState",
  "ServiceL2Status",
  "ServiceBGPStatus",
]);

export function fieldPath(path: readonly PathKey[]): string {
  if (path.length === 0) return "-";
  let out = "";
  for (const k of path) {
    if (typeof k === "number") out += `[${k}]`;
    else if (!/^[A-Za-z_$][\w$-]*$/.test(k))
      out += `[${JSON.stringify(k)}]`; // e.g. an annotation key
    else out += out === "" ? k : `.${k}`;
  }
  return out;
}

export function jsonPointer(path: readonly PathKey[]): string {
  return path.map((k) => `/${String(k).replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");
}

const ESCAPES: Record<string, string> = { "\t": "\\t", "\n": "\\n", "\r": "\\r" };

/** The problem as one output line; control characters (from the input) are shown escaped. */
export function formatProblem(p: Problem): string {
  const who = p.kind ? `${p.kind}/${p.name || "<unnamed>"}: ` : "";
  return `${p.file}:${p.line}: ${who}${p.field}: ${p.message}`.replace(
    /[\p{Cc}\u2028\u2029]/gu,
    (c) => ESCAPES[c] ?? `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`,
  );
}

/** Orders problems by file, then line, for stable output. */
export function sortProblems(ps: Problem[]): Problem[] {
  return ps.sort((a, b) => (a.file === b.file ? a.line - b.line : a.file < b.file ? -1 : 1));
}

const EXPECTED: Record<string, string> = {
  object: "a mapping",
  array: "a list",
  int: "an integer",
  record: "a mapping",
};

/** Kinds from older MetalLB releases, with what replaced them. */
const LEGACY_KINDS: Record<string, string> = {
  AddressPool:
    ": MetalLB v0.13 replaced it with IPAddressPool (addresses, autoAssign) plus an L2Advertisement or BGPAdvertisement (protocol)",
};
const LEGACY_CONFIGMAP =
  ": MetalLB v0.13 replaced its ConfigMap with custom resources; convert it with MetalLB's configmaptocrs tool";

/** Why a kind is unknown: a kind from older MetalLB, or a near miss of a known one. */
function unknownKindHint(kind: string, rec: Record<string, unknown>): string {
  if (kind === "ConfigMap" && typeof asRecord(rec.data)?.config === "string") return LEGACY_CONFIGMAP;
  const legacy = LEGACY_KINDS[kind];
  if (legacy !== undefined) return legacy;
  const near = KINDS.map((k) => ({ k, d: distance(k, kind) })).sort((a, b) => a.d - b.d)[0];
  return near !== undefined && near.d <= Math.max(1, Math.floor(kind.length / 4))
    ? `; did you mean "${near.k}"?`
    : "";
}

/** Turns a zod issue into a message a person can act on. */
function issueMessage(iss: z.core.$ZodIssue): string {
  switch (iss.code) {
    case "invalid_type": {
      if (iss.input === undefined) return "is required";
      const custom = iss.message?.startsWith("must") ? iss.message : undefined;
      const want = custom ?? `must be ${EXPECTED[iss.expected] ?? `a ${iss.expected}`}`;
      const quote =
        iss.expected === "string" && (typeof iss.input === "number" || typeof iss.input === "boolean")
          ? " (put it in quotes)"
          : "";
      return `${want}, not ${describe(iss.input)}${quote}`;
    }
    case "invalid_value":
      if (iss.input === undefined)
        return `is required (${iss.values.map((v) => JSON.stringify(v)).join(" or ")})`;
      return iss.values.length === 1
        ? `must be ${JSON.stringify(iss.values[0])}`
        : `must be one of ${iss.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "too_small":
      if (iss.origin === "array")
        return iss.message?.startsWith("must") ? iss.message : `must have at least ${iss.minimum} item(s)`;
      if (iss.origin === "string") return iss.message?.startsWith("must") ? iss.message : `must not be empty`;
      return iss.message?.startsWith("must") ? iss.message : `must be at least ${iss.minimum}`;
    case "too_big":
      if (iss.origin === "array")
        return iss.message?.startsWith("must") ? iss.message : `must have at most ${iss.maximum} item(s)`;
      if (iss.origin === "string")
        return iss.message?.startsWith("must") ? iss.message : `must be at most ${iss.maximum} characters`;
      return iss.message?.startsWith("must") ? iss.message : `must be at most ${iss.maximum}`;
    case "invalid_key":
      return `key "${String(iss.path[iss.path.length - 1] ?? "")}" ${iss.issues[0]?.message ?? "is not allowed"}`;
    default:
      return iss.message;
  }
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return `${typeof v} ${JSON.stringify(v)}`;
}

function asRecord(v: unknown): Record<string, unknown> | null {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** The object schema at `path` inside `schema` (through optional, default and list), if any. */
function objectSchemaAt(schema: z.ZodType, path: readonly PathKey[]): z.ZodObject | undefined {
  const unwrap = (t: z.ZodType): z.ZodType =>
    t instanceof z.ZodOptional || t instanceof z.ZodDefault || t instanceof z.ZodNullable
      ? unwrap(t.unwrap() as z.ZodType)
      : t instanceof z.ZodPipe
        ? unwrap(t.in as z.ZodType)
        : t;
  let cur: z.ZodType | undefined = schema;
  for (const k of path) {
    if (cur === undefined) return undefined;
    cur = unwrap(cur);
    if (cur instanceof z.ZodObject && typeof k === "string") cur = cur.shape[k] as z.ZodType | undefined;
    else if (cur instanceof z.ZodArray && typeof k === "number") cur = cur.element as z.ZodType;
    else return undefined;
  }
  const last = cur === undefined ? undefined : unwrap(cur);
  return last instanceof z.ZodObject ? last : undefined;
}

/** Edit distance (optimal string alignment: a swap of two neighbours counts once), ignoring case. */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  const d: number[][] = Array.from({ length: x.length + 1 }, (_, i) =>
    Array.from({ length: y.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => d[i]?.[j] ?? 0;
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      let v = Math.min(
        at(i - 1, j) + 1,
        at(i, j - 1) + 1,
        at(i - 1, j - 1) + (x[i - 1] === y[j - 1] ? 0 : 1),
      );
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1])
        v = Math.min(v, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = v;
    }
  }
  return at(x.length, y.length);
}

/** "unknown field", with the closest known field or the list of known ones. */
function unknownFieldMessage(schema: z.ZodType, parent: readonly PathKey[], key: string): string {
  const obj = objectSchemaAt(schema, parent);
  if (obj === undefined) return "unknown field";
  const known = Object.keys(obj.shape);
  const best = known
    .map((k) => ({ k, d: distance(k, key) }))
    .sort((a, b) => a.d - b.d)
    .find((c) => c.d <= Math.max(1, Math.floor(key.length / 4)) || c.k.toLowerCase() === key.toLowerCase());
  return best
    ? `unknown field; did you mean "${best.k}"?`
    : `unknown field (${fieldPath(parent) === "-" ? "a manifest" : fieldPath(parent)} takes ${known.join(", ")})`;
}

/**
 * Drops mapping entries whose value is null, recursively, as the Kubernetes API server prunes them
 * before defaulting (`spec:` with nothing after it means no spec). Null list items stay (and fail).
 */
function dropNulls(v: unknown): unknown {
  if (v === null) return undefined;
  if (Array.isArray(v)) return v.map((x) => (x === null ? null : dropNulls(x)));
  if (typeof v !== "object") return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (x !== null)
      Object.defineProperty(out, k, {
        value: dropNulls(x),
        enumerable: true,
        writable: true,
        configurable: true,
      });
  }
  return out;
}

/** Whether dropNulls would drop anything (a mapping entry whose value is null, at any depth). */
function hasNullEntry(v: unknown): boolean {
  if (v === null || typeof v !== "object") return false;
  if (Array.isArray(v)) return v.some(hasNullEntry);
  for (const x of Object.values(v as Record<string, unknown>)) if (x === null || hasNullEntry(x)) return true;
  return false;
}

interface DocContext {
  file: string;
  di: number;
  /** Line of a path from the document's root. */
  docLineOf: (path: readonly PathKey[]) => number;
  /** Line of the document's root, when known without asking docLineOf (the fast path's). */
  topLine?: number | undefined;
  out: LoadResult;
}

/** Validates one object found at `at` in the document (the document itself, or a List item). */
function validateObject(value: unknown, at: PathKey[], d: DocContext): void {
  const { file, di, out } = d;
  const lineOf = (path: readonly PathKey[]) => d.docLineOf([...at, ...path]);
  const push = (path: PathKey[], message: string, kind?: string, name?: string) =>
    out.problems.push({
      file,
      line: lineOf(path),
      kind,
      name,
      field: fieldPath(path),
      message,
      pointer: jsonPointer([...at, ...path]),
      doc: di,
    });
  const rec = asRecord(value);
  if (rec === null) {
    push([], `a manifest must be a mapping with apiVersion and kind, not ${describe(value)}`);
    return;
  }
  const kind = rec.kind;
  const name =
    typeof asRecord(rec.metadata)?.name === "string" ? (asRecord(rec.metadata)?.name as string) : undefined;
  if (typeof kind !== "string") {
    push(
      ["kind"],
      `${kind === undefined ? "is required" : `must be a string, not ${describe(kind)}`} (vipd reads ${KINDS.join(", ")})`,
    );
    return;
  }
  if (kind === "List" && at.length === 0) {
    // What `kubectl get ... -o yaml` writes: the objects are its items.
    if (!Array.isArray(rec.items))
      push(["items"], rec.items === undefined ? "is required" : "must be a list");
    else for (const [i, item] of rec.items.entries()) validateObject(item, ["items", i], d);
    return;
  }
  if (
    METALLB_STATUS_KINDS.has(kind) &&
    typeof rec.apiVersion === "string" &&
    rec.apiVersion.startsWith("metallb.io/")
  ) {
    out.notes.push({
      file,
      line: lineOf([]),
      kind,
      name,
      field: "-",
      message: `note: skipped; ${kind} is status that MetalLB writes, not configuration`,
      pointer: jsonPointer(at),
      doc: di,
    });
    return;
  }
  if (!(KINDS as string[]).includes(kind)) {
    push(
      ["kind"],
      `unknown kind "${kind}"${unknownKindHint(kind, rec)} (vipd reads ${KINDS.join(", ")})`,
      kind,
      name,
    );
    return;
  }
  const k = kind as Kind;
  const res = (SCHEMAS[k] as z.ZodType).safeParse(value, { reportInput: true });
  if (!res.success) {
    for (const iss of res.error.issues) {
      const path = iss.path.filter((p): p is PathKey => typeof p !== "symbol");
      if (iss.code === "unrecognized_keys") {
        for (const key of iss.keys)
          push([...path, key], unknownFieldMessage(SCHEMAS[k] as z.ZodType, path, key), k, name);
      } else {
        push(path, issueMessage(iss), k, name);
      }
    }
    return;
  }
  let obj = res.data as AnyObject;
  if (obj.kind === "BGPPeer" && obj.apiVersion === "metallb.io/v1beta1") {
    // v1beta1 → v1beta2: the same fields; v1beta2 is the stored version.
    obj = { ...obj, apiVersion: "metallb.io/v1beta2" };
  }
  const line = at.length === 0 && d.topLine !== undefined ? d.topLine : lineOf([]);
  out.objects.push({ kind: k, obj, file, doc: di, line, lineOf, at });
}

/** Converts and validates one parsed document (without syntax errors) into `out`. */
export function loadDocument(
  doc: Document,
  lc: LineCounter,
  file: string,
  di: number,
  out: LoadResult,
): void {
  const startLine = lineOfNode((doc.contents as Node | null) ?? null, lc, 1);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    // An alias to an unknown anchor, or so many aliases that expanding them would exhaust memory.
    out.problems.push({
      file,
      line: startLine,
      field: "-",
      message: `YAML: ${(e as Error).message.split("\n")[0]}`,
      pointer: "",
      doc: di,
    });
    return;
  }
  data = dropNulls(data);
  if (data === undefined) return; // empty document (e.g. a trailing ---)
  validateObject(data, [], { file, di, docLineOf: docLines(doc, lc), out });
}

/** The lines of one document's text, from the `yaml` package's syntax tree (parsed on demand). */
export function documentLines(text: string): (path: readonly PathKey[]) => number {
  let tree: ((path: readonly PathKey[]) => number) | undefined;
  return (path) => {
    if (tree === undefined) {
      const lc = new LineCounter();
      const d = parseAllDocuments(text, { lineCounter: lc, ...PARSE_OPTIONS });
      tree = docLines((Array.isArray(d) ? d[0] : d) as Document, lc);
    }
    return tree(path);
  };
}

/** One document's results: lines counted from its text's first line, document indices from 0. */
export interface PartResult {
  result: LoadResult;
  /** Documents the text holds (0 or 1). */
  documents: number;
}

/**
 * Loads one document's text (a part from splitDocuments). The value comes from Bun's parser when
 * that is certain to give what the `yaml` package gives (src/config/yaml-fast.ts), else from the
 * `yaml` package; lines come from the `yaml` package's tree either way, parsed only when a line is
 * asked for (a problem, a note, a later check). Undefined when the text has a YAML syntax error
 * or more than one document: the caller parses the whole text (loadTextWhole).
 */
export function loadPart(text: string, file: string): PartResult | undefined {
  const result: LoadResult = { objects: [], problems: [], notes: [] };
  const fast = fastDocument(text);
  if (fast !== undefined) {
    // Bun's fresh value is used as it is when nothing is to be dropped (it has no `__proto__` key).
    const data = hasNullEntry(fast.value) ? dropNulls(fast.value) : fast.value;
    const docLineOf = documentLines(text);
    if (data !== undefined)
      validateObject(data, [], { file, di: 0, docLineOf, topLine: fast.line, out: result });
    return { result, documents: 1 };
  }
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, ...PARSE_OPTIONS });
  const list = Array.isArray(docs) ? docs : [docs];
  if (list.length > 1 || list.some((d) => d.errors.length > 0)) return undefined;
  if (list[0] !== undefined) loadDocument(list[0], lc, file, 0, result);
  return { result, documents: list.length };
}

/** A problem moved down by `lines` lines and `docs` documents. */
export const shiftProblem = (p: Problem, lines: number, docs: number): Problem => ({
  ...p,
  line: p.line + lines,
  ...(p.doc !== undefined ? { doc: p.doc + docs } : {}),
});

/** Parses and validates one file's text with the `yaml` package alone, all documents at once. */
export function loadTextWhole(text: string, file: string): LoadResult {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, ...PARSE_OPTIONS });
  const out: LoadResult = { objects: [], problems: [], notes: [] };
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, di) => {
    if (doc.errors.length > 0) out.problems.push(...syntaxProblems(doc, text, lc, file, di));
    else loadDocument(doc, lc, file, di, out);
  });
  return out;
}

/**
 * Parses and validates one file's text. `file` is only used in messages. Document by document
 * (loadPart) when the text splits at its `---` lines; the whole text at once (loadTextWhole) when
 * it does not, or a document has a syntax error — the same results either way.
 */
export function loadText(text: string, file: string): LoadResult {
  const parts = splitDocuments(text);
  if (parts === undefined) return loadTextWhole(text, file);
  const out: LoadResult = { objects: [], problems: [], notes: [] };
  let di = 0;
  for (const part of parts) {
    const r = loadPart(part.text, file);
    if (r === undefined) return loadTextWhole(text, file);
    const lines = part.line - 1;
    for (const o of r.result.objects) {
      const own = o.lineOf;
      out.objects.push({ ...o, doc: o.doc + di, line: o.line + lines, lineOf: (p) => own(p) + lines });
    }
    for (const p of r.result.problems) out.problems.push(shiftProblem(p, lines, di));
    for (const p of r.result.notes) out.notes.push(shiftProblem(p, lines, di));
    di += r.documents;
  }
  return out;
}

/** Lists manifest files: the files given, and *.yaml / *.yml / *.json under directories (sorted). */
export function manifestFiles(paths: readonly string[]): { files: string[]; problems: Problem[] } {
  const files: string[] = [];
  const problems: Problem[] = [];
  // Real paths already seen: a file named twice (or inside a directory also named) is read once,
  // and a symbolic link back to a parent directory does not loop.
  const seen = new Set<string>();
  const problem = (file: string, message: string) =>
    problems.push({ file, line: 0, field: "-", message, pointer: "" });
  const walk = (p: string, top: boolean) => {
    let st: ReturnType<typeof statSync>;
    let real: string;
    try {
      st = statSync(p);
      real = realpathSync(p);
    } catch {
      problem(p, "no such file or directory");
      return;
    }
    if (seen.has(real)) return;
    seen.add(real);
    if (st.isDirectory()) {
      let entries: string[];
      try {
        entries = readdirSync(p).sort();
      } catch (e) {
        problem(p, `cannot read directory: ${(e as Error).message}`);
        return;
      }
      for (const e of entries) {
        if (e.startsWith(".")) continue;
        walk(join(p, e), false);
      }
    } else if (top || /\.(ya?ml|json)$/.test(p)) {
      files.push(p);
    }
  };
  for (const p of paths) walk(p, true);
  return { files, problems };
}

/** Reads and validates files and directories. Reads only; touches nothing else. */
export function loadPaths(paths: readonly string[]): LoadResult {
  const { files, problems } = manifestFiles(paths);
  const objects: Loaded[] = [];
  const notes: Problem[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, "utf8");
    } catch (e) {
      problems.push({
        file: f,
        line: 0,
        field: "-",
        message: `cannot read: ${(e as Error).message}`,
        pointer: "",
      });
      continue;
    }
    const r = loadText(text, f);
    objects.push(...r.objects);
    problems.push(...r.problems);
    notes.push(...r.notes);
  }
  return { objects, problems, notes };
}
