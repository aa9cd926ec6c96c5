/**
 * Splitting a multi-document text at its `---` lines without parsing it (for per-document
 * loading and reuse: src/config/load.ts loadText, src/config/load-reuse.ts). Moved from
 * load-reuse.ts, which still exports it.
 */

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
