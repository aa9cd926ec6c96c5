/**
 * The configuration model: load manifests (files, directories or text), validate each object
 * against its schema and all of them against each other, and return the Config or the problems.
 */

import { type LoadResult, loadPaths, loadText, type Problem, sortProblems } from "./load.ts";
import { buildConfig, type Config } from "./validate.ts";

export type { Loaded, Problem } from "./load.ts";
export { formatProblem } from "./load.ts";
export type { Config } from "./validate.ts";

export type ConfigResult = { ok: true; config: Config; problems: [] } | { ok: false; problems: Problem[] };

function finish(r: LoadResult): ConfigResult {
  const built = buildConfig(r.objects);
  const problems = sortProblems([...r.problems, ...built.problems]);
  return problems.length === 0 ? { ok: true, config: built.config, problems: [] } : { ok: false, problems };
}

/** Validates files and directories of manifests. Reads files; changes nothing. */
export function configFromPaths(paths: readonly string[]): ConfigResult {
  return finish(loadPaths(paths));
}

/** Validates one multi-document YAML text (e.g. a body pushed through the API). */
export function configFromText(text: string, file = "<input>"): ConfigResult {
  return finish(loadText(text, file));
}
