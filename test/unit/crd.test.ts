import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { renderCrds } from "../../src/config/crd.ts";

const dir = join(import.meta.dir, "..", "..", "deploy", "crds");

type J = null | boolean | number | string | J[] | { [k: string]: J };

/** Walks a schema and returns every violation of Kubernetes' structural-schema rules we care about. */
function structuralViolations(s: J, path = "$"): string[] {
  if (Array.isArray(s)) return s.flatMap((x, i) => structuralViolations(x, `${path}[${i}]`));
  if (typeof s !== "object" || s === null) return [];
  const out: string[] = [];
  if ("$ref" in s) out.push(`${path}: $ref`);
  if ("properties" in s && "additionalProperties" in s)
    out.push(`${path}: additionalProperties beside properties`);
  for (const [k, v] of Object.entries(s)) out.push(...structuralViolations(v, `${path}.${k}`));
  return out;
}

describe("CRDs generated from the zod schemas", () => {
  const rendered = renderCrds();

  test("deploy/crds matches a fresh generation (run `bun scripts/gen-crds.ts` after changing a schema)", () => {
    const onDisk = readdirSync(dir)
      .filter((f) => f.endsWith(".yaml"))
      .sort();
    expect(onDisk).toEqual([...rendered.keys()].sort());
    for (const [name, text] of rendered) expect(readFileSync(join(dir, name), "utf8")).toBe(text);
  });

  test("every CRD is structural: no $ref, no additionalProperties beside properties", () => {
    for (const [name, text] of rendered) {
      const crd = parse(text);
      expect({ name, v: structuralViolations(crd) }).toEqual({ name, v: [] });
    }
  });

  test("MetalLB's defaults and ranges reach the CRDs", () => {
    const pool = parse(rendered.get("metallb.io_ipaddresspools.yaml") ?? "");
    const spec = pool.spec.versions[0].schema.openAPIV3Schema.properties.spec;
    expect(spec.required).toEqual(["addresses"]);
    expect(spec.properties.autoAssign.default).toBe(true);
    const bfd = parse(rendered.get("metallb.io_bfdprofiles.yaml") ?? "");
    const b = bfd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
    expect([b.receiveInterval.minimum, b.receiveInterval.maximum, b.receiveInterval.default]).toEqual([
      10, 60000, 300,
    ]);
    expect(b.detectMultiplier.minimum).toBe(2);
    const peer = parse(rendered.get("metallb.io_bgppeers.yaml") ?? "");
    expect(peer.spec.versions.map((v: { name: string; storage: boolean }) => [v.name, v.storage])).toEqual([
      ["v1beta2", true],
      ["v1beta1", false],
    ]);
  });
});
