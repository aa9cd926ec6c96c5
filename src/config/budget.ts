/**
 * Budgets for untrusted manifest text, checked before the YAML parser runs.
 *
 * The `yaml` parser's cost is not linear in the input: 1 MiB of `[` nested 500k deep takes
 * seconds and hundreds of MB before it ends in a stack overflow, 260k `---` make 260k documents,
 * 260k one-word list items make 260k nodes. `prescanYaml` walks the text once, in linear time and
 * constant memory, and refuses it when it would exceed a bound: bytes, documents, nesting depth
 * (flow `[`/`{` and block indentation, compact `- - -` included) or nodes (content lines plus
 * flow separators). The estimate errs on the high side (a `[` inside a quoted string counts), so
 * a text the scan accepts never nests deeper than the limit in the parser; legitimate manifests
 * are far below every bound.
 *
 * `boundProblems` caps a problem list (at most N, then one "and K more" line).
 *
 * Pure: text in, verdict out.
 */

import type { Problem } from "./load.ts";

export interface TextLimits {
  /** Largest text in bytes (UTF-8). */
  maxBytes: number;
  /** Most YAML documents (`---` / `...` markers + 1). */
  maxDocuments: number;
  /** Deepest nesting: flow collections plus block levels. */
  maxDepth: number;
  /** Most nodes, estimated as content lines + flow separators (`,`). */
  maxNodes: number;
}

/**
 * Defaults for a request body (1 MiB). A 1 MiB manifest set of real objects (about 10,000 small
 * Services) has about 10,000 documents, depth 6 and 100,000 lines; a file on disk may be larger.
 */
export const BODY_LIMITS: TextLimits = {
  maxBytes: 1024 * 1024,
  maxDocuments: 20_000,
  maxDepth: 64,
  maxNodes: 200_000,
};

/** Defaults for manifest files read by `vipd run` (reload, SIGHUP): bigger sets, same shape. */
export const FILE_LIMITS: TextLimits = {
  maxBytes: 64 * 1024 * 1024,
  maxDocuments: 200_000,
  maxDepth: 64,
  maxNodes: 4_000_000,
};

/** At most this many problems are reported for one text (then "and K more"). */
export const MAX_PROBLEMS = 200;

export type PrescanReason = "TooLarge" | "TooManyDocuments" | "TooDeep" | "TooManyNodes";

export type Prescan =
  | { ok: true; documents: number; depth: number; nodes: number }
  | { ok: false; reason: PrescanReason; line: number; message: string };

const SPACE = 32;
const TAB = 9;
const CR = 13;
const HASH = 35;
const DASH = 45;
const DOT = 46;
const QUESTION = 63;
const COLON = 58;
const COMMA = 44;
const OPEN_SQ = 91;
const CLOSE_SQ = 93;
const OPEN_CURLY = 123;
const CLOSE_CURLY = 125;

function utf8Length(text: string, stopAbove: number): number {
  // Upper bound first (3 bytes per UTF-16 unit), exact only when needed.
  if (text.length * 3 <= stopAbove) return text.length;
  return Buffer.byteLength(text, "utf8");
}

const isBlank = (c: number) => c === SPACE || c === TAB || c === CR;

/**
 * Scans `text` and refuses it when a bound of `limits` would be exceeded, with a message naming
 * the bound and the line where it was crossed.
 *
 * @example
 * prescanYaml("[".repeat(100), BODY_LIMITS);
 * // { ok: false, reason: "TooDeep", line: 1, message: "nesting deeper than 64 levels at line 1" }
 */
export function prescanYaml(text: string, limits: TextLimits = BODY_LIMITS): Prescan {
  const bytes = utf8Length(text, limits.maxBytes);
  if (bytes > limits.maxBytes)
    return {
      ok: false,
      reason: "TooLarge",
      line: 0,
      message: `the text is ${bytes} bytes; the limit is ${limits.maxBytes}`,
    };
  const n = text.length;
  let line = 1;
  let documents = 0;
  let flow = 0; // open flow collections ([ and {), across lines
  let maxDepth = 0;
  let nodes = 0;
  /** Indentation columns of the enclosing block levels. */
  const indents: number[] = [];
  let i = 0;
  while (i < n) {
    // One line: [i, end).
    let end = text.indexOf("\n", i);
    if (end < 0) end = n;
    let col = i;
    while (col < end && (text.charCodeAt(col) === SPACE || text.charCodeAt(col) === TAB)) col++;
    const first = col < end ? text.charCodeAt(col) : -1;
    const blankLine = first === -1 || first === CR;
    const commentLine = first === HASH;
    if (!blankLine && !commentLine) {
      // A document marker at column 0 ends every open collection and starts a new document.
      const c0 = text.charCodeAt(i);
      if (
        col === i &&
        (c0 === DASH || c0 === DOT) &&
        text.charCodeAt(i + 1) === c0 &&
        text.charCodeAt(i + 2) === c0 &&
        (i + 3 >= end || isBlank(text.charCodeAt(i + 3)))
      ) {
        documents++;
        if (documents > limits.maxDocuments)
          return {
            ok: false,
            reason: "TooManyDocuments",
            line,
            message: `more than ${limits.maxDocuments} YAML documents at line ${line}`,
          };
        flow = 0;
        indents.length = 0;
        col = i + 3;
      } else if (flow === 0) {
        // Block structure: pop the levels this line is not inside, then push its own.
        const indent = col - i;
        while (indents.length > 0 && (indents[indents.length - 1] as number) >= indent) indents.pop();
        indents.push(indent);
        // Compact nested entries on one line: `- - - x`, `? - x`, `- key: - x`...
        let j = col;
        for (;;) {
          const c = text.charCodeAt(j);
          if (
            (c === DASH || c === QUESTION || c === COLON) &&
            j + 1 <= end &&
            isBlank(text.charCodeAt(j + 1))
          ) {
            j += 2;
            while (j < end && isBlank(text.charCodeAt(j))) j++;
            indents.push(j - i);
            if (indents.length > limits.maxDepth) break;
            continue;
          }
          break;
        }
      }
      if (documents === 0) documents = 1;
      nodes++;
      let depth = indents.length + flow;
      if (depth > maxDepth) maxDepth = depth;
      for (let k = col; k < end; k++) {
        const c = text.charCodeAt(k);
        if (c === OPEN_SQ || c === OPEN_CURLY) {
          flow++;
          depth = indents.length + flow;
          if (depth > maxDepth) maxDepth = depth;
        } else if (c === CLOSE_SQ || c === CLOSE_CURLY) {
          if (flow > 0) flow--;
        } else if (c === COMMA) {
          nodes++;
        }
        if (depth > limits.maxDepth) break;
      }
      if (maxDepth > limits.maxDepth)
        return {
          ok: false,
          reason: "TooDeep",
          line,
          message: `nesting deeper than ${limits.maxDepth} levels at line ${line}`,
        };
      if (nodes > limits.maxNodes)
        return {
          ok: false,
          reason: "TooManyNodes",
          line,
          message: `more than ${limits.maxNodes} YAML nodes (lines and list items) at line ${line}`,
        };
    }
    line++;
    i = end + 1;
  }
  return { ok: true, documents, depth: maxDepth, nodes };
}

/** The refusal as a Problem located in `file`. */
export function prescanProblem(p: Extract<Prescan, { ok: false }>, file: string): Problem {
  return { file, line: p.line, field: "-", message: p.message, pointer: "" };
}

/**
 * The first `max` problems, then one more saying how many were left out.
 *
 * @example
 * boundProblems(manyProblems, 200).problems.at(-1)?.message; // "and 148800 more problems"
 */
export function boundProblems(
  problems: readonly Problem[],
  max = MAX_PROBLEMS,
): { problems: Problem[]; omitted: number } {
  if (problems.length <= max) return { problems: [...problems], omitted: 0 };
  const omitted = problems.length - max;
  const file = problems[max]?.file ?? "<input>";
  return {
    problems: [
      ...problems.slice(0, max),
      {
        file,
        line: 0,
        field: "-",
        message: `and ${omitted} more problem${omitted === 1 ? "" : "s"}`,
        pointer: "",
      },
    ],
    omitted,
  };
}
