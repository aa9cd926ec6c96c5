/**
 * The configuration model: load manifests (files, directories or text), validate each object
 * against its schema and all of them against each other, and return the Config or the problems.
 * Notes (MetalLB status objects skipped) come back either way; they never make a result fail.
 */

import { type LoadResult, loadPaths, loadText, type Problem, sortProblems } from "./load.ts";
import { type DocumentCache, loadTextReusing } from "./load-reuse.ts";
import { buildConfig, type Config } from "./validate.ts";

export type { Loaded, Problem } from "./load.ts";
export { formatProblem } from "./load.ts";
export { DocumentCache } from "./load-reuse.ts";
export type { Config } from "./validate.ts";

export type ConfigResult =
  | { ok: true; config: Config; problems: []; notes: Problem[] }
  | { ok: false; problems: Problem[]; notes: Problem[] };

function finish(r: LoadResult): ConfigResult {
  // Objects refused by their schema are passed on, so that references to them are not reported a
  // second time as "does not exist".
  const built = buildConfig(r.objects, { invalid: r.problems });
  const problems = sortProblems([...r.problems, ...built.problems]);
  const notes = sortProblems([...r.notes]);
  return problems.length === 0
    ? { ok: true, config: built.config, problems: [], notes }
    : { ok: false, problems, notes };
}

/** Validates files and directories of manifests. Reads files; changes nothing. */
export function configFromPaths(paths: readonly string[]): ConfigResult {
  return finish(loadPaths(paths));
}

/**
 * Validates one multi-document YAML text (e.g. a body pushed through the API). With `reuse`, the
 * documents unchanged since the last call with that cache are neither parsed nor validated
 * again (src/config/load-reuse.ts loadTextReusing); the cross-object checks run over the whole set.
 */
export function configFromText(text: string, file = "<input>", reuse?: DocumentCache): ConfigResult {
  return finish(reuse === undefined ? loadText(text, file) : loadTextReusing(text, file, reuse));
}
