/**
 * Per-document reuse on reload (used by the file worker, src/api/body-worker.ts): a text is split
 * at its `---` lines, and a document whose text is unchanged since the last load is neither parsed
 * nor validated again; its problems and lines shift with the documents before it. Equal to a
 * whole `loadText` of the same text (test/unit/config-reuse.test.ts).
 */

import { type Document, LineCounter, parseAllDocuments } from "yaml";
import {
  docLines,
  type LoadResult,
  loadDocument,
  loadText,
  PARSE_OPTIONS,
  type PathKey,
  type Problem,
} from "./load.ts";
import type { AnyObject, Kind } from "./schemas.ts";

/** One document of a text: its text (from its `---` line) and the line it starts at (1-based). */
export interface DocumentText {
  text: string;
  line: number;
}

const CONTENT_LINE = /^[ \t]*[^ \t\r\n#]/m;

/**
 * Splits a multi-document text at its `---` lines (column 0, then a space, a tab or the line's
 * end), without parsing: each part parses to the documents the whole text holds there. Undefined
 * when that is not certain from the lines alone — a directive (`%`), a document end marker
 * (`...`) or a byte order mark anywhere — so the caller parses the whole text. Leading lines
 * without content (comments) belong to the first document, as the parser reads them.
 */
export function splitDocuments(text: string): DocumentText[] | undefined {
  if (text.includes("\uFEFF") || /^(?:%|\.\.\.(?:[ \t\r\n]|$))/m.test(text)) return undefined;
  const marker = (i: number): boolean => {
    if (!text.startsWith("---", i)) return false;
    const c = text.charCodeAt(i + 3);
    return Number.isNaN(c) || c === 32 || c === 9 || c === 10 || c === 13;
  };
  const next = (from: number): number => {
    for (let j = text.indexOf("\n---", from); j >= 0; j = text.indexOf("\n---", j + 1))
      if (marker(j + 1)) return j + 1;
    return -1;
  };
  const parts: DocumentText[] = [];
  let start = 0;
  let startLine = 1;
  let line = 1;
  let counted = 0;
  for (let i = marker(0) ? 0 : next(0); i >= 0; i = next(i + 3)) {
    if (i === 0) continue;
    for (let j = text.indexOf("\n", counted); j >= 0 && j < i; j = text.indexOf("\n", j + 1)) line++;
    counted = i;
    const piece = text.slice(start, i);
    // Comments and blank lines before the first marker open the first document.
    if (parts.length > 0 || CONTENT_LINE.test(piece)) {
      parts.push({ text: piece, line: startLine });
      start = i;
      startLine = line;
    }
  }
  parts.push({ text: text.slice(start), line: startLine });
  return parts;
}

/** What one document gave, kept for reuse: lines counted from the document's first line. */
interface ReusedDocument {
  objects: { kind: Kind; obj: AnyObject; line: number; at: readonly PathKey[] | undefined; di: number }[];
  problems: Problem[];
  notes: Problem[];
  /** Documents the text holds (0 or 1). */
  documents: number;
}

/**
 * Per-document results of earlier calls, for `loadTextReusing`: keyed by source name and the
 * document's text (two hashes and its length), so an unchanged document is neither parsed nor
 * validated again. Holds the validated objects (no syntax tree): a line is found, when a later
 * check asks for one, by parsing that one document again. Keeps only the last call's documents.
 */
export class DocumentCache {
  private entries = new Map<string, ReusedDocument>();
  /** The last call: documents parsed, documents reused, and whether the whole text was parsed. */
  last = { parsed: 0, reused: 0, whole: false };

  /** @internal */
  take(): Map<string, ReusedDocument> {
    return this.entries;
  }

  /** @internal */
  keep(entries: Map<string, ReusedDocument>): void {
    this.entries = entries;
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries = new Map();
  }
}

const docKey = (file: string, text: string): string =>
  `${file}\u0000${Bun.hash.wyhash(text)}:${Bun.hash.crc32(text)}:${text.length}`;

const shift = (p: Problem, lines: number, docs: number): Problem => ({
  ...p,
  line: p.line + lines,
  ...(p.doc !== undefined ? { doc: p.doc + docs } : {}),
});

/**
 * The first call with a cache (nothing to reuse): the whole text parsed at once, as `loadText`
 * does — its memory peak is a third lower than parsing the parts one by one, and a long-lived
 * worker keeps what its heap grew to — with each part's results kept. Undefined (parse it whole,
 * keep nothing) when a document has a syntax error or the documents do not fall one to a part.
 */
function loadTextSeeding(
  text: string,
  file: string,
  parts: readonly DocumentText[],
  cache: DocumentCache,
): LoadResult | undefined {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, ...PARSE_OPTIONS });
  const list = Array.isArray(docs) ? docs : [docs];
  if (list.some((d) => d.errors.length > 0)) return undefined;
  const starts: number[] = [];
  let off = 0;
  for (const p of parts) {
    starts.push(off);
    off += p.text.length;
  }
  const partOf = (o: number): number => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] as number) <= o) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const per = parts.map(() => ({
    result: { objects: [], problems: [], notes: [] } as LoadResult,
    di: -1,
    n: 0,
  }));
  const out: LoadResult = { objects: [], problems: [], notes: [] };
  for (const [di, doc] of list.entries()) {
    const at = per[partOf(doc.range?.[0] ?? 0)] as (typeof per)[number];
    if (at.n > 0) return undefined;
    at.n++;
    at.di = di;
    const before = { o: out.objects.length, p: out.problems.length, n: out.notes.length };
    loadDocument(doc, lc, file, di, out);
    at.result = {
      objects: out.objects.slice(before.o),
      problems: out.problems.slice(before.p),
      notes: out.notes.slice(before.n),
    };
  }
  const now = new Map<string, ReusedDocument>();
  parts.forEach((part, i) => {
    const { result, di, n } = per[i] as (typeof per)[number];
    const lines = part.line - 1;
    now.set(docKey(file, part.text), {
      objects: result.objects.map((l) => ({
        kind: l.kind,
        obj: l.obj,
        line: l.line - lines,
        at: l.at,
        di: 0,
      })),
      problems: result.problems.map((p) => shift(p, -lines, -di)),
      notes: result.notes.map((p) => shift(p, -lines, -di)),
      documents: n,
    });
  });
  cache.keep(now);
  cache.last = { parsed: parts.length, reused: 0, whole: false };
  return out;
}

/**
 * `loadText`, reusing the results of documents unchanged since the last call with the same
 * cache: the same objects, problems and notes, at the same lines, as `loadText` gives. The text
 * is split at its `---` lines (splitDocuments); when that is not certain, or a document has a
 * YAML syntax error, the whole text is parsed as `loadText` does (and nothing is kept).
 */
export function loadTextReusing(text: string, file: string, cache: DocumentCache): LoadResult {
  const parts = splitDocuments(text);
  const whole = (): LoadResult => {
    cache.clear();
    cache.last = { parsed: 0, reused: 0, whole: true };
    return loadText(text, file);
  };
  if (parts === undefined) return whole();
  const before = cache.take();
  if (before.size === 0) return loadTextSeeding(text, file, parts, cache) ?? whole();
  const now = new Map<string, ReusedDocument>();
  const out: LoadResult = { objects: [], problems: [], notes: [] };
  let parsed = 0;
  let reused = 0;
  let di = 0;
  for (const part of parts) {
    const key = docKey(file, part.text);
    const lines = part.line - 1;
    let r = now.get(key) ?? before.get(key);
    let fresh: LoadResult | undefined;
    if (r === undefined) {
      const lc = new LineCounter();
      const docs = parseAllDocuments(part.text, { lineCounter: lc, ...PARSE_OPTIONS });
      const list = Array.isArray(docs) ? docs : [docs];
      if (list.length > 1 || list.some((d) => d.errors.length > 0)) return whole();
      fresh = { objects: [], problems: [], notes: [] };
      if (list[0] !== undefined) loadDocument(list[0], lc, file, 0, fresh);
      r = {
        objects: fresh.objects.map((l) => ({ kind: l.kind, obj: l.obj, line: l.line, at: l.at, di: l.doc })),
        problems: fresh.problems,
        notes: fresh.notes,
        documents: list.length,
      };
      parsed++;
    } else reused++;
    now.set(key, r);
    // Lines of fields: from this call's syntax tree, or (reused) by parsing the document again.
    let tree: ((path: readonly PathKey[]) => number) | undefined;
    const docLineOf = (path: readonly PathKey[]): number => {
      if (tree === undefined) {
        const lc = new LineCounter();
        const d = parseAllDocuments(part.text, { lineCounter: lc, ...PARSE_OPTIONS });
        const doc = (Array.isArray(d) ? d[0] : d) as Document;
        tree = docLines(doc, lc);
      }
      return tree(path) + lines;
    };
    r.objects.forEach((o, i) => {
      const own = fresh?.objects[i]?.lineOf;
      const at = o.at ?? [];
      const lineOf =
        own !== undefined
          ? (path: readonly PathKey[]) => own(path) + lines
          : (path: readonly PathKey[]) => docLineOf([...at, ...path]);
      out.objects.push({
        kind: o.kind,
        obj: o.obj,
        file,
        doc: o.di + di,
        line: o.line + lines,
        lineOf,
        at: o.at,
      });
    });
    for (const p of r.problems) out.problems.push(shift(p, lines, di));
    for (const p of r.notes) out.notes.push(shift(p, lines, di));
    di += r.documents;
  }
  cache.keep(now);
  cache.last = { parsed, reused, whole: false };
  return out;
}
