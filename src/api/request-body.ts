/**
 * Reading request bodies and query flags for the API's handlers: a YAML manifest body (415 on a
 * wrong media type or charset, before reading; 413 past the limit, streamed; 400 when not UTF-8),
 * a small JSON body (action routes), and `?name=true|false` flags. Every refusal is an ApiError.
 */

import { isUtf8 } from "node:buffer";
import type { Context } from "hono";
import { CLOSE, type Env } from "./context.ts";
import { ApiError, type BodyRead, parseMediaType, readBodyLimited } from "./http.ts";
import { YAML_TYPES } from "./routes.ts";

/** Refuses a body that is not YAML text in UTF-8 (415), before reading it. */
export function checkYamlContentType(header: string | undefined): void {
  const allowed = `send ${YAML_TYPES.join(", ")} (UTF-8)`;
  if (header === undefined)
    throw new ApiError(415, "UnsupportedMediaType", `Content-Type is missing; ${allowed}`);
  const mt = parseMediaType(header);
  const essence = mt ? `${mt.type}/${mt.subtype}` : "";
  if (!mt || !(YAML_TYPES as readonly string[]).includes(essence)) {
    throw new ApiError(
      415,
      "UnsupportedMediaType",
      `Content-Type ${JSON.stringify(header)} is not accepted; ${allowed}`,
    );
  }
  const cs = mt.params["charset"];
  if (cs !== undefined && cs.toLowerCase() !== "utf-8" && cs.toLowerCase() !== "utf8") {
    throw new ApiError(
      415,
      "UnsupportedMediaType",
      `charset ${JSON.stringify(cs)} is not accepted; send UTF-8`,
    );
  }
}

export function tooLarge(limit: number): ApiError {
  return new ApiError(413, "PayloadTooLarge", `the body exceeds the limit of ${limit} bytes`, CLOSE);
}

export async function readYaml(req: Request, limit: number): Promise<string> {
  const body = await readReserved(req, limit);
  if (!body.ok) throw tooLarge(limit);
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body.bytes);
  } catch {
    throw new ApiError(400, "BadRequest", "the body is not valid UTF-8");
  }
}

/**
 * The body as UTF-8 bytes, for BodyChecker.check (which moves them to its worker and decodes them
 * there): 413 past the limit, 400 when not UTF-8 — the same refusals as readYaml, without making
 * a string of the body on this thread (isUtf8 reads it in place: ~60 µs per MiB).
 */
export async function readYamlBytes(req: Request, limit: number): Promise<Uint8Array> {
  const body = await readReserved(req, limit);
  if (!body.ok) throw tooLarge(limit);
  if (!isUtf8(body.bytes)) throw new ApiError(400, "BadRequest", "the body is not valid UTF-8");
  return body.bytes;
}

/**
 * Reads a JSON body of at most `limit` bytes: 415 unless the Content-Type is application/json,
 * 413 past the limit, 400 when it is not UTF-8 JSON. Returns the parsed value (unchecked).
 */
export async function readJson(req: Request, limit: number): Promise<unknown> {
  const mt = parseMediaType(req.headers.get("content-type") ?? "");
  if (!mt || `${mt.type}/${mt.subtype}` !== "application/json")
    throw new ApiError(415, "UnsupportedMediaType", "send application/json");
  const body = await readBodyLimited(req, limit);
  if (!body.ok) throw tooLarge(limit);
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body.bytes));
  } catch {
    throw new ApiError(400, "BadRequest", "the body is not UTF-8 JSON");
  }
}

/** Reads `?name=true|false` (absent: false); anything else is a 400. */
export function flag(c: Context<Env>, name: string): boolean {
  const v = c.req.query(name);
  if (v === undefined || v === "false") return false;
  if (v === "true") return true;
  throw new ApiError(400, "BadRequest", `?${name} must be true or false`);
}

/**
 * At most this many bytes of YAML bodies are read at once, over all requests (each reserves its
 * Content-Length, or the limit when it has none, while it is read). What is read then waits in a
 * body checker's short queue (src/api/body-check.ts), so the bodies a flood keeps in memory are
 * bounded however many clients send at once.
 */
export const READING_BUDGET = 8 * 1024 * 1024;
let reading = 0;

/** Bytes of YAML bodies being read now (for tests and metrics). */
export function yamlBytesReading(): number {
  return reading;
}

/**
 * readBodyBytes within READING_BUDGET: a body that would pass it is refused before it is read,
 * with 503 Busy, Retry-After and Connection: close (its unread bytes are not drained). One read
 * always proceeds, whatever its size, when nothing else is being read.
 */
async function readReserved(req: Request, limit: number): Promise<BodyRead> {
  const declared = req.headers.get("content-length");
  const size =
    declared !== null && /^[0-9]+$/.test(declared.trim()) ? Math.min(Number(declared), limit) : limit;
  if (reading > 0 && reading + size > READING_BUDGET) {
    const msg = `${reading} bytes of request bodies are being read already; retry later`;
    throw new ApiError(503, "Busy", msg, { "Retry-After": "1", ...CLOSE });
  }
  reading += size;
  try {
    return await readBodyBytes(req, limit);
  } finally {
    reading -= size;
  }
}

/**
 * The body's bytes: with a Content-Length within the limit, read by Bun in one piece (HTTP framing
 * makes the body exactly that long); otherwise streamed and cut at the limit (readBodyLimited).
 */
async function readBodyBytes(req: Request, limit: number): Promise<BodyRead> {
  const declared = req.headers.get("content-length");
  if (declared !== null && /^[0-9]+$/.test(declared.trim()) && Number(declared) <= limit && req.body !== null)
    return { ok: true, bytes: new Uint8Array(await req.arrayBuffer()) };
  return readBodyLimited(req, limit);
}
