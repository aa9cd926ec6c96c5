/**
 * The site channel's wire format: the messages members exchange to agree on the site
 * configuration and assignment table (src/site/state.ts decides what they mean). Pure codec:
 * values in, bytes out; bytes in, a message or a named drop reason out. Framing for a byte
 * stream (TCP) is here too, as an incremental framer.
 *
 * Stream: each frame is a u32 length (big-endian, 4..MAX_FRAME) followed by that many bytes.
 * The first frame each side of a connection sends is a Hello, unauthenticated:
 *   0 "VIPN"  4 16 bytes nonce (random, fresh for every connection)
 * Every later frame is a message, authenticated with the site's cluster key (the heartbeat key):
 *   0  "VIPS"            magic
 *   4  u8  version       1
 *   5  u8  type          MessageType
 *   6  u16 0             reserved
 *   8  u64 counter       strictly increasing per sender, across restarts (µs wall clock based)
 *  16  16 bytes nonce    the receiver's Hello nonce on this connection
 *  32  u8 fromLen, from (UTF-8 member name), u8 toLen, to (UTF-8 member name)
 *   …  u32 bodyLen, body (UTF-8 JSON)
 *   …  32 bytes HMAC-SHA256(key, everything before it)
 *
 * Replay protection has two parts: the nonce binds a message to one connection (a message
 * recorded on one connection and played on another, even after either side restarted, carries
 * the wrong nonce: StaleNonce), and within it the counter must grow (Replay). A forged message
 * (no key) fails the MAC (BadMac). The receiver checks in this order: length, magic, version,
 * type, lengths, MAC, addressee, sender, nonce, counter, body.
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { parseSnapshot, type Snapshot } from "./table.ts";

export const MAGIC = 0x56495053; // "VIPS"
export const HELLO_MAGIC = 0x5649504e; // "VIPN"
export const VERSION = 1;
export const NONCE_LEN = 16;
const MAC_LEN = 32;
/** The largest frame accepted: a configuration body (1 MiB by default) plus its table. */
export const MAX_FRAME = 16 * 1024 * 1024;

export type ProposeError = "Stale" | "NotReady" | "Refused" | "NoQuorum";

export type SiteMessage =
  /** Sent every few hundred ms: liveness on the site channel and what the sender holds. */
  | {
      type: "status";
      generation: number;
      allocator: string;
      digest: string;
      /** The sender holds the site's current snapshot (or knows it is alone) and takes part. */
      ready: boolean;
    }
  /** A configuration push (a new generation) or the answer to a request: the whole snapshot. */
  | { type: "snapshot"; snapshot: Snapshot }
  /** "Send me your snapshot" (a member catching up, or a heal). */
  | { type: "request" }
  /** "I have persisted this version" (a member applies it at once when ready, else once it is). */
  | { type: "ack"; generation: number; allocator: string; digest: string }
  /** A PUT received by a member that does not allocate, forwarded to the one that does. */
  | { type: "propose"; id: string; base: number; config: string }
  /** The allocator's answer to a propose. */
  | {
      type: "result";
      id: string;
      ok: boolean;
      generation: number;
      allocator: string;
      error?: ProposeError | undefined;
      message?: string | undefined;
    };

export type MessageType = SiteMessage["type"];

const TYPE_CODES: Record<MessageType, number> = {
  status: 1,
  snapshot: 2,
  request: 3,
  ack: 4,
  propose: 5,
  result: 6,
};
const TYPE_OF = new Map(Object.entries(TYPE_CODES).map(([k, v]) => [v, k as MessageType]));

export interface Envelope {
  from: string;
  to: string;
  counter: bigint;
  /** The receiver's Hello nonce on this connection. */
  nonce: Uint8Array;
  msg: SiteMessage;
}

export type SiteDrop =
  | "TooShort"
  | "BadMagic"
  | "BadVersion"
  | "BadType"
  | "BadLength"
  | "BadMac"
  | "NotForMe"
  | "UnknownSender"
  | "StaleNonce"
  | "Replay"
  | "BadBody";

export const SITE_DROPS: readonly SiteDrop[] = [
  "TooShort",
  "BadMagic",
  "BadVersion",
  "BadType",
  "BadLength",
  "BadMac",
  "NotForMe",
  "UnknownSender",
  "StaleNonce",
  "Replay",
  "BadBody",
];

const enc = new TextEncoder();

function mac(key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", key).update(data).digest());
}

function name(s: string, what: string): Uint8Array {
  const b = enc.encode(s);
  if (b.length < 1 || b.length > 253) throw new RangeError(`${what} must be 1..253 bytes`);
  return b;
}

export function encodeMessage(e: Envelope, key: Uint8Array): Uint8Array {
  if (e.nonce.length !== NONCE_LEN) throw new RangeError(`nonce must be ${NONCE_LEN} bytes`);
  const from = name(e.from, "sender");
  const to = name(e.to, "receiver");
  const body = enc.encode(JSON.stringify(e.msg));
  const len = 32 + 1 + from.length + 1 + to.length + 4 + body.length;
  if (len + MAC_LEN > MAX_FRAME) throw new RangeError(`message of ${len} bytes exceeds ${MAX_FRAME}`);
  const out = new Uint8Array(len + MAC_LEN);
  const v = new DataView(out.buffer);
  v.setUint32(0, MAGIC);
  v.setUint8(4, VERSION);
  v.setUint8(5, TYPE_CODES[e.msg.type]);
  v.setBigUint64(8, e.counter);
  out.set(e.nonce, 16);
  let off = 32;
  out[off++] = from.length;
  out.set(from, off);
  off += from.length;
  out[off++] = to.length;
  out.set(to, off);
  off += to.length;
  v.setUint32(off, body.length);
  out.set(body, off + 4);
  out.set(mac(key, out.subarray(0, len)), len);
  return out;
}

/** What the receiver knows when it checks a message. */
export interface ReceiverContext {
  self: string;
  members: ReadonlySet<string>;
  /** This side's Hello nonce on the connection the message came in on. */
  nonce: Uint8Array;
  /** The highest counter taken from `sender` so far (0n when none). */
  lastCounter: (sender: string) => bigint;
}

export type Decoded = { ok: true; env: Envelope } | { ok: false; reason: SiteDrop; from?: string };

function utf8(b: Uint8Array): string | null {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(b);
  } catch {
    return null;
  }
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

const isGen = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
const isStr = (x: unknown): x is string => typeof x === "string";

/** Checks the body's shape for its type; null when it is not what the type says. */
function parseBody(type: MessageType, text: string): SiteMessage | null {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObj(j) || j.type !== type) return null;
  switch (type) {
    case "status":
      return isGen(j.generation) && isStr(j.allocator) && isStr(j.digest) && typeof j.ready === "boolean"
        ? { type, generation: j.generation, allocator: j.allocator, digest: j.digest, ready: j.ready }
        : null;
    case "snapshot": {
      const s = parseSnapshot(j.snapshot);
      return s.ok ? { type, snapshot: s.snapshot } : null;
    }
    case "request":
      return { type };
    case "ack":
      return isGen(j.generation) && isStr(j.allocator) && isStr(j.digest)
        ? { type, generation: j.generation, allocator: j.allocator, digest: j.digest }
        : null;
    case "propose":
      return isStr(j.id) && isGen(j.base) && isStr(j.config)
        ? { type, id: j.id, base: j.base, config: j.config }
        : null;
    case "result": {
      const errors: readonly unknown[] = ["Stale", "NotReady", "Refused", "NoQuorum"];
      if (!isStr(j.id) || typeof j.ok !== "boolean" || !isGen(j.generation) || !isStr(j.allocator))
        return null;
      if (j.error !== undefined && !errors.includes(j.error)) return null;
      if (j.message !== undefined && !isStr(j.message)) return null;
      return {
        type,
        id: j.id,
        ok: j.ok,
        generation: j.generation,
        allocator: j.allocator,
        ...(j.error !== undefined ? { error: j.error as ProposeError } : {}),
        ...(j.message !== undefined ? { message: j.message } : {}),
      };
    }
  }
}

/** Checks in the order listed at the top of this file. Nothing is interpreted before the MAC. */
export function decodeMessage(buf: Uint8Array, key: Uint8Array, rx: ReceiverContext): Decoded {
  if (buf.length < 32 + 2 + 2 + 4 + MAC_LEN) return { ok: false, reason: "TooShort" };
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (v.getUint32(0) !== MAGIC) return { ok: false, reason: "BadMagic" };
  if (v.getUint8(4) !== VERSION) return { ok: false, reason: "BadVersion" };
  const type = TYPE_OF.get(v.getUint8(5));
  if (type === undefined) return { ok: false, reason: "BadType" };
  const fromLen = v.getUint8(32);
  const toAt = 33 + fromLen;
  if (fromLen < 1 || toAt + 1 > buf.length) return { ok: false, reason: "BadLength" };
  const toLen = v.getUint8(toAt);
  const bodyAt = toAt + 1 + toLen + 4;
  if (toLen < 1 || bodyAt > buf.length - MAC_LEN) return { ok: false, reason: "BadLength" };
  const bodyLen = v.getUint32(bodyAt - 4);
  if (bodyAt + bodyLen + MAC_LEN !== buf.length) return { ok: false, reason: "BadLength" };
  const signed = buf.subarray(0, bodyAt + bodyLen);
  if (!timingSafeEqual(mac(key, signed), buf.subarray(signed.length))) return { ok: false, reason: "BadMac" };
  const from = utf8(buf.subarray(33, 33 + fromLen));
  const to = utf8(buf.subarray(toAt + 1, toAt + 1 + toLen));
  if (to !== rx.self) return { ok: false, reason: "NotForMe" };
  if (from === null || from === rx.self || !rx.members.has(from))
    return { ok: false, reason: "UnknownSender" };
  const nonce = buf.slice(16, 32);
  if (!timingSafeEqual(nonce, rx.nonce)) return { ok: false, reason: "StaleNonce", from };
  const counter = v.getBigUint64(8);
  if (counter <= rx.lastCounter(from)) return { ok: false, reason: "Replay", from };
  const text = utf8(buf.subarray(bodyAt, bodyAt + bodyLen));
  const msg = text === null ? null : parseBody(type, text);
  if (msg === null) return { ok: false, reason: "BadBody", from };
  return { ok: true, env: { from, to, counter, nonce, msg } };
}

export function encodeHello(nonce: Uint8Array): Uint8Array {
  if (nonce.length !== NONCE_LEN) throw new RangeError(`nonce must be ${NONCE_LEN} bytes`);
  const out = new Uint8Array(4 + NONCE_LEN);
  new DataView(out.buffer).setUint32(0, HELLO_MAGIC);
  out.set(nonce, 4);
  return out;
}

export function decodeHello(buf: Uint8Array): Uint8Array | null {
  if (buf.length !== 4 + NONCE_LEN) return null;
  if (new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(0) !== HELLO_MAGIC) return null;
  return buf.slice(4);
}

/** A frame on the stream: u32 length, then the payload. */
export function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, 4);
  return out;
}

/**
 * Incremental framer: feed it what the socket delivered, in any pieces; it returns the complete
 * payloads and keeps the partial tail. A length outside 4..MAX_FRAME ends the stream ("BadFrame").
 */
export class Framer {
  private buf = new Uint8Array(0);
  private failed = false;

  push(chunk: Uint8Array): { frames: Uint8Array[]; error?: "BadFrame" } {
    if (this.failed) return { frames: [], error: "BadFrame" };
    const all = new Uint8Array(this.buf.length + chunk.length);
    all.set(this.buf, 0);
    all.set(chunk, this.buf.length);
    const frames: Uint8Array[] = [];
    let off = 0;
    while (all.length - off >= 4) {
      const len = new DataView(all.buffer, off, 4).getUint32(0);
      if (len < 4 || len > MAX_FRAME) {
        this.failed = true;
        this.buf = new Uint8Array(0);
        return { frames, error: "BadFrame" };
      }
      if (all.length - off - 4 < len) break;
      frames.push(all.slice(off + 4, off + 4 + len));
      off += 4 + len;
    }
    this.buf = all.slice(off);
    return { frames };
  }

  /** Bytes held waiting for the rest of a frame. */
  get pending(): number {
    return this.buf.length;
  }
}
