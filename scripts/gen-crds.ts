/** Writes deploy/crds/*.yaml from the zod schemas (see src/config/crd.ts). */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderCrds } from "../src/config/crd.ts";

const dir = join(import.meta.dir, "..", "deploy", "crds");
mkdirSync(dir, { recursive: true });
for (const [name, text] of renderCrds()) {
  writeFileSync(join(dir, name), text);
  console.log(`wrote deploy/crds/${name}`);
}
