/**
 * The path attribute list of an UPDATE as a whole (RFC 4271 §4.3): decoding with RFC 7606 error
 * handling (attribute-level problems collected with their action — treat-as-withdraw,
 * attribute-discard — only session-reset ones thrown; repeats, flags, lengths), and encoding in
 * type-code order with unknown optional attributes kept in place (RFC 4271 §5).
 */

import { ATTRIBUTES, type AttrContext, type AttrSpec, type PathAttributes } from "./attributes.ts";
import type { Reader } from "./buf.ts";
import { Writer } from "./buf.ts";
import { AttrFlag, AttrType, ErrCode, UpdateSub } from "./constants.ts";
import { BgpDecodeError, type ErrorAction } from "./errors.ts";

const OPT = AttrFlag.OPTIONAL;
const TRANS = AttrFlag.TRANSITIVE;

function lenErr(name: string, len: number): Error {
  return new Error(`${name}: bad length ${len}`);
}

export interface DecodedAttributes {
  attrs: PathAttributes;
  /** Non-fatal problems (treat-as-withdraw, attribute-discard); session-reset ones are thrown. */
  errors: BgpDecodeError[];
}

const updErr = (sub: number, msg: string, action: ErrorAction, data?: Uint8Array) =>
  new BgpDecodeError(ErrCode.UPDATE_MESSAGE, sub, msg, action, data);

/**
 * Decodes the path attribute list `r` (RFC 4271 §4.3). Errors follow RFC 7606: attribute-level
 * problems are collected with their action; only session-reset problems throw.
 */
export function decodeAttributes(r: Reader, ctx: AttrContext): DecodedAttributes {
  const attrs: PathAttributes = {};
  const errors: BgpDecodeError[] = [];
  const seen = new Set<number>();
  while (r.remaining > 0) {
    const start = r.pos;
    if (r.remaining < 3) {
      // RFC 7606 §4: cannot parse the attribute header: treat-as-withdraw.
      errors.push(
        updErr(UpdateSub.MALFORMED_ATTRIBUTE_LIST, "attribute header truncated", "treat-as-withdraw"),
      );
      break;
    }
    const flags = r.u8();
    const type = r.u8();
    const extended = (flags & AttrFlag.EXTENDED_LENGTH) !== 0;
    if (extended && r.remaining < 2) {
      errors.push(
        updErr(UpdateSub.MALFORMED_ATTRIBUTE_LIST, "attribute length truncated", "treat-as-withdraw"),
      );
      break;
    }
    const len = extended ? r.u16() : r.u8();
    const spec = ATTRIBUTES.get(type);
    if (len > r.remaining) {
      const action: ErrorAction =
        type === AttrType.MP_REACH_NLRI || type === AttrType.MP_UNREACH_NLRI
          ? "session-reset"
          : "treat-as-withdraw";
      const e = updErr(
        UpdateSub.ATTRIBUTE_LENGTH_ERROR,
        `attribute ${type} length ${len} overruns list`,
        action,
      );
      if (action === "session-reset") throw e;
      errors.push(e);
      break;
    }
    const body = r.sub(len);
    const whole = r.buf.subarray(start, r.pos);
    if (seen.has(type)) {
      // RFC 7606 §3g: repeated MP_REACH/MP_UNREACH resets; any other repeat is discarded.
      if (type === AttrType.MP_REACH_NLRI || type === AttrType.MP_UNREACH_NLRI)
        throw updErr(UpdateSub.MALFORMED_ATTRIBUTE_LIST, `repeated attribute ${type}`, "session-reset");
      errors.push(
        updErr(UpdateSub.MALFORMED_ATTRIBUTE_LIST, `repeated attribute ${type}`, "attribute-discard"),
      );
      continue;
    }
    seen.add(type);
    if (spec === undefined) {
      if ((flags & OPT) === 0)
        throw updErr(
          UpdateSub.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
          `unrecognized well-known attribute ${type}`,
          "session-reset",
          whole.slice(),
        );
      attrs.unknown ??= [];
      attrs.unknown.push({ flags, type, value: body.bytes(len).slice() });
      continue;
    }
    const action = spec.action(ctx);
    if ((flags & (OPT | TRANS)) !== spec.flags) {
      // RFC 7606 §3c: a flags error is handled with the attribute's own action.
      const e = updErr(
        UpdateSub.ATTRIBUTE_FLAGS_ERROR,
        `${spec.name}: flags 0x${flags.toString(16)}`,
        action,
        whole.slice(),
      );
      if (action === "session-reset") throw e;
      errors.push(e);
      continue;
    }
    try {
      spec.decode(body, ctx, attrs);
      if (body.remaining !== 0) throw lenErr(spec.name, len);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (type === AttrType.MP_REACH_NLRI || type === AttrType.MP_UNREACH_NLRI) {
        // RFC 4760 §7: an incorrect MP_REACH_NLRI/MP_UNREACH_NLRI ends the session with UPDATE
        // Message Error / Optional Attribute Error, the attribute as data (RFC 4271 §6.3). RFC 7606
        // §7.11 and §5.3: a bad next hop length or NLRI cannot be treated as withdraw ("session
        // reset" or "AFI/SAFI disable"; vipd resets).
        throw updErr(
          UpdateSub.OPTIONAL_ATTRIBUTE_ERROR,
          `${spec.name}: ${msg}`,
          "session-reset",
          whole.slice(),
        );
      }
      if (err instanceof BgpDecodeError && action === "session-reset") throw err;
      const sub =
        type === AttrType.AS_PATH
          ? UpdateSub.MALFORMED_AS_PATH
          : type === AttrType.ORIGIN
            ? UpdateSub.INVALID_ORIGIN_ATTRIBUTE
            : UpdateSub.ATTRIBUTE_LENGTH_ERROR;
      const e = updErr(sub, `${spec.name}: ${msg}`, action, whole.slice());
      if (action === "session-reset") throw e;
      errors.push(e);
    }
  }
  return { attrs, errors };
}

/** Encodes the attributes present in `a`, in type-code order (RFC 4271 §5 recommends it). */
export function encodeAttributes(w: Writer, a: PathAttributes, ctx: AttrContext): void {
  const scratch = new Writer(64);
  const entries: [number, AttrSpec][] = [...ATTRIBUTES.entries()];
  const unknown = a.unknown ?? [];
  let ui = 0;
  const writeRaw = (flags: number, type: number, value: Uint8Array) => {
    const ext = value.length > 255;
    w.u8((flags & ~AttrFlag.EXTENDED_LENGTH) | (ext ? AttrFlag.EXTENDED_LENGTH : 0)).u8(type);
    if (ext) w.u16(value.length);
    else w.u8(value.length);
    w.bytes(value);
  };
  for (const [type, spec] of entries) {
    while (ui < unknown.length && (unknown[ui]?.type ?? 0) < type) {
      const u = unknown[ui++]!;
      writeRaw(u.flags, u.type, u.value);
    }
    scratch.pos = 0;
    if (!spec.encode(scratch, a, ctx)) continue;
    writeRaw(spec.flags, type, scratch.buf.subarray(0, scratch.pos));
  }
  while (ui < unknown.length) {
    const u = unknown[ui++]!;
    writeRaw(u.flags, u.type, u.value);
  }
}
