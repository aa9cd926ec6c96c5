/**
 * `kubectl get` prints MetalLB's columns for the metallb.io kinds (issue 18): the generated CRDs
 * declare MetalLB's additionalPrinterColumns, on every served version, and each column points
 * at a field the kind's schema has (so it shows a value, never an empty cell by typo).
 */

import { expect, test } from "bun:test";
import { CRDS, crdObject } from "../../src/config/crd.ts";

type Col = { name: string; jsonPath: string; type: string; priority?: number };
type Version = { name: string; additionalPrinterColumns?: Col[]; schema: { openAPIV3Schema: Schema } };
type Schema = { type?: string; properties?: Record<string, Schema>; items?: Schema };

const METALLB: Record<string, string[]> = {
  IPAddressPool: ["Auto Assign", "Avoid Buggy IPs", "Addresses"],
  L2Advertisement: ["IPAddressPools", "IPAddressPool Selectors", "Interfaces", "Node Selectors"],
  BGPAdvertisement: ["IPAddressPools", "IPAddressPool Selectors", "Peers", "Node Selectors"],
  BGPPeer: ["Address", "ASN", "BFD Profile", "Multi Hops"],
  BFDProfile: ["Passive Mode", "Transmit Interval", "Receive Interval", "Multiplier"],
  Community: [],
};

test("MetalLB's printer columns, on every version, each naming a field of the schema", () => {
  for (const c of CRDS) {
    const versions = (crdObject(c).spec as { versions: Version[] }).versions;
    for (const v of versions) {
      const cols = v.additionalPrinterColumns ?? [];
      expect({ kind: c.kind, version: v.name, cols: cols.map((x) => x.name) }).toEqual({
        kind: c.kind,
        version: v.name,
        cols: METALLB[c.kind] ?? ["(kind missing from the table)"],
      });
      const spec = v.schema.openAPIV3Schema.properties?.spec;
      for (const col of cols) {
        const field = col.jsonPath.replace(/^\.spec\./, "");
        const prop = spec?.properties?.[field];
        expect({ kind: c.kind, col: col.name, found: prop !== undefined }).toEqual({
          kind: c.kind,
          col: col.name,
          found: true,
        });
        if (col.type === "boolean") expect(prop?.type).toBe("boolean");
        if (col.type === "integer") expect(prop?.type).toBe("integer");
      }
      // Selectors are wide: shown with -o wide only, as MetalLB does.
      for (const col of cols) expect(col.priority ?? 0).toBe(col.name === "Node Selectors" ? 10 : 0);
    }
  }
});
