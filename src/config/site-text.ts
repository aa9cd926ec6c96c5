/**
 * The site objects of a manifest text: every document except NodeSettings (which stays per
 * node), in their order, re-printed by the YAML library (comments kept); empty documents are
 * left out. A pure function of the text, used by the site (src/site/runtime.ts) and run off the
 * main thread by the body worker (src/api/body-worker.ts): for 10,000 Services it takes seconds
 * (4–7 s measured at a load average of 9 on 2 cores), which on the main thread held `/livez`.
 */

import { isMap, isScalar, parseAllDocuments } from "yaml";

export function siteText(text: string): string {
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  const kept: string[] = [];
  for (const d of list) {
    const c = d.contents;
    if (c === null || c === undefined) continue;
    if (isMap(c)) {
      const kind: unknown = c.get("kind", true);
      if (isScalar(kind) && kind.value === "NodeSettings") continue;
    }
    kept.push(d.toString().replace(/^---\n/, ""));
  }
  return kept.join("---\n");
}
