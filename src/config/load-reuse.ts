/**
 * Per-document reuse on reload (used per chunk by the file worker, src/appliance/file-load.ts): a text is split
 * at its `---` lines, and a document whose text is unchanged since the last load is neither parsed
 * nor validated again; its problems and lines shift with the documents before it. Equal to a
 * whole `loadText` of the same text (test/unit/config-reuse.test.ts).
 */

import {
  documentLines,
  type Loaded,
  type LoadResult,
  loadPart,
  loadTextWhole,
  type PathKey,
  type Problem,
  shiftProblem,
} from "./load.ts";
import type { AnyObject, Kind } from "./schemas.ts";
import { splitDocuments } from "./yaml-split.ts";

export { type DocumentText, splitDocuments } from "./yaml-split.ts";

/** What one document gave, kept for reuse: lines counted from the document's first line. */
interface ReusedDocument {
  objects: { kind: Kind; obj: AnyObject; line: number; at: readonly PathKey[] | undefined; di: number }[];
  problems: Problem[];
  notes: Problem[];
  /** Documents the text holds (0 or 1). */
  documents: number;
}

/** Shared by every document without problems (or notes), and every object at its document's root: never written. */
const NONE: Problem[] = [];
const ROOT: readonly PathKey[] = [];

/** The lines of the document last asked for (a check asks for several lines of one document in turn). */
let asked: { text: string; lines: (path: readonly PathKey[]) => number } | undefined;
const linesOf = (text: string): ((path: readonly PathKey[]) => number) => {
  if (asked === undefined || asked.text !== text) asked = { text, lines: documentLines(text) };
  return asked.lines;
};

/**
 * A loaded object placed in its text: a Loaded whose `lineOf` parses its document's text again
 * when asked (problems only), through one method shared by all, instead of a closure per object
 * (the file worker keeps one per object across reloads: 10,000 Services, 10,000 of them).
 */
export class PlacedObject implements Loaded {
  constructor(
    readonly kind: Kind,
    readonly obj: AnyObject,
    readonly file: string,
    readonly doc: number,
    readonly line: number,
    readonly at: readonly PathKey[] | undefined,
    /** The document's text (its key in a DocumentCache), and the lines before it. */
    readonly text: string,
    readonly before: number,
  ) {}

  lineOf(path: readonly PathKey[]): number {
    return linesOf(this.text)([...(this.at ?? ROOT), ...path]) + this.before;
  }

  /** The same object `lines` lines and `docs` documents further down. */
  moved(lines: number, docs: number): PlacedObject {
    return new PlacedObject(
      this.kind,
      this.obj,
      this.file,
      this.doc + docs,
      this.line + lines,
      this.at,
      this.text,
      this.before + lines,
    );
  }
}

/**
 * One copy of each short string value in the objects given (the parser makes a string per
 * scalar: 10,000 Services hold 10,000 "v1", "Service", "LoadBalancer", and their namespaces):
 * the values are replaced in place by an equal string met before. Nothing observable changes. The
 * table is bounded (cleared when full), and meant to live for one load.
 */
export class StringTable {
  private seen = new Map<string, string>();

  constructor(private readonly max = 8192) {}

  /** `v` with each short string value (at any depth) one met before, if any. */
  share(v: unknown): void {
    if (v === null || typeof v !== "object") return;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const x = v[i];
        if (typeof x === "string") v[i] = this.one(x);
        else this.share(x);
      }
      return;
    }
    const o = v as Record<string, unknown>;
    for (const k in o) {
      const x = o[k];
      if (typeof x === "string") o[k] = this.one(x);
      else this.share(x);
    }
  }

  private one(s: string): string {
    if (s.length > 64) return s;
    const had = this.seen.get(s);
    if (had !== undefined) return had;
    if (this.seen.size >= this.max) this.seen = new Map();
    this.seen.set(s, s);
    return s;
  }
}

/** A text's results, every object a PlacedObject. */
export interface PlacedResult {
  objects: PlacedObject[];
  problems: Problem[];
  notes: Problem[];
}

/**
 * Per-document results of earlier calls, for `loadTextReusing`: keyed by the document's text (of
 * one source name), so an unchanged document is neither parsed nor validated again. Holds the
 * validated objects (no syntax tree): a line is found, when a later check asks for one, by
 * parsing that one document again. Keeps only the last call's documents.
 */
export class DocumentCache {
  private entries = new Map<string, ReusedDocument>();
  private objects: readonly PlacedObject[] = [];
  /** The source name the entries are of. */
  private file = "";
  /** The last call: documents parsed, documents reused, and whether the whole text was parsed. */
  last = { parsed: 0, reused: 0, whole: false };

  /**
   * The last call's documents, by text: the entries, and the objects placed that are their
   * documents' only result (kept only in the list of objects placed, which the caller keeps
   * anyway: no map entry per document for most).
   * @internal
   */
  take(file: string): Map<string, ReusedDocument | PlacedObject> {
    if (file !== this.file) this.clear();
    this.file = file;
    const all = new Map<string, ReusedDocument | PlacedObject>(this.entries);
    for (const o of this.objects) if (!this.entries.has(o.text)) all.set(o.text, o);
    return all;
  }

  /** @internal */
  keep(entries: Map<string, ReusedDocument | PlacedObject>, objects: readonly PlacedObject[]): void {
    const kept = new Map<string, ReusedDocument>();
    for (const [k, v] of entries) if (!(v instanceof PlacedObject)) kept.set(k, v);
    this.entries = kept;
    this.objects = objects;
  }

  /** The objects placed are now `objects` (the same documents, moved: their chunk was kept at another place). */
  moved(objects: readonly PlacedObject[]): void {
    this.objects = objects;
  }

  /** Documents kept. */
  get size(): number {
    return this.take(this.file).size;
  }

  clear(): void {
    this.entries = new Map();
    this.objects = [];
  }
}

/**
 * `loadText`, reusing the results of documents unchanged since the last call with the same
 * cache: the same objects, problems and notes, at the same lines, as `loadText` gives. The text
 * is split at its `---` lines (splitDocuments) and each new document loaded alone (loadPart: Bun's
 * parser when it is certain to agree, else the `yaml` package); when the split is not certain, or
 * a document has a YAML syntax error, the whole text is parsed at once (and nothing is kept).
 */
export function loadTextReusing(text: string, file: string, cache: DocumentCache): LoadResult {
  const r = placeReusing(text, file, cache, 0, 0);
  // The cache keeps the list of objects: the caller has its own.
  return r === undefined ? wholeText(text, file, cache) : { ...r, objects: [...r.objects] };
}

/** The whole text parsed at once; the cache emptied. */
export function wholeText(text: string, file: string, cache: DocumentCache): LoadResult {
  cache.clear();
  cache.last = { parsed: 0, reused: 0, whole: true };
  return loadTextWhole(text, file);
}

/**
 * `loadTextReusing` of a text that begins after `lines` lines and `docs` documents, its results
 * placed there; undefined where loadTextReusing parses the whole text (call `wholeText`). The
 * string values of new documents' objects are shared through `strings`, when given.
 */
export function placeReusing(
  text: string,
  file: string,
  cache: DocumentCache,
  lines: number,
  docs: number,
  strings?: StringTable,
): PlacedResult | undefined {
  const parts = splitDocuments(text);
  if (parts === undefined) return undefined;
  const before = cache.take(file);
  const now = new Map<string, ReusedDocument | PlacedObject>();
  const out: PlacedResult = { objects: [], problems: [], notes: [] };
  let parsed = 0;
  let reused = 0;
  let di = docs;
  for (const part of parts) {
    // Keyed by the text itself: no other string per document (the objects keep the text anyway).
    const key = part.text;
    const shift = part.line - 1 + lines;
    let r = now.get(key) ?? before.get(key);
    const reusedIt = r !== undefined;
    if (r === undefined) {
      const loaded = loadPart(part.text, file);
      if (loaded === undefined) return undefined;
      const fresh = loaded.result;
      if (strings !== undefined) for (const l of fresh.objects) strings.share(l.obj);
      // Lines of fields are found by parsing the document again (PlacedObject.lineOf): a fresh
      // document's own lineOf would keep its whole load (~1 KB a document) alive as long as the
      // objects are kept (the file worker keeps them across reloads).
      const [only, ...more] = fresh.objects;
      if (
        only !== undefined &&
        more.length === 0 &&
        only.doc === 0 &&
        only.at?.length === 0 &&
        fresh.problems.length === 0 &&
        fresh.notes.length === 0 &&
        loaded.documents === 1
      )
        // What most documents give: kept as the object placed, which the results share.
        r = new PlacedObject(only.kind, only.obj, file, di, only.line + shift, ROOT, key, shift);
      else
        r = {
          objects: fresh.objects.map((l) => ({
            kind: l.kind,
            obj: l.obj,
            line: l.line,
            at: l.at !== undefined && l.at.length === 0 ? ROOT : l.at,
            di: l.doc,
          })),
          problems: fresh.problems.length === 0 ? NONE : fresh.problems,
          notes: fresh.notes.length === 0 ? NONE : fresh.notes,
          documents: loaded.documents,
        };
      parsed++;
    } else reused++;
    now.set(key, r);
    if (r instanceof PlacedObject) {
      // Placed afresh even where it was: it keeps this text, not the last one (a part of the
      // chunk's last text, which it would keep alive).
      if (reusedIt) {
        r = new PlacedObject(r.kind, r.obj, file, di, r.line - r.before + shift, ROOT, key, shift);
        now.set(key, r);
      }
      out.objects.push(r);
      di++;
      continue;
    }
    for (const o of r.objects)
      out.objects.push(new PlacedObject(o.kind, o.obj, file, o.di + di, o.line + shift, o.at, key, shift));
    for (const p of r.problems) out.problems.push(shiftProblem(p, shift, di));
    for (const p of r.notes) out.notes.push(shiftProblem(p, shift, di));
    di += r.documents;
  }
  cache.keep(now, out.objects);
  cache.last = { parsed, reused, whole: false };
  return out;
}
