/**
 * Small, pure HTTP helpers for the API: content negotiation (RFC 9110 §12.5.1 Accept with
 * q-values), media-type parsing (§8.3.1), entity-tag lists for If-Match / If-None-Match
 * (§13.1.1, §13.1.2, strong comparison for If-Match), and a request-body reader that stops at
 * a byte limit instead of buffering whatever a client sends.
 */

export type ErrorCode =
  | "BadRequest"
  | "Unauthorized"
  | "Forbidden"
  | "NotFound"
  | "MethodNotAllowed"
  | "NotAcceptable"
  | "PreconditionFailed"
  | "PayloadTooLarge"
  | "UnsupportedMediaType"
  | "PreconditionRequired"
  | "InvalidConfig"
  | "InternalError"
  | "Conflict"
  | "UnknownVip"
  | "NotOwner"
  | "NotEligible"
  | "NoCandidate"
  | "NoCluster"
  | "TooDeep"
  | "TooManyDocuments"
  | "TooManyNodes"
  | "ValidationTimeout"
  | "ValidationFailed"
  | "Busy"
  | "NoQuorum"
  | "EmptyConfig"
  | "NoAdminToken"
  | "NotImplemented"
  // System updates (src/api/system-routes.ts).
  | "EmptyBody"
  | "IncompleteBody"
  | "InvalidBundle"
  | "IncompatibleBundle"
  | "UpdateInProgress"
  | "Rebooting"
  | "InstallFailed";

export interface MediaType {
  type: string;
  subtype: string;
  params: Record<string, string>;
}

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const TYPE_RE = new RegExp(`^\\s*(${TOKEN})/(${TOKEN})\\s*`, "y");
const PARAM_RE = new RegExp(`;\\s*(${TOKEN})\\s*=\\s*("(?:[^"\\\\]|\\\\.)*"|${TOKEN})\\s*`, "y");
const EMPTY_PARAM_RE = /;\s*/y;

/** Parses `type/subtype; k=v; k="v"`; null when malformed. Names are lower-cased. */
export function parseMediaType(s: string): MediaType | null {
  TYPE_RE.lastIndex = 0;
  const m = TYPE_RE.exec(s);
  if (!m) return null;
  const params: Record<string, string> = {};
  let i = TYPE_RE.lastIndex;
  while (i < s.length) {
    PARAM_RE.lastIndex = i;
    const kv = PARAM_RE.exec(s);
    if (kv) {
      const raw = kv[2]!;
      params[kv[1]!.toLowerCase()] = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, "$1") : raw;
      i = PARAM_RE.lastIndex;
      continue;
    }
    EMPTY_PARAM_RE.lastIndex = i;
    if (!EMPTY_PARAM_RE.exec(s) || EMPTY_PARAM_RE.lastIndex === i) return null;
    i = EMPTY_PARAM_RE.lastIndex;
  }
  return { type: m[1]!.toLowerCase(), subtype: m[2]!.toLowerCase(), params };
}

interface AcceptRange {
  type: string;
  subtype: string;
  q: number;
}

function parseAccept(header: string): AcceptRange[] {
  const out: AcceptRange[] = [];
  for (const item of header.split(",")) {
    if (item.trim() === "") continue;
    const mt = parseMediaType(item);
    if (!mt) continue; // an unparseable range is ignored, as browsers' oddities are
    const qs = mt.params["q"];
    const q = qs === undefined ? 1 : Number(qs);
    out.push({ type: mt.type, subtype: mt.subtype, q: Number.isFinite(q) ? Math.min(Math.max(q, 0), 1) : 0 });
  }
  return out;
}

/**
 * The quality the Accept header gives `type/subtype`: the most specific matching range wins
 * (RFC 9110 §12.5.1). A missing or empty header accepts everything (q = 1).
 */
export function acceptQuality(header: string | undefined, type: string, subtype: string): number {
  if (header === undefined || header.trim() === "") return 1;
  const ranges = parseAccept(header);
  if (ranges.length === 0) return 1;
  let best = -1;
  let q = 0;
  for (const r of ranges) {
    let spec = -1;
    if (r.type === type && r.subtype === subtype) spec = 2;
    else if (r.type === type && r.subtype === "*") spec = 1;
    else if (r.type === "*" && r.subtype === "*") spec = 0;
    if (spec > best) {
      best = spec;
      q = r.q;
    }
  }
  return best < 0 ? 0 : q;
}

/** Picks the offered type with the highest quality (ties: the first offered); null if none. */
export function negotiate(header: string | undefined, offers: readonly string[]): string | null {
  let pick: string | null = null;
  let pickQ = 0;
  for (const o of offers) {
    const [t, s] = o.split("/");
    const q = acceptQuality(header, t!, s!);
    if (q > pickQ) {
      pick = o;
      pickQ = q;
    }
  }
  return pick;
}

/**
 * Parses an If-Match / If-None-Match value: "*" or a list of entity-tags. Returns null when
 * malformed. Weak tags keep their `W/` prefix so strong comparison can reject them.
 */
export function parseEtagList(header: string): "*" | string[] | null {
  const h = header.trim();
  if (h === "*") return "*";
  const tags: string[] = [];
  const re = /\s*(?:((?:W\/)?"[\x21\x23-\x7e\x80-\xff]*")\s*)?(,|$)/y;
  let i = 0;
  while (i < h.length) {
    re.lastIndex = i;
    const m = re.exec(h);
    if (!m || re.lastIndex === i) return null;
    if (m[1] !== undefined) tags.push(m[1]);
    i = re.lastIndex;
  }
  return tags.length > 0 ? tags : null;
}

/** Strong comparison (RFC 9110 §8.8.3.2): both strong and byte-identical. */
export function strongMatch(tag: string, currentQuoted: string): boolean {
  return !tag.startsWith("W/") && tag === currentQuoted;
}

/** Weak comparison, used by If-None-Match. */
export function weakMatch(tag: string, currentQuoted: string): boolean {
  const strip = (t: string) => (t.startsWith("W/") ? t.slice(2) : t);
  return strip(tag) === strip(currentQuoted);
}

export type BodyRead = { ok: true; bytes: Uint8Array } | { ok: false; tooLarge: true };

/**
 * Reads a request body, giving up (and cancelling the stream) as soon as it exceeds `limit`
 * bytes. A Content-Length above the limit is refused before reading anything.
 */
export async function readBodyLimited(req: Request, limit: number): Promise<BodyRead> {
  const declared = req.headers.get("content-length");
  if (declared !== null && /^[0-9]+$/.test(declared.trim()) && Number(declared) > limit) {
    return { ok: false, tooLarge: true };
  }
  if (req.body === null) return { ok: true, bytes: new Uint8Array(0) };
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      return { ok: false, tooLarge: true };
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return { ok: true, bytes: out };
}

/**
 * A refusal with a status, a machine-readable code and a message for a person; thrown by
 * handlers and middleware, rendered as `{ "error": code, "message": message, ...extra }`.
 */
export class ApiError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 405 | 406 | 409 | 412 | 413 | 415 | 422 | 428 | 500 | 501 | 503,
    readonly code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}
