/**
 * The site objects of a manifest text: every document except NodeSettings (which stays per
 * node), in their order, re-printed by the YAML library (comments kept); empty documents are
 * left out. A pure function of the text, used by the site (src/site/runtime.ts) and run off the
 * main thread by the body worker (src/api/body-worker.ts): for 10,000 Services it takes seconds
 * (4–7 s measured at a load average of 9 on 2 cores), which on the main thread held `/livez`.
 *
 * One document at a time: the text is split at its `---` lines (splitDocuments, which says when
 * a split is not certain) and each document parsed, printed and dropped before the next, so the
 * memory it takes is one document's syntax tree. Parsing the whole text at once held all 10,000
 * trees together: ~150 MB more RSS for the ~2 s it took, the peak of bench/stall.ts's reload.
 * Where the split is not certain, or a document is not a mapping, the whole text is parsed, as
 * before; both give the same text (test/unit/site-text.test.ts).
 */

import { type Document, isMap, isScalar, parseAllDocuments, parseDocument } from "yaml";
import { splitDocuments } from "./yaml-split.ts";

/** A document's text in the site text, or undefined when it is left out. */
function printed(d: Document.Parsed): string | undefined {
  const c = d.contents;
  if (c === null || c === undefined) return undefined;
  if (isMap(c)) {
    const kind: unknown = c.get("kind", true);
    if (isScalar(kind) && kind.value === "NodeSettings") return undefined;
  }
  return d.toString().replace(/^---\n/, "");
}

/** The whole text parsed at once (the reference: the split's result must equal it). */
export function siteTextWhole(text: string): string {
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  const kept: string[] = [];
  for (const d of list) {
    const p = printed(d);
    if (p !== undefined) kept.push(p);
  }
  return kept.join("---\n");
}

export function siteText(text: string): string {
  const parts = splitDocuments(text);
  if (parts === undefined) return siteTextWhole(text);
  const kept: string[] = [];
  for (const part of parts) {
    const d = parseDocument(part.text);
    // A document that is not a mapping (never in a valid configuration): the library attaches
    // the comments after a scalar differently inside a stream, so the whole text is parsed.
    if (d.contents !== null && d.contents !== undefined && !isMap(d.contents)) return siteTextWhole(text);
    const p = printed(d);
    if (p !== undefined) kept.push(p);
  }
  return kept.join("---\n");
}
