/**
 * First-boot and site configuration of the edge-node image, the pure part: given what is on the
 * seed partition, what is in /etc/vipd now, what was applied before and the admin token stored
 * on the state partition, decide which files to write and remove. No I/O, no clock; randomness
 * comes in as bytes.
 *
 * Policy:
 * - A seed (manifests on the VIPDSEED partition, written at flash time) is applied when its
 *   digest differs from the last one applied — on first boot, and again whenever someone edits
 *   the seed. It replaces the manifests in /etc/vipd. An invalid seed changes nothing: the
 *   problems are reported and the running configuration stays.
 * - With the seed unchanged, /etc/vipd is left as it is (changes made through the API survive).
 * - The result always has a NodeSettings with at least one admin token. When the site supplied
 *   none, a token is generated once (from the random bytes passed in), kept on the state
 *   partition, and only its sha256 goes into the NodeSettings. No token is ever in the image.
 */

import { isMap, isSeq, parseAllDocuments, stringify, type YAMLMap } from "yaml";

export interface SeedInput {
  /** Manifest files on the seed partition (file name → text); null when there is no seed partition. */
  seed: ReadonlyMap<string, string> | null;
  /** Digest of the seed applied last (kept on the state partition); null before the first apply. */
  appliedDigest: string | null;
  /** Manifest files in /etc/vipd now (file name → text). */
  current: ReadonlyMap<string, string>;
  /** The admin token generated on an earlier boot (state partition); null when there is none. */
  storedToken: string | null;
  /** 32 random bytes, used only when a token has to be generated. */
  randomBytes: Uint8Array;
  /** Validates a complete set of manifest files; returns one line per problem (none when valid). */
  validate: (files: ReadonlyMap<string, string>) => string[];
}

export interface SeedPlan {
  /** Files to write into /etc/vipd (file name → text). */
  write: Map<string, string>;
  /** Files to delete from /etc/vipd. */
  remove: string[];
  /** The digest to record as applied; null when it does not change. */
  appliedDigest: string | null;
  /** A newly generated admin token to store on the state partition (root only); null otherwise. */
  newToken: string | null;
  /** What happened, one line each, for the journal and the console. */
  notes: string[];
  /** Problems of a rejected seed (the seed was not applied). */
  rejected: string[];
}

/** The NodeSettings written when the site supplied none: the API on every address, token required. */
export const DEFAULT_NODE_FILE = "node.yaml";
export const DEFAULT_API_LISTEN = "0.0.0.0:7473";
export const GENERATED_TOKEN_NAME = "admin-firstboot";

const MANIFEST = /^[^/\\]+\.(ya?ml|json)$/;

export function isManifestName(name: string): boolean {
  return MANIFEST.test(name) && !name.startsWith(".");
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function sha256Hex(text: string): string {
  return new Bun.CryptoHasher("sha256").update(text).digest("hex");
}

/** A digest of a set of files that does not depend on their order. */
export function seedDigest(files: ReadonlyMap<string, string>): string {
  const h = new Bun.CryptoHasher("sha256");
  for (const name of [...files.keys()].sort()) {
    const text = files.get(name) ?? "";
    h.update(`${name}\0${new TextEncoder().encode(text).length}\0${text}`);
  }
  return h.digest("hex");
}

interface NodeSettingsDoc {
  file: string;
  hasAdminToken: boolean;
}

function findNodeSettings(files: ReadonlyMap<string, string>): NodeSettingsDoc | null {
  for (const name of [...files.keys()].sort()) {
    const docs = parseAllDocuments(files.get(name) ?? "");
    if (!Array.isArray(docs)) continue;
    for (const d of docs) {
      const js: unknown = d.toJS();
      if (typeof js !== "object" || js === null || (js as { kind?: unknown }).kind !== "NodeSettings")
        continue;
      const tokens = (js as { spec?: { api?: { tokens?: unknown } } }).spec?.api?.tokens;
      const hasAdminToken =
        Array.isArray(tokens) &&
        tokens.some((t) => typeof t === "object" && t !== null && (t as { role?: unknown }).role === "admin");
      return { file: name, hasAdminToken };
    }
  }
  return null;
}

/** Adds a token entry to the (first) NodeSettings document of `text`, keeping everything else. */
export function addTokenToNodeSettings(
  text: string,
  entry: { name: string; role: string; hash: string },
): string {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new Error("not YAML");
  for (const d of docs) {
    const js: unknown = d.toJS();
    if (typeof js !== "object" || js === null || (js as { kind?: unknown }).kind !== "NodeSettings") continue;
    if (!isMap(d.get("spec"))) d.set("spec", d.createNode({}));
    const spec = d.get("spec") as YAMLMap;
    if (!isMap(spec.get("api"))) spec.set("api", d.createNode({}));
    const api = spec.get("api") as YAMLMap;
    if (!isSeq(api.get("tokens"))) api.set("tokens", d.createNode([]));
    const tokens = api.get("tokens");
    if (isSeq(tokens)) tokens.add(d.createNode(entry));
    break;
  }
  return docs.map((d) => d.toString()).join("");
}

export function defaultNodeSettings(tokenHash: string): string {
  return (
    "# Written on first boot by vipd-seed: the site supplied no NodeSettings.\n" +
    stringify({
      apiVersion: "vipd.io/v1alpha1",
      kind: "NodeSettings",
      metadata: { name: "node" },
      spec: {
        api: {
          listen: DEFAULT_API_LISTEN,
          tokens: [{ name: GENERATED_TOKEN_NAME, role: "admin", hash: tokenHash }],
        },
      },
    })
  );
}

export function planSeed(input: SeedInput): SeedPlan {
  const plan: SeedPlan = {
    write: new Map(),
    remove: [],
    appliedDigest: null,
    newToken: null,
    notes: [],
    rejected: [],
  };
  // What /etc/vipd will hold after this boot's seed step.
  let files = new Map(input.current);

  const seed = input.seed === null ? null : new Map([...input.seed].filter(([n]) => isManifestName(n)));
  if (seed === null) {
    plan.notes.push("no seed partition");
  } else if (seed.size === 0) {
    plan.notes.push("seed partition holds no manifests");
  } else {
    const digest = seedDigest(seed);
    if (digest === input.appliedDigest) {
      plan.notes.push(`seed ${digest.slice(0, 12)} already applied; keeping /etc/vipd`);
    } else {
      const problems = input.validate(seed);
      if (problems.length > 0) {
        plan.rejected = problems;
        plan.notes.push(
          `seed ${digest.slice(0, 12)} rejected (${problems.length} problem(s)); keeping the current configuration`,
        );
      } else {
        plan.notes.push(`applying seed ${digest.slice(0, 12)}: ${[...seed.keys()].sort().join(", ")}`);
        for (const name of input.current.keys()) if (!seed.has(name)) plan.remove.push(name);
        for (const [name, text] of seed) if (input.current.get(name) !== text) plan.write.set(name, text);
        plan.appliedDigest = digest;
        files = seed;
      }
    }
  }

  const ns = findNodeSettings(files);
  if (ns?.hasAdminToken) return plan;
  const token = input.storedToken ?? hex(input.randomBytes);
  if (input.storedToken === null) {
    if (input.randomBytes.length < 32) throw new Error("need 32 random bytes to generate a token");
    plan.newToken = token;
    plan.notes.push("generated an admin token (kept in the state directory, root only)");
  }
  const hash = `sha256:${sha256Hex(token)}`;
  if (ns === null) {
    plan.write.set(DEFAULT_NODE_FILE, defaultNodeSettings(hash));
    plan.remove = plan.remove.filter((n) => n !== DEFAULT_NODE_FILE);
    plan.notes.push(
      `no NodeSettings: wrote ${DEFAULT_NODE_FILE} (API on ${DEFAULT_API_LISTEN}, admin token)`,
    );
  } else {
    const text = files.get(ns.file) ?? "";
    plan.write.set(
      ns.file,
      addTokenToNodeSettings(text, { name: GENERATED_TOKEN_NAME, role: "admin", hash }),
    );
    plan.notes.push(`NodeSettings in ${ns.file} has no admin token: added ${GENERATED_TOKEN_NAME}`);
  }
  return plan;
}
