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
 *   A stored token whose hash the resulting configuration no longer holds (a fixed seed brought
 *   its own admin tokens) is removed, so the file never names a token that does not work.
 * - A rejected seed on a node that has no configuration of its own yet (a fresh node, or one
 *   that only ever had the fallback NodeSettings written here) leaves vipd not ready: the seed
 *   state (./state.ts, written to the state partition) says so, and vipd reports it on /readyz
 *   and GET /api/v1/system/seed.
 */

import { isMap, isSeq, parseAllDocuments, stringify, type YAMLMap } from "yaml";
import type { SeedState } from "../../src/system/seed-state.ts";

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
  /** The stored admin token no longer works (its hash is not in the configuration): delete it. */
  removeToken: boolean;
  /** What vipd shows of this boot's seed step (written to the state partition; main adds the time). */
  state: Omit<SeedState, "checkedAt">;
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
  /** Every token hash it lists, lower case. */
  hashes: string[];
}

/** The first line of the NodeSettings vipd-seed writes when the configuration has none. */
export const FALLBACK_MARK = "# Written by vipd-seed";

function findNodeSettings(files: ReadonlyMap<string, string>): NodeSettingsDoc | null {
  for (const name of [...files.keys()].sort()) {
    const docs = parseAllDocuments(files.get(name) ?? "");
    if (!Array.isArray(docs)) continue;
    for (const d of docs) {
      const js: unknown = d.toJS();
      if (typeof js !== "object" || js === null || (js as { kind?: unknown }).kind !== "NodeSettings")
        continue;
      const tokens = (js as { spec?: { api?: { tokens?: unknown } } }).spec?.api?.tokens;
      const list = Array.isArray(tokens)
        ? tokens.filter((t): t is { role?: unknown; hash?: unknown } => typeof t === "object" && t !== null)
        : [];
      const hasAdminToken = list.some((t) => t.role === "admin");
      const hashes = list.flatMap((t) => (typeof t.hash === "string" ? [t.hash.toLowerCase()] : []));
      return { file: name, hasAdminToken, hashes };
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

/** Why vipd-seed writes its fallback NodeSettings (the first comment line of node.yaml says it). */
export type FallbackWhy = "no-seed" | "seed-without-node-settings" | "seed-rejected";

const FALLBACK_WHY: Record<FallbackWhy, string> = {
  "no-seed": "the seed partition holds no configuration",
  "seed-without-node-settings": "the site's seed has no NodeSettings",
  "seed-rejected":
    "the site's seed was rejected and this node has no configuration of its own. vipd starts NOT READY;\n" +
    "# GET /readyz and GET /api/v1/system/seed say why (admin token: /var/lib/vipd/admin-token).\n" +
    "# Fix the seed (image/seed.sh) and reboot",
};

export function defaultNodeSettings(tokenHash: string, why: FallbackWhy = "no-seed"): string {
  return (
    `${FALLBACK_MARK}: ${FALLBACK_WHY[why]}.\n` +
    "# The API listens on every address and needs the generated admin token.\n" +
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

/**
 * Whether /etc/vipd holds a configuration of its own: anything but (at most) the fallback
 * NodeSettings this program writes.
 */
export function hasOwnConfig(current: ReadonlyMap<string, string>): boolean {
  for (const [name, text] of current) {
    if (name === DEFAULT_NODE_FILE && text.startsWith(FALLBACK_MARK)) continue;
    return true;
  }
  return false;
}

export function planSeed(input: SeedInput): SeedPlan {
  const plan: SeedPlan = {
    write: new Map(),
    remove: [],
    appliedDigest: null,
    newToken: null,
    notes: [],
    rejected: [],
    removeToken: false,
    state: {
      seed: "none",
      digest: null,
      appliedDigest: input.appliedDigest,
      files: [],
      problems: [],
      configured: hasOwnConfig(input.current),
    },
  };
  // What /etc/vipd will hold after this boot's seed step.
  let files = new Map(input.current);
  let why: FallbackWhy = "no-seed";

  const seed = input.seed === null ? null : new Map([...input.seed].filter(([n]) => isManifestName(n)));
  if (seed === null) {
    plan.notes.push("no seed partition");
  } else if (seed.size === 0) {
    plan.notes.push("seed partition holds no manifests");
    plan.state.seed = "empty";
  } else {
    const digest = seedDigest(seed);
    plan.state.digest = digest;
    plan.state.files = [...seed.keys()].sort();
    why = "seed-without-node-settings";
    if (digest === input.appliedDigest) {
      plan.notes.push(`seed ${digest.slice(0, 12)} already applied; keeping /etc/vipd`);
      plan.state.seed = "unchanged";
    } else {
      const problems = input.validate(seed);
      if (problems.length > 0) {
        plan.rejected = problems;
        plan.state.seed = "rejected";
        plan.state.problems = problems;
        why = "seed-rejected";
        plan.notes.push(
          plan.state.configured
            ? `seed ${digest.slice(0, 12)} rejected (${problems.length} problem(s)); keeping the current configuration in /etc/vipd`
            : `seed ${digest.slice(0, 12)} rejected (${problems.length} problem(s)); this node has no configuration yet: ` +
                "vipd starts NOT READY (GET /readyz and GET /api/v1/system/seed say why) until a valid seed is " +
                "written (image/seed.sh) and the node rebooted",
        );
      } else {
        plan.state.seed = "applied";
        plan.state.appliedDigest = digest;
        plan.state.configured = true;
        plan.notes.push(`applying seed ${digest.slice(0, 12)}: ${[...seed.keys()].sort().join(", ")}`);
        for (const name of input.current.keys()) if (!seed.has(name)) plan.remove.push(name);
        for (const [name, text] of seed) if (input.current.get(name) !== text) plan.write.set(name, text);
        plan.appliedDigest = digest;
        files = seed;
      }
    }
  }

  const ns = findNodeSettings(files);
  if (ns?.hasAdminToken) {
    // A token generated on an earlier boot that this configuration no longer accepts (a fixed
    // seed brought its own admin tokens): remove it, so the file never points at a dead token.
    if (input.storedToken !== null && !ns.hashes.includes(`sha256:${sha256Hex(input.storedToken)}`)) {
      plan.removeToken = true;
      plan.notes.push(
        `removed the admin token generated on an earlier boot (the state directory's admin-token): ` +
          `the configuration (${ns.file}) has its own admin tokens and no longer accepts it`,
      );
    }
    return plan;
  }
  const token = input.storedToken ?? hex(input.randomBytes);
  if (input.storedToken === null) {
    if (input.randomBytes.length < 32) throw new Error("need 32 random bytes to generate a token");
    plan.newToken = token;
    plan.notes.push("generated an admin token (kept in the state directory, root only)");
  }
  const hash = `sha256:${sha256Hex(token)}`;
  if (ns === null) {
    const text = defaultNodeSettings(hash, why);
    // Rewritten only when it changes (its comment says why it is there, which can change).
    if (files.get(DEFAULT_NODE_FILE) !== text) plan.write.set(DEFAULT_NODE_FILE, text);
    plan.remove = plan.remove.filter((n) => n !== DEFAULT_NODE_FILE);
    plan.notes.push(
      `no NodeSettings: ${DEFAULT_NODE_FILE} is vipd-seed's fallback (API on ${DEFAULT_API_LISTEN}, ` +
        "the generated admin token)",
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
