/**
 * Per-document reuse on reload (used per chunk by the file worker, src/appliance/file-load.ts): a text is split
 * at its `---` lines, and a document whose text is unchanged since the last load is neither parsed
 * nor validated again; its problems and lines shift with the documents before it. Equal to a
 * whole `loadText` of the same text (test/unit/config-reuse.test.ts).
 */

import {
  documentLines,
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

/**
 * Per-document results of earlier calls, for `loadTextReusing`: keyed by source name and the
 * document's text (two hashes and its length), so an unchanged document is neither parsed nor
 * validated again. Holds the validated objects (no syntax tree, no text): a line is found, when a
 * later check asks for one, by parsing that one document again. Keeps only the last call's
 * documents.
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

/**
 * `loadText`, reusing the results of documents unchanged since the last call with the same
 * cache: the same objects, problems and notes, at the same lines, as `loadText` gives. The text
 * is split at its `---` lines (splitDocuments) and each new document loaded alone (loadPart: Bun's
 * parser when it is certain to agree, else the `yaml` package); when the split is not certain, or
 * a document has a YAML syntax error, the whole text is parsed at once (and nothing is kept).
 */
export function loadTextReusing(text: string, file: string, cache: DocumentCache): LoadResult {
  const parts = splitDocuments(text);
  const whole = (): LoadResult => {
    cache.clear();
    cache.last = { parsed: 0, reused: 0, whole: true };
    return loadTextWhole(text, file);
  };
  if (parts === undefined) return whole();
  const before = cache.take();
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
      const loaded = loadPart(part.text, file);
      if (loaded === undefined) return whole();
      fresh = loaded.result;
      r = {
        objects: fresh.objects.map((l) => ({ kind: l.kind, obj: l.obj, line: l.line, at: l.at, di: l.doc })),
        problems: fresh.problems,
        notes: fresh.notes,
        documents: loaded.documents,
      };
      parsed++;
    } else reused++;
    now.set(key, r);
    // Lines of fields (asked for problems only), by parsing the document again: a fresh
    // document's own lineOf would keep its whole load (~1 KB a document) alive as long as the
    // objects are kept (the file worker keeps them across reloads).
    let docLineOf: ((path: readonly PathKey[]) => number) | undefined;
    const partText = part.text;
    r.objects.forEach((o) => {
      const at = o.at ?? [];
      const lineOf = (path: readonly PathKey[]) => {
        docLineOf ??= documentLines(partText);
        return docLineOf([...at, ...path]) + lines;
      };
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
    for (const p of r.problems) out.problems.push(shiftProblem(p, lines, di));
    for (const p of r.notes) out.notes.push(shiftProblem(p, lines, di));
    di += r.documents;
  }
  cache.keep(now);
  cache.last = { parsed, reused, whole: false };
  return out;
}
