/**
 * The `yaml` package's side of loading: its options as vipd uses them, the source line of a field
 * (from the syntax tree's node positions), and its syntax errors as problems. Split from load.ts.
 */

import { type Document, isMap, isPair, isScalar, type LineCounter, type Node } from "yaml";
import type { PathKey, Problem } from "./load.ts";

function nodeAt(doc: Document, path: readonly PathKey[]): { node: Node | null; keyNode: Node | null } {
  let node: Node | null = (doc.contents as Node | null) ?? null;
  let keyNode: Node | null = null;
  let deepest: Node | null = node;
  for (const k of path) {
    if (node === null) break;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(k));
      if (!pair) {
        node = null;
        break;
      }
      keyNode = pair.key as Node;
      node = (pair.value as Node | null) ?? null;
    } else if ("items" in node && Array.isArray(node.items) && typeof k === "number") {
      node = (node.items[k] as Node | undefined) ?? null;
      keyNode = null;
    } else {
      node = null;
      break;
    }
    if (node !== null) deepest = node;
    else deepest = keyNode ?? deepest;
  }
  return { node: node ?? deepest, keyNode };
}

export function lineOfNode(node: Node | null, lc: LineCounter, fallback: number): number {
  const off = node?.range?.[0];
  return off === undefined ? fallback : lc.linePos(off).line;
}

/**
 * Where the unclosed `{` or `[` before `to` opened (a flow collection the parser noticed only
 * later), skipping quoted strings and comments; undefined when there is none.
 */
function unclosedFlowAt(text: string, from: number, to: number, open: "{" | "["): number | undefined {
  const stack: number[] = [];
  let quote: string | undefined;
  for (let i = from; i < to; i++) {
    const c = text[i] as string;
    if (quote !== undefined) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(text[i - 1] as string))) {
      const nl = text.indexOf("\n", i);
      i = nl < 0 ? to : nl;
    } else if (c === "{" || c === "[") stack.push(i);
    else if (
      (c === "}" || c === "]") &&
      stack.length > 0 &&
      text[stack[stack.length - 1] as number] === (c === "}" ? "{" : "[")
    )
      stack.pop();
  }
  for (let j = stack.length - 1; j >= 0; j--) if (text[stack[j] as number] === open) return stack[j];
  return undefined;
}

/** The key that starts at `pos` (a duplicate key reported by the YAML parser). */
function duplicateKeyAt(text: string, pos: number): string | undefined {
  const end = text.indexOf("\n", pos);
  const m = /^(?:"([^"]*)"|'([^']*)'|([^:#\n]+?))\s*:/.exec(text.slice(pos, end < 0 ? undefined : end));
  return m ? (m[1] ?? m[2] ?? m[3]) : undefined;
}

/** The YAML parser's errors of one document, as problems (duplicate keys and unclosed flows named). */
export function syntaxProblems(
  doc: Document,
  text: string,
  lc: LineCounter,
  file: string,
  di: number,
): Problem[] {
  return doc.errors.map((e) => {
    const dup = e.code === "DUPLICATE_KEY" ? duplicateKeyAt(text, e.pos[0]) : undefined;
    const flow = /^Flow (map|sequence) in block collection/.exec(e.message);
    const open = flow
      ? unclosedFlowAt(text, doc.range?.[0] ?? 0, e.pos[0], flow[1] === "map" ? "{" : "[")
      : undefined;
    let message = `YAML syntax: ${e.message.split("\n")[0]}`;
    if (dup !== undefined) message = `YAML syntax: key "${dup}" appears twice in the same mapping; keep one`;
    else if (open !== undefined)
      message = `YAML syntax: this "${text[open]}" is never closed; end the ${flow?.[1] === "map" ? "mapping with }" : "list with ]"}`;
    return {
      file,
      line: open !== undefined ? lc.linePos(open).line : (e.linePos?.[0]?.line ?? lc.linePos(e.pos[0]).line),
      field: "-",
      message,
      pointer: "",
      doc: di,
    };
  });
}

export const PARSE_OPTIONS = {
  prettyErrors: false,
  uniqueKeys: true,
  merge: true, // `<<` merge keys, as kubectl accepts them
} as const;

/** The line of a path within a document (of its deepest existing ancestor; else its first line). */
export function docLines(doc: Document, lc: LineCounter): (path: readonly PathKey[]) => number {
  const startLine = lineOfNode((doc.contents as Node | null) ?? null, lc, 1);
  return (path) => {
    const { node, keyNode } = nodeAt(doc, path);
    return lineOfNode(keyNode ?? node, lc, startLine);
  };
}
