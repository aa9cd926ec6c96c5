/**
 * Bearer-token authentication (RFC 6750) with two roles, `read` and `admin`.
 *
 * Tokens are configured only as SHA-256 hashes (`sha256:<64 hex digits>`), so a leaked
 * configuration does not leak a credential. A presented token is hashed and compared with
 * every configured hash in constant time (no early exit, equal-length digests), so neither the
 * time taken nor the order of the list tells which prefix or which token was close.
 *
 * @example
 * const tokens = [parseTokenConfig({ name: "ops", role: "admin", hash: hashToken("s3cret") })];
 * authenticate("Bearer s3cret", compileTokens(tokens)); // { ok: true, role: "admin", name: "ops" }
 */

import { createHash, timingSafeEqual } from "node:crypto";

export type Role = "read" | "admin";

export interface TokenConfig {
  /** For logs only; never the token itself. */
  name?: string;
  role: Role;
  /** `sha256:<hex>` of the token's UTF-8 bytes. */
  hash: string;
}

export interface CompiledToken {
  name: string;
  role: Role;
  digest: Uint8Array;
}

export type AuthResult =
  | { ok: true; role: Role; name: string }
  | { ok: false; reason: "MissingToken" | "MalformedAuthorization" | "UnknownToken" };

const HASH_RE = /^sha256:([0-9a-fA-F]{64})$/;
/** RFC 6750 §2.1 b64token. */
const B64TOKEN_RE = /^[A-Za-z0-9\-._~+/]+=*$/;

/** `sha256:<hex>` of a token, the form the configuration stores. */
export function hashToken(token: string): string {
  return `sha256:${createHash("sha256").update(token, "utf8").digest("hex")}`;
}

/** Checks one configured token; throws an Error naming the problem (never echoing the hash). */
export function parseTokenConfig(t: unknown, index = 0): TokenConfig {
  if (typeof t !== "object" || t === null) throw new Error(`tokens[${index}]: must be an object`);
  const o = t as Record<string, unknown>;
  const role = o["role"];
  if (role !== "read" && role !== "admin") {
    throw new Error(`tokens[${index}].role: must be "read" or "admin"`);
  }
  const hash = o["hash"];
  if (typeof hash !== "string" || !HASH_RE.test(hash)) {
    throw new Error(`tokens[${index}].hash: must be "sha256:" followed by 64 hex digits`);
  }
  const name = o["name"];
  if (name !== undefined && typeof name !== "string")
    throw new Error(`tokens[${index}].name: must be a string`);
  return name === undefined ? { role, hash } : { name, role, hash };
}

/** Checks and decodes the configured tokens; throws on a bad entry or a token listed twice. */
export function compileTokens(tokens: readonly TokenConfig[]): CompiledToken[] {
  const seen = new Map<string, number>();
  return tokens.map((t, i) => {
    const checked = parseTokenConfig(t, i);
    const hex = HASH_RE.exec(checked.hash)![1]!.toLowerCase();
    const first = seen.get(hex);
    if (first !== undefined) throw new Error(`tokens[${i}].hash: same token as tokens[${first}]`);
    seen.set(hex, i);
    return {
      name: checked.name ?? `token${i}`,
      role: checked.role,
      digest: Uint8Array.from(Buffer.from(hex, "hex")),
    };
  });
}

/**
 * As compileTokens, but never throws: a malformed entry or a token listed twice is left out (the
 * first of a duplicate is kept) and reported in `problems`. The running server reads its tokens
 * this way, so a bad list can never turn every protected route into a 500.
 */
export function compileTokensLenient(tokens: readonly TokenConfig[]): {
  tokens: CompiledToken[];
  problems: string[];
} {
  const seen = new Map<string, number>();
  const out: CompiledToken[] = [];
  const problems: string[] = [];
  tokens.forEach((t, i) => {
    let checked: TokenConfig;
    try {
      checked = parseTokenConfig(t, i);
    } catch (e) {
      problems.push((e as Error).message);
      return;
    }
    const hex = HASH_RE.exec(checked.hash)![1]!.toLowerCase();
    const first = seen.get(hex);
    if (first !== undefined) {
      problems.push(`tokens[${i}].hash: same token as tokens[${first}]; ignored`);
      return;
    }
    seen.set(hex, i);
    out.push({
      name: checked.name ?? `token${i}`,
      role: checked.role,
      digest: Uint8Array.from(Buffer.from(hex, "hex")),
    });
  });
  return { tokens: out, problems };
}

/** Authenticates an `Authorization` header value against the compiled tokens. */
export function authenticate(header: string | undefined, tokens: readonly CompiledToken[]): AuthResult {
  if (header === undefined || header.trim() === "") return { ok: false, reason: "MissingToken" };
  const m = /^Bearer +(\S+) *$/i.exec(header);
  if (!m || !B64TOKEN_RE.test(m[1]!)) return { ok: false, reason: "MalformedAuthorization" };
  const digest = createHash("sha256").update(m[1]!, "utf8").digest();
  let found: CompiledToken | undefined;
  for (const t of tokens) {
    // Every entry is compared, whatever matched before.
    const same = timingSafeEqual(digest, t.digest);
    if (same && found === undefined) found = t;
  }
  return found ? { ok: true, role: found.role, name: found.name } : { ok: false, reason: "UnknownToken" };
}

/** Whether `role` may use a route needing `need`. */
export function allows(role: Role, need: Role): boolean {
  return role === "admin" || need === "read";
}
