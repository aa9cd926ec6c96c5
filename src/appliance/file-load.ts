/**
 * The file worker's loader (file-worker.ts): `configFromText` with per-document reuse, in chunks.
 * The joined text's documents (splitDocuments) are cut into chunks where a document's hash says
 * (content-defined, about 128 documents each: an edit moves no boundary but its own chunk's); each
 * chunk is loaded by loadTextReusing with its own cache, and its objects, shifted to the chunk's
 * place, are kept while the chunk's text and place stay the same. A reload that changed one
 * document of 10,000 touches one chunk's objects instead of making 10,000 again; the cross-object
 * checks (buildConfig) run over what changed when only Services changed since a valid load
 * (src/config/build-incremental.ts), else over the whole set, as configFromText's do. When the text does
 * not split for certain, or a chunk has a YAML syntax error, the whole text is loaded as
 * configFromText does (and nothing is kept): the same results either way
 * (test/unit/config-delta.test.ts compares them on random edits). The pre-scan of the budgets
 * reuses the chunks' verdicts the same way (`prescan`).
 */

import { type Prescan, prescanYaml, type TextLimits } from "../config/budget.ts";
import { IncrementalBuild } from "../config/build-incremental.ts";
import { type ConfigResult, configFromText } from "../config/index.ts";
import { type Loaded, type Problem, shiftProblem, sortProblems } from "../config/load.ts";
import {
  DocumentCache,
  type PlacedResult,
  placeReusing,
  StringTable,
  splitDocuments,
} from "../config/load-reuse.ts";

/** A chunk boundary follows a document whose hash has these bits clear (1 in 128). */
const CUT_MASK = 0x7fn;
/** Chunks to load above which garbage is collected after each one. */
const LARGE_LOAD = 8;

/** A chunk of the text: its documents' text, first line, and the documents before it. */
interface Cut {
  text: string;
  line: number;
  docs: number;
}

interface ChunkState {
  cache: DocumentCache;
  /** Its results at its place last time (first line, documents before it): one copy only. */
  placed: { line: number; docs: number; result: PlacedResult };
}

/** `r`, made at `from`, moved to `line` and `docs`; `cache` keeps the objects moved. */
const moved = (
  cache: DocumentCache,
  r: PlacedResult,
  from: { line: number; docs: number },
  line: number,
  docs: number,
): PlacedResult => {
  const lines = line - from.line;
  const ds = docs - from.docs;
  const objects = r.objects.map((o) => o.moved(lines, ds));
  cache.moved(objects);
  return {
    objects,
    problems: r.problems.map((p) => shiftProblem(p, lines, ds)),
    notes: r.notes.map((p) => shiftProblem(p, lines, ds)),
  };
};

export class ChunkedLoader {
  /** By chunk text: the chunks of the last load. */
  private chunks = new Map<string, ChunkState>();
  /** The last load's chunk states in order (a changed chunk takes over its place's cache). */
  private order: ChunkState[] = [];
  /** The last load: chunks loaded again, chunks kept. */
  last = { loaded: 0, kept: 0, whole: false };
  private texts = new Map<ChunkState, string>();
  /** The last text's chunks (cut), until `load`. */
  private lastCut: { text: string; cuts: Cut[] | undefined } | undefined;
  /** By chunk text: the last prescan's verdicts, and the limits they were made with. */
  private scans = new Map<string, Prescan>();
  private scanLimits = "";
  /** The cross-object checks, of what changed only when only Services changed. */
  private readonly builder = new IncrementalBuild();

  /** `cutMask`: a boundary follows a document whose hash has these bits clear (tests cut often). */
  constructor(private readonly cutMask = CUT_MASK) {}

  /** `before`: told how many chunks are to be loaded (not kept), before any is. */
  load(text: string, file: string, before?: (chunks: number) => void): ConfigResult {
    const cuts = this.cut(text);
    if (cuts === undefined) {
      before?.(Number.POSITIVE_INFINITY);
      return this.whole(text, file);
    }
    const texts = new Set(cuts.map((c) => c.text));
    let toLoad = 0;
    for (const c of cuts) if (!this.chunks.has(c.text)) toLoad++;
    before?.(toLoad);
    const now = new Map<string, ChunkState>();
    const order: ChunkState[] = [];
    const objects: Loaded[] = [];
    const problems: Problem[] = [];
    const notes: Problem[] = [];
    let loaded = 0;
    let kept = 0;
    const strings = new StringTable();
    for (const [k, c] of cuts.entries()) {
      let st = now.get(c.text) ?? this.chunks.get(c.text);
      if (st === undefined) {
        // A changed chunk: its place's cache holds most of its documents.
        const old = this.order[k];
        const cache = old !== undefined && !texts.has(this.textOf(old)) ? old.cache : new DocumentCache();
        const result = placeReusing(c.text, file, cache, c.line - 1, c.docs, strings);
        // A large load (the first one, a mass edit): garbage is collected after each chunk, so
        // the parse's garbage does not grow the heap (and the thread's RSS, which the heap keeps
        // once grown) well past what the kept chunks need (10k Services: worker RSS -9 MB).
        if (toLoad > LARGE_LOAD) Bun.gc(false);
        if (result === undefined) {
          before?.(Number.POSITIVE_INFINITY);
          return this.whole(text, file);
        }
        st = { cache, placed: { line: c.line, docs: c.docs, result } };
        loaded++;
      } else kept++;
      if (st.placed.line !== c.line || st.placed.docs !== c.docs)
        st.placed = {
          line: c.line,
          docs: c.docs,
          result: moved(st.cache, st.placed.result, st.placed, c.line, c.docs),
        };
      now.set(c.text, st);
      order.push(st);
      const r = st.placed.result;
      for (const o of r.objects) objects.push(o);
      for (const p of r.problems) problems.push(p);
      for (const p of r.notes) notes.push(p);
    }
    this.chunks = now;
    this.order = order;
    this.texts = new Map(order.map((st, i) => [st, (cuts[i] as { text: string }).text]));
    this.last = { loaded, kept, whole: false };
    this.lastCut = undefined;
    // As configFromText: objects refused by their schema are passed on, so that references to
    // them are not reported a second time as "does not exist".
    const built = this.builder.build(objects, { invalid: problems });
    const all = sortProblems([...problems, ...built.problems]);
    const sortedNotes = sortProblems([...notes]);
    return all.length === 0
      ? { ok: true, config: built.config, problems: [], notes: sortedNotes }
      : { ok: false, problems: all, notes: sortedNotes };
  }

  /**
   * `prescanYaml(text, limits)`, reusing the verdicts of chunks unchanged since the last call: the
   * pre-scan's state starts afresh at each `---` line, where every chunk but the first begins, so
   * the whole text's counts are the chunks' sums. Any refusal (a chunk's, or the sums over a
   * limit) is the whole text's own pre-scan, for its exact line and message; so is a text that
   * does not split for certain. Equal to `prescanYaml(text, limits)` (test/unit/file-load.test.ts).
   * The text is cut into chunks once for this and the `load` of the same text that follows.
   */
  prescan(text: string, limits: TextLimits): Prescan {
    const r = this.prescanChunks(text, limits);
    // Refused: no load follows, so the text and its chunks are not kept for one.
    if (!r.ok) this.lastCut = undefined;
    return r;
  }

  private prescanChunks(text: string, limits: TextLimits): Prescan {
    if (text.length * 3 > limits.maxBytes && Buffer.byteLength(text, "utf8") > limits.maxBytes)
      return prescanYaml(text, limits);
    const cuts = this.cut(text);
    if (cuts === undefined) return prescanYaml(text, limits);
    const key = `${limits.maxBytes}/${limits.maxDocuments}/${limits.maxDepth}/${limits.maxNodes}`;
    const before = key === this.scanLimits ? this.scans : new Map<string, Prescan>();
    const now = new Map<string, Prescan>();
    let documents = 0;
    let nodes = 0;
    let depth = 0;
    for (const c of cuts) {
      const s = now.get(c.text) ?? before.get(c.text) ?? prescanYaml(c.text, limits);
      if (!s.ok) return prescanYaml(text, limits);
      now.set(c.text, s);
      documents += s.documents;
      nodes += s.nodes;
      if (s.depth > depth) depth = s.depth;
    }
    if (documents > limits.maxDocuments || nodes > limits.maxNodes) return prescanYaml(text, limits);
    this.scans = now;
    this.scanLimits = key;
    return { ok: true, documents, depth, nodes };
  }

  /** The text's chunks; the last text's are kept until `load` (prescan and load ask in turn). */
  private cut(text: string): Cut[] | undefined {
    if (this.lastCut !== undefined && this.lastCut.text === text) return this.lastCut.cuts;
    const parts = splitDocuments(text);
    let cuts: Cut[] | undefined;
    if (parts !== undefined) {
      cuts = [];
      let start = 0;
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i] as { text: string; line: number };
        if (i < parts.length - 1 && (BigInt(Bun.hash.wyhash(p.text)) & this.cutMask) !== 0n) continue;
        let t = "";
        for (let j = start; j <= i; j++) t += (parts[j] as { text: string }).text;
        cuts.push({ text: t, line: (parts[start] as { line: number }).line, docs: start });
        start = i + 1;
      }
    }
    this.lastCut = { text, cuts };
    return cuts;
  }

  private textOf(st: ChunkState): string {
    return this.texts.get(st) ?? "";
  }

  private whole(text: string, file: string): ConfigResult {
    this.lastCut = undefined;
    this.chunks = new Map();
    this.order = [];
    this.texts = new Map();
    this.last = { loaded: 0, kept: 0, whole: true };
    return configFromText(text, file);
  }
}
