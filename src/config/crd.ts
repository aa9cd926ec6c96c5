/**
 * CustomResourceDefinitions for the metallb.io kinds, generated from the zod schemas so that the
 * schemas stay the single source of truth. `scripts/gen-crds.ts` writes them to deploy/crds/;
 * a unit test regenerates them and fails on drift.
 *
 * Kubernetes wants *structural* OpenAPI v3.0 schemas: no `$ref`, a `type` at every level, no
 * `additionalProperties` beside `properties`, `x-kubernetes-int-or-string` instead of a number|string
 * union. zod's `z.toJSONSchema(..., { target: "openapi-3.0" })` output is post-processed here.
 */

import { stringify } from "yaml";
import { z } from "zod";
import {
  BFDProfileSpec,
  BGPAdvertisementSpec,
  BGPPeerSpec,
  CommunitySpec,
  IPAddressPoolSpec,
  L2AdvertisementSpec,
} from "./schemas.ts";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

const DROP = new Set(["$schema", "propertyNames", "$id", "id"]);

function isObj(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Makes a zod-emitted schema structural (see the module comment). */
export function structural(s: Json): Json {
  if (Array.isArray(s)) return s.map(structural);
  if (!isObj(s)) return s;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(s)) {
    if (DROP.has(k)) continue;
    // The API server evaluates patterns with Go's RE2, which has no \uXXXX escape: use \x{XXXX}.
    out[k] =
      k === "pattern" && typeof v === "string" ? v.replace(/\\u([0-9A-Fa-f]{4})/g, "\\x{$1}") : structural(v);
  }
  // number|string unions (e.g. targetPort) → int-or-string.
  const variants = out.anyOf ?? out.oneOf;
  if (Array.isArray(variants)) {
    const types = variants.map((v) => (isObj(v) ? v.type : undefined));
    if (
      types.length === 2 &&
      types.includes("string") &&
      (types.includes("integer") || types.includes("number"))
    ) {
      delete out.anyOf;
      delete out.oneOf;
      out["x-kubernetes-int-or-string"] = true;
    }
  }
  if (isObj(out.properties) && "additionalProperties" in out) delete out.additionalProperties;
  if (out.type === "object" && !("properties" in out) && !("additionalProperties" in out))
    out["x-kubernetes-preserve-unknown-fields"] = true;
  return out;
}

function assertNoRef(s: Json, where: string): void {
  const text = JSON.stringify(s);
  if (text.includes('"$ref"')) throw new Error(`CRD schema for ${where} still has a $ref`);
}

/** A column of `kubectl get` (additionalPrinterColumns), as MetalLB's CRDs declare them. */
interface PrinterColumn {
  name: string;
  jsonPath: string;
  type: "string" | "boolean" | "integer";
  priority?: number;
}

interface CrdSpec {
  kind: string;
  plural: string;
  spec: z.ZodType;
  versions: string[]; // first is the storage version
  specRequired: boolean;
  columns: PrinterColumn[];
}

const col = (
  name: string,
  field: string,
  type: PrinterColumn["type"] = "string",
  priority?: number,
): PrinterColumn => ({
  name,
  jsonPath: `.spec.${field}`,
  type,
  ...(priority !== undefined ? { priority } : {}),
});

export const CRDS: CrdSpec[] = [
  {
    kind: "IPAddressPool",
    plural: "ipaddresspools",
    spec: IPAddressPoolSpec,
    versions: ["v1beta1"],
    specRequired: true,
    columns: [
      col("Auto Assign", "autoAssign", "boolean"),
      col("Avoid Buggy IPs", "avoidBuggyIPs", "boolean"),
      col("Addresses", "addresses"),
    ],
  },
  {
    kind: "L2Advertisement",
    plural: "l2advertisements",
    spec: L2AdvertisementSpec,
    versions: ["v1beta1"],
    specRequired: false,
    columns: [
      col("IPAddressPools", "ipAddressPools"),
      col("IPAddressPool Selectors", "ipAddressPoolSelectors"),
      col("Interfaces", "interfaces"),
      col("Node Selectors", "nodeSelectors", "string", 10),
    ],
  },
  {
    kind: "BGPAdvertisement",
    plural: "bgpadvertisements",
    spec: BGPAdvertisementSpec,
    versions: ["v1beta1"],
    specRequired: false,
    columns: [
      col("IPAddressPools", "ipAddressPools"),
      col("IPAddressPool Selectors", "ipAddressPoolSelectors"),
      col("Peers", "peers"),
      col("Node Selectors", "nodeSelectors", "string", 10),
    ],
  },
  {
    kind: "BGPPeer",
    plural: "bgppeers",
    spec: BGPPeerSpec,
    versions: ["v1beta2", "v1beta1"],
    specRequired: true,
    columns: [
      col("Address", "peerAddress"),
      col("ASN", "peerASN"),
      col("BFD Profile", "bfdProfile"),
      col("Multi Hops", "ebgpMultiHop"),
    ],
  },
  {
    kind: "BFDProfile",
    plural: "bfdprofiles",
    spec: BFDProfileSpec,
    versions: ["v1beta1"],
    specRequired: false,
    columns: [
      col("Passive Mode", "passiveMode", "boolean"),
      col("Transmit Interval", "transmitInterval", "integer"),
      col("Receive Interval", "receiveInterval", "integer"),
      col("Multiplier", "detectMultiplier", "integer"),
    ],
  },
  {
    kind: "Community",
    plural: "communities",
    spec: CommunitySpec,
    versions: ["v1beta1"],
    specRequired: false,
    columns: [], // MetalLB's Community CRD prints none either
  },
];

export function crdObject(c: CrdSpec): JsonObject {
  const spec = structural(z.toJSONSchema(c.spec, { target: "openapi-3.0", io: "input" }) as Json);
  assertNoRef(spec, c.kind);
  const schema: JsonObject = {
    type: "object",
    description: `${c.kind} (metallb.io), as read by vipd. Generated from src/config/schemas.ts.`,
    properties: {
      apiVersion: { type: "string" },
      kind: { type: "string" },
      metadata: { type: "object" },
      spec,
      status: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
    },
    ...(c.specRequired ? { required: ["spec"] } : {}),
  };
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${c.plural}.metallb.io` },
    spec: {
      group: "metallb.io",
      names: { kind: c.kind, listKind: `${c.kind}List`, plural: c.plural, singular: c.kind.toLowerCase() },
      scope: "Namespaced",
      versions: c.versions.map((v, i) => ({
        name: v,
        served: true,
        storage: i === 0,
        ...(c.columns.length > 0 ? { additionalPrinterColumns: c.columns.map((x) => ({ ...x })) } : {}),
        schema: { openAPIV3Schema: schema },
        subresources: { status: {} },
      })),
    },
  };
}

/** The CRD files: name → YAML text. */
export function renderCrds(): Map<string, string> {
  const out = new Map<string, string>();
  for (const c of CRDS) {
    const header = "# Generated by scripts/gen-crds.ts from src/config/schemas.ts. Do not edit.\n";
    out.set(
      `metallb.io_${c.plural}.yaml`,
      header + stringify(crdObject(c), { lineWidth: 0, aliasDuplicateObjects: false }),
    );
  }
  return out;
}
