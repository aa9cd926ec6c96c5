/**
 * Validation of a seed for the edge-node image: the files are checked as one configuration,
 * exactly as `vipd run` loads them (same loader, same schemas, same cross-object rules).
 */

import { formatProblem, loadText, sortProblems } from "../../src/config/load.ts";
import { buildConfig } from "../../src/config/validate.ts";

/** One `file:line: Kind/name: field: message` line per problem; empty when valid. */
export function validateFiles(files: ReadonlyMap<string, string>, dir: string): string[] {
  const objects = [];
  const problems = [];
  for (const name of [...files.keys()].sort()) {
    const r = loadText(files.get(name) ?? "", `${dir}/${name}`);
    objects.push(...r.objects);
    problems.push(...r.problems);
  }
  problems.push(...buildConfig(objects).problems);
  return sortProblems(problems).map(formatProblem);
}
