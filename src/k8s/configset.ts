/**
 * Which metallb.io objects are in force, and why the others are not: the pure rule shared by the
 * configuration vipd runs (src/k8s/state.ts) and its admission webhook (src/k8s/webhook.ts).
 *
 * Objects are read with the same zod schemas and cross-object checks as `vipd validate`
 * (src/config). When the objects the API server holds do not validate as a set (they got in
 * while the webhook was off or down), vipd does not freeze:
 *
 * - an object that fails its own schema is left out;
 * - the set in force is rebuilt by adding objects one at a time — first those already in force
 *   and unchanged, then the others oldest first (creationTimestamp, then kind and name) — and an
 *   object is left out when adding it would make the set fail a cross-object check (an overlap,
 *   a duplicate alias, a reference to a missing or left-out object). So a bad object and
 *   everything that depends on it stay out, and every unrelated change applies.
 *
 * Values in, values out: no I/O, no clock.
 */

import type { Loaded, Problem } from "../config/index.ts";
import { fieldPath, jsonPointer, type PathKey } from "../config/load.ts";
import { type Kind, ObjectMeta, SCHEMAS } from "../config/schemas.ts";
import { buildConfig } from "../config/validate.ts";
import type { KubeObject } from "./client.ts";

/** One metallb.io object as read from the API server. */
export interface CrObject {
  kind: Kind;
  obj: KubeObject;
}

/** An object left out of the configuration, and why. */
export interface Rejected {
  kind: string;
  namespace: string;
  name: string;
  uid: string | undefined;
  problems: Problem[];
}

export interface CrSelection {
  /** The objects in force, validated. */
  accepted: Loaded[];
  /** The objects left out, each with its problems (in the order they were found). */
  rejected: Rejected[];
}

export const META_KEYS = Object.keys(ObjectMeta.shape);

/** The keys of `o` named in `keys` that hold a value (the API server adds fields vipd does not read). */
export const pick = (o: unknown, keys: readonly string[]): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  if (o === null || typeof o !== "object") return out;
  for (const k of keys) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined && v !== null) out[k] = v;
  }
  return out;
};

/** The name vipd gives an object in problems and logs: `Kind/namespace/name`. */
export const crFile = (kind: string, o: KubeObject): string =>
  `${kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;

/** Objects from the API server have no source lines (one function shared by all). */
const noLine = (): number => 0;

/** A validated object, or the problems of its schema. */
export function loadObject(kind: Kind, obj: Record<string, unknown>, file: string): Loaded | Problem[] {
  const r = SCHEMAS[kind].safeParse(obj);
  if (r.success) return { kind, obj: r.data, file, doc: 0, line: 0, lineOf: noLine } as Loaded;
  return r.error.issues.map((i) => ({
    file,
    line: 0,
    kind,
    name: String((obj.metadata as { name?: unknown } | undefined)?.name ?? ""),
    field: fieldPath(i.path as PathKey[]),
    message: i.message,
    pointer: jsonPointer(i.path as PathKey[]),
  }));
}

const decode = (b64: unknown): string | undefined =>
  typeof b64 === "string" ? Buffer.from(b64, "base64").toString("utf8") : undefined;

/**
 * The manifest of a metallb.io object (the fields the schemas know). A BGPPeer's
 * `passwordSecret` is resolved from `secrets` (kubernetes.io/basic-auth, key "password");
 * a missing one is a problem of the peer.
 */
export function crManifest(
  c: CrObject,
  secrets: ReadonlyMap<string, KubeObject>,
  namespace: string,
): Record<string, unknown> | Problem {
  const o = c.obj;
  const m: Record<string, unknown> = {
    apiVersion: o.apiVersion ?? "metallb.io/v1beta1",
    kind: c.kind,
    metadata: pick(o.metadata, META_KEYS),
    spec: o.spec ?? {},
  };
  const spec = m.spec as Record<string, unknown>;
  // MetalLB reads a secret only when the reference has a name; `passwordSecret: {}` (its own
  // converter writes it) is no reference, and the schema drops it.
  const ref = spec.passwordSecret as { name?: string } | undefined;
  if (c.kind === "BGPPeer" && ref?.name) {
    const pw = decode((secrets.get(ref.name ?? "")?.data as Record<string, unknown> | undefined)?.password);
    if (pw === undefined)
      return {
        file: crFile(c.kind, o),
        line: 0,
        kind: c.kind,
        name: o.metadata.name,
        field: "spec.passwordSecret",
        message: `secret "${ref.name}" (key "password") not found in namespace ${namespace}`,
        pointer: "/spec/passwordSecret",
      };
    const { passwordSecret: _, ...rest } = spec;
    m.spec = { ...rest, password: pw };
  }
  return m;
}

const created = (o: KubeObject): string => String(o.metadata.creationTimestamp ?? "");

/** A stable identity of an object's content: unchanged objects keep their place in force. */
export const contentKey = (l: Loaded): string => `${l.file}\n${JSON.stringify(l.obj)}`;

/**
 * The rule above. `inForce`: content keys of the objects in force before (empty at start).
 */
export function selectCrs(
  objects: readonly CrObject[],
  secrets: ReadonlyMap<string, KubeObject>,
  namespace: string,
  inForce: ReadonlySet<string>,
): CrSelection {
  const rejected = new Map<string, Rejected>();
  const reject = (c: CrObject, problems: Problem[]) => {
    const file = crFile(c.kind, c.obj);
    const r = rejected.get(file);
    if (r !== undefined) r.problems.push(...problems);
    else
      rejected.set(file, {
        kind: c.kind,
        namespace: c.obj.metadata.namespace ?? namespace,
        name: c.obj.metadata.name,
        uid: c.obj.metadata.uid,
        problems: [...problems],
      });
  };
  const valid: { c: CrObject; l: Loaded }[] = [];
  for (const c of objects) {
    const m = crManifest(c, secrets, namespace);
    if (!("apiVersion" in m)) {
      reject(c, [m as Problem]);
      continue;
    }
    const l = loadObject(c.kind, m, crFile(c.kind, c.obj));
    if (Array.isArray(l)) reject(c, l);
    else valid.push({ c, l });
  }
  const all = buildConfig(valid.map((v) => v.l));
  if (all.problems.length === 0) return { accepted: valid.map((v) => v.l), rejected: [...rejected.values()] };

  const order = (a: { c: CrObject }, b: { c: CrObject }): number => {
    const ka = `${created(a.c.obj)}\n${a.c.kind}\n${a.c.obj.metadata.name}`;
    const kb = `${created(b.c.obj)}\n${b.c.kind}\n${b.c.obj.metadata.name}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };
  const kept = valid.filter((v) => inForce.has(contentKey(v.l))).sort(order);
  const others = valid.filter((v) => !inForce.has(contentKey(v.l))).sort(order);
  const accepted: { c: CrObject; l: Loaded }[] = [];
  for (const v of [...kept, ...others]) {
    const r = buildConfig([...accepted.map((a) => a.l), v.l]);
    // Only problems of the candidate itself, or new ones, leave it out (the set so far is clean).
    if (r.problems.length === 0) accepted.push(v);
    else reject(v.c, r.problems);
  }
  return { accepted: accepted.map((a) => a.l), rejected: [...rejected.values()] };
}

/** One line per problem, as `vipd validate` words them (without file and line). */
export function describeProblems(ps: readonly Problem[]): string {
  return ps.map((p) => `${p.kind ?? ""}/${p.name ?? ""}: ${p.field}: ${p.message}`).join("; ");
}

export type AdmissionOp = "CREATE" | "UPDATE" | "DELETE" | "CONNECT";

const problemKey = (p: Problem): string => `${p.file}\n${p.field}\n${p.message}`;

function validLoaded(
  objects: readonly CrObject[],
  secrets: ReadonlyMap<string, KubeObject>,
  namespace: string,
) {
  const out: Loaded[] = [];
  for (const c of objects) {
    const m = crManifest(c, secrets, namespace);
    if (!("apiVersion" in m)) continue;
    const l = loadObject(c.kind, m, crFile(c.kind, c.obj));
    if (!Array.isArray(l)) out.push(l);
  }
  return out;
}

/**
 * Admission of one metallb.io object: its own problems (schema, a missing password Secret, the
 * wrong namespace), and the cross-object problems it would add to the objects in vipd's
 * namespace (`current`: as the API server holds them now). Problems the current objects already
 * have are not the request's fault and do not refuse it. Empty: admit.
 */
export function admissionProblems(
  current: readonly CrObject[],
  secrets: ReadonlyMap<string, KubeObject>,
  namespace: string,
  op: AdmissionOp,
  target: CrObject,
): Problem[] {
  if (op !== "CREATE" && op !== "UPDATE") return [];
  const file = crFile(target.kind, target.obj);
  const ns = target.obj.metadata.namespace ?? "";
  if (ns !== namespace)
    return [
      {
        file,
        line: 0,
        kind: target.kind,
        name: target.obj.metadata.name,
        field: "metadata.namespace",
        message: `vipd reads metallb.io objects only from its namespace "${namespace}"; create it there (this one would be ignored)`,
        pointer: "/metadata/namespace",
      },
    ];
  const m = crManifest(target, secrets, namespace);
  if (!("apiVersion" in m)) return [m as Problem];
  const own = loadObject(target.kind, m, file);
  if (Array.isArray(own)) return own;
  const others = current.filter(
    (c) => !(c.kind === target.kind && c.obj.metadata.name === target.obj.metadata.name),
  );
  const before = new Set(buildConfig(validLoaded(current, secrets, namespace)).problems.map(problemKey));
  const after = buildConfig([...validLoaded(others, secrets, namespace), own]).problems;
  return after.filter((p) => !before.has(problemKey(p)));
}
