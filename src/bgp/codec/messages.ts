/**
 * BGP messages: the 19-byte header (RFC 4271 §4.1) and the five message types — OPEN (§4.2),
 * UPDATE (§4.3), NOTIFICATION (§4.5), KEEPALIVE (§4.4), ROUTE-REFRESH (RFC 2918 §3, with the
 * RFC 7313 subtype octet). One discriminated union; `decodeMessage` never throws, it returns the
 * message or a typed error carrying the NOTIFICATION to send.
 */
import type { AttrContext, PathAttributes } from "./attributes.ts";
import { decodeAttributes, encodeAttributes } from "./attrlist.ts";
import { Reader, Writer } from "./buf.ts";
import {
  AttrType,
  ErrCode,
  HEADER_LEN,
  HeaderSub,
  MAX_MESSAGE_LEN,
  MsgType,
  UpdateSub,
} from "./constants.ts";
import { BgpDecodeError, BgpEncodeError } from "./errors.ts";
import { decodeOpen, encodeOpenBody, type OpenMessage } from "./open.ts";
import { type Prefix, readPrefixes, writePrefix } from "./prefix.ts";

export interface UpdateMessage {
  type: "update";
  withdrawn: Prefix[];
  attributes: PathAttributes;
  nlri: Prefix[];
  /** RFC 7606 problems that did not reset the session (only set by the decoder when non-empty). */
  errors?: BgpDecodeError[];
}

export interface NotificationMessage {
  type: "notification";
  code: number;
  subcode: number;
  data: Uint8Array;
}

export interface KeepaliveMessage {
  type: "keepalive";
}

export interface RouteRefreshMessage {
  type: "route-refresh";
  afi: number;
  /** RFC 7313: 0 normal request, 1 BoRR, 2 EoRR. */
  subtype: number;
  safi: number;
}

export type BgpMessage =
  | OpenMessage
  | UpdateMessage
  | NotificationMessage
  | KeepaliveMessage
  | RouteRefreshMessage;

export type { OpenMessage };

export type DecodeResult = { ok: true; msg: BgpMessage } | { ok: false; error: BgpDecodeError };

const DEFAULT_CTX: AttrContext = { as4: true };

const headerErr = (sub: number, msg: string, data?: Uint8Array) =>
  new BgpDecodeError(ErrCode.MESSAGE_HEADER, sub, msg, "session-reset", data);

/**
 * Checks a header (RFC 4271 §6.1) and returns the total message length, or throws. Used by the
 * framer before the body has arrived.
 */
export function checkHeader(buf: Uint8Array, off: number, maxLen = MAX_MESSAGE_LEN): number {
  for (let i = 0; i < 16; i++) {
    if (buf[off + i] !== 0xff)
      throw headerErr(HeaderSub.CONNECTION_NOT_SYNCHRONIZED, "marker is not all ones");
  }
  const len = ((buf[off + 16] ?? 0) << 8) | (buf[off + 17] ?? 0);
  const type = buf[off + 18] ?? 0;
  const bad = () =>
    headerErr(
      HeaderSub.BAD_MESSAGE_LENGTH,
      `bad length ${len} for type ${type}`,
      new Uint8Array([len >> 8, len & 255]),
    );
  if (len < HEADER_LEN || len > maxLen) throw bad();
  switch (type) {
    case MsgType.OPEN:
      if (len < HEADER_LEN + 10) throw bad();
      break;
    case MsgType.UPDATE:
      if (len < HEADER_LEN + 4) throw bad();
      break;
    case MsgType.NOTIFICATION:
      if (len < HEADER_LEN + 2) throw bad();
      break;
    case MsgType.KEEPALIVE:
      if (len !== HEADER_LEN) throw bad();
      break;
    case MsgType.ROUTE_REFRESH:
      if (len !== HEADER_LEN + 4) throw bad();
      break;
    default:
      throw headerErr(HeaderSub.BAD_MESSAGE_TYPE, `unknown message type ${type}`, new Uint8Array([type]));
  }
  return len;
}

function decodeUpdate(r: Reader, ctx: AttrContext): UpdateMessage {
  const malformed = (msg: string) =>
    new BgpDecodeError(ErrCode.UPDATE_MESSAGE, UpdateSub.MALFORMED_ATTRIBUTE_LIST, msg);
  const wlen = r.u16();
  if (wlen > r.remaining - 2) throw malformed(`withdrawn routes length ${wlen} overruns message`);
  const withdrawn = readPrefixes(r.sub(wlen), 4);
  const alen = r.u16();
  if (alen > r.remaining) throw malformed(`path attribute length ${alen} overruns message`);
  const { attrs, errors } = decodeAttributes(r.sub(alen), ctx);
  const nlri = readPrefixes(r, 4);
  // RFC 7606 §3d: a missing well-known mandatory attribute is treat-as-withdraw; RFC 4760 lets an
  // UPDATE carrying only MP_REACH omit NEXT_HOP. An attribute that was present but malformed (and
  // so is absent from `attrs`) already made the UPDATE treat-as-withdraw: it is not also "missing".
  const reach = nlri.length > 0 || (attrs.mpReach !== undefined && attrs.mpReach.nlri.length > 0);
  if (reach && !errors.some((e) => e.action === "treat-as-withdraw")) {
    const missing: number[] = [];
    if (attrs.origin === undefined) missing.push(AttrType.ORIGIN);
    if (attrs.asPath === undefined) missing.push(AttrType.AS_PATH);
    if (nlri.length > 0 && attrs.nextHop === undefined) missing.push(AttrType.NEXT_HOP);
    for (const t of missing) {
      errors.push(
        new BgpDecodeError(
          ErrCode.UPDATE_MESSAGE,
          UpdateSub.MISSING_WELL_KNOWN_ATTRIBUTE,
          `missing attribute ${t}`,
          "treat-as-withdraw",
          new Uint8Array([t]),
        ),
      );
    }
  }
  const m: UpdateMessage = { type: "update", withdrawn, attributes: attrs, nlri };
  if (errors.length > 0) m.errors = errors;
  return m;
}

/** Decodes one whole message (header included). Never throws. */
export function decodeMessage(
  buf: Uint8Array,
  ctx: AttrContext = DEFAULT_CTX,
  maxLen = MAX_MESSAGE_LEN,
): DecodeResult {
  try {
    if (buf.length < HEADER_LEN) throw headerErr(HeaderSub.BAD_MESSAGE_LENGTH, "shorter than a header");
    const len = checkHeader(buf, 0, maxLen);
    if (len !== buf.length)
      throw headerErr(HeaderSub.BAD_MESSAGE_LENGTH, `length field ${len} != ${buf.length} bytes`);
    const type = buf[18];
    const short = (what: string) => () =>
      new BgpDecodeError(
        type === MsgType.OPEN
          ? ErrCode.OPEN_MESSAGE
          : type === MsgType.UPDATE
            ? ErrCode.UPDATE_MESSAGE
            : ErrCode.MESSAGE_HEADER,
        type === MsgType.UPDATE ? UpdateSub.MALFORMED_ATTRIBUTE_LIST : 0,
        `${what} truncated`,
      );
    const r = new Reader(buf, HEADER_LEN, len, short("message"));
    switch (type) {
      case MsgType.OPEN:
        return { ok: true, msg: decodeOpen(r) };
      case MsgType.UPDATE:
        return { ok: true, msg: decodeUpdate(r, ctx) };
      case MsgType.NOTIFICATION:
        return {
          ok: true,
          msg: { type: "notification", code: r.u8(), subcode: r.u8(), data: r.bytes(r.remaining).slice() },
        };
      case MsgType.KEEPALIVE:
        return { ok: true, msg: { type: "keepalive" } };
      default: {
        const afi = r.u16();
        const subtype = r.u8();
        return { ok: true, msg: { type: "route-refresh", afi, subtype, safi: r.u8() } };
      }
    }
  } catch (e) {
    if (e instanceof BgpDecodeError) return { ok: false, error: e };
    // A bug in the decoder must still not escape as an untyped exception into the session.
    const msg = e instanceof Error ? e.message : String(e);
    return {
      ok: false,
      error: new BgpDecodeError(ErrCode.MESSAGE_HEADER, 0, `internal decode error: ${msg}`),
    };
  }
}

function header(w: Writer, type: number): void {
  for (let i = 0; i < 16; i++) w.u8(0xff);
  w.u16(0).u8(type);
}

function finishMessage(w: Writer, maxLen: number): Uint8Array {
  if (w.pos > maxLen) throw new BgpEncodeError(`message of ${w.pos} bytes exceeds ${maxLen}`);
  w.patchU16(16, w.pos);
  return w.finish();
}

/** Encodes any message. Throws BgpEncodeError if it does not fit `maxLen` (4096 by default). */
export function encodeMessage(
  m: BgpMessage,
  ctx: AttrContext = DEFAULT_CTX,
  maxLen = MAX_MESSAGE_LEN,
): Uint8Array {
  const w = new Writer(m.type === "update" ? 512 : 64);
  switch (m.type) {
    case "open":
      header(w, MsgType.OPEN);
      encodeOpenBody(w, m);
      break;
    case "update": {
      header(w, MsgType.UPDATE);
      w.u16(0);
      for (const p of m.withdrawn) writePrefix(w, p);
      w.patchU16(HEADER_LEN, w.pos - HEADER_LEN - 2);
      const aAt = w.pos;
      w.u16(0);
      encodeAttributes(w, m.attributes, ctx);
      w.patchU16(aAt, w.pos - aAt - 2);
      for (const p of m.nlri) writePrefix(w, p);
      break;
    }
    case "notification":
      header(w, MsgType.NOTIFICATION);
      w.u8(m.code).u8(m.subcode).bytes(m.data);
      break;
    case "keepalive":
      header(w, MsgType.KEEPALIVE);
      break;
    case "route-refresh":
      header(w, MsgType.ROUTE_REFRESH);
      w.u16(m.afi).u8(m.subtype).u8(m.safi);
      break;
  }
  return finishMessage(w, maxLen);
}

export const KEEPALIVE_BYTES: Uint8Array = encodeMessage({ type: "keepalive" });
