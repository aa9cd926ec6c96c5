/**
 * Path attributes (RFC 4271 §4.3, §5): their types, and one table entry per attribute type with its
 * expected flags, decoder and encoder, and the RFC 7606 action to take when a peer sends it
 * malformed. MP_REACH_NLRI / MP_UNREACH_NLRI entries live in mpattr.ts; the attribute list as a
 * whole (order, repeats, RFC 7606 error handling) in attrlist.ts.
 *
 * ORIGIN, AS_PATH, NEXT_HOP, MULTI_EXIT_DISC, LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR (RFC 4271);
 * COMMUNITIES (RFC 1997); ORIGINATOR_ID, CLUSTER_LIST (RFC 4456); MP_REACH_NLRI, MP_UNREACH_NLRI
 * (RFC 4760, next hops per RFC 2545 and RFC 8950); AS4_PATH, AS4_AGGREGATOR (RFC 6793);
 * LARGE_COMMUNITIES (RFC 8092). Unknown optional attributes are kept raw (transitive ones get the
 * Partial bit when re-sent, RFC 4271 §5).
 */
import type { Aggregator, AsPathSegment, AttrSpec, LargeCommunity } from "./attr-types.ts";
import type { Reader, Writer } from "./buf.ts";
import { AttrFlag, AttrType, type OriginValue } from "./constants.ts";
import { BgpEncodeError, type ErrorAction } from "./errors.ts";
import { MP_REACH_ENTRY, MP_UNREACH_ENTRY } from "./mpattr.ts";
import { formatAddr, parseAddr } from "./prefix.ts";

export type {
  Aggregator,
  AsPathSegment,
  AttrContext,
  AttrSpec,
  LargeCommunity,
  MpReach,
  MpUnreach,
  PathAttributes,
  RawAttribute,
} from "./attr-types.ts";

const OPT = AttrFlag.OPTIONAL;
const TRANS = AttrFlag.TRANSITIVE;

const withdraw = (): ErrorAction => "treat-as-withdraw";
const discard = (): ErrorAction => "attribute-discard";

function lenErr(name: string, len: number): Error {
  return new Error(`${name}: bad length ${len}`);
}

function readAsPath(r: Reader, width: 2 | 4): AsPathSegment[] {
  const segs: AsPathSegment[] = [];
  while (r.remaining > 0) {
    if (r.remaining < 2) throw new Error("AS_PATH segment header truncated");
    const type = r.u8();
    const n = r.u8();
    if (type < 1 || type > 4) throw new Error(`AS_PATH segment type ${type}`);
    if (n === 0) throw new Error("AS_PATH segment of length 0");
    if (r.remaining < n * width) throw new Error("AS_PATH segment overruns attribute");
    const asns: number[] = [];
    for (let i = 0; i < n; i++) asns.push(width === 4 ? r.u32() : r.u16());
    segs.push({ type, asns });
  }
  return segs;
}

function writeAsPath(w: Writer, segs: readonly AsPathSegment[], width: 2 | 4): void {
  for (const s of segs) {
    for (let i = 0; i < s.asns.length || i === 0; i += 255) {
      const chunk = s.asns.slice(i, i + 255);
      if (chunk.length === 0) throw new BgpEncodeError("AS_PATH segment without ASNs");
      w.u8(s.type).u8(chunk.length);
      for (const a of chunk) {
        if (width === 2 && a > 0xffff) throw new BgpEncodeError(`ASN ${a} does not fit 2 octets`);
        if (width === 2) w.u16(a);
        else w.u32(a);
      }
    }
  }
}

function readAddr4(r: Reader): string {
  return formatAddr(r.bytes(4));
}

function writeAddr(w: Writer, s: string, width: 4 | 16): void {
  const b = parseAddr(s);
  if (b === null || b.length !== width)
    throw new BgpEncodeError(`"${s}" is not an IPv${width === 4 ? 4 : 6} address`);
  w.bytes(b);
}

function readAggregator(r: Reader, width: 2 | 4): Aggregator {
  if (r.remaining !== width + 4) throw lenErr("AGGREGATOR", r.remaining);
  const asn = width === 4 ? r.u32() : r.u16();
  return { asn, address: readAddr4(r) };
}

/** The attribute table, keyed by type code. */
export const ATTRIBUTES: ReadonlyMap<number, AttrSpec> = new Map<number, AttrSpec>([
  [
    AttrType.ORIGIN,
    {
      name: "ORIGIN",
      flags: TRANS,
      action: withdraw,
      decode(r, _c, out) {
        if (r.remaining !== 1) throw lenErr("ORIGIN", r.remaining);
        const v = r.u8();
        if (v > 2) throw new Error(`ORIGIN value ${v}`);
        out.origin = v as OriginValue;
      },
      encode(w, a) {
        if (a.origin === undefined) return false;
        w.u8(a.origin);
        return true;
      },
    },
  ],
  [
    AttrType.AS_PATH,
    {
      name: "AS_PATH",
      flags: TRANS,
      action: withdraw,
      decode(r, c, out) {
        out.asPath = readAsPath(r, c.as4 ? 4 : 2);
      },
      encode(w, a, c) {
        if (a.asPath === undefined) return false;
        writeAsPath(w, a.asPath, c.as4 ? 4 : 2);
        return true;
      },
    },
  ],
  [
    AttrType.NEXT_HOP,
    {
      name: "NEXT_HOP",
      flags: TRANS,
      action: withdraw,
      decode(r, _c, out) {
        if (r.remaining !== 4) throw lenErr("NEXT_HOP", r.remaining);
        out.nextHop = readAddr4(r);
      },
      encode(w, a) {
        if (a.nextHop === undefined) return false;
        writeAddr(w, a.nextHop, 4);
        return true;
      },
    },
  ],
  [
    AttrType.MULTI_EXIT_DISC,
    {
      name: "MULTI_EXIT_DISC",
      flags: OPT,
      action: withdraw,
      decode(r, _c, out) {
        if (r.remaining !== 4) throw lenErr("MULTI_EXIT_DISC", r.remaining);
        out.med = r.u32();
      },
      encode(w, a) {
        if (a.med === undefined) return false;
        w.u32(a.med);
        return true;
      },
    },
  ],
  [
    AttrType.LOCAL_PREF,
    {
      name: "LOCAL_PREF",
      flags: TRANS,
      // RFC 7606 §7.5: from an external peer LOCAL_PREF is discarded, else treat-as-withdraw.
      action: (c) => (c.ebgp ? "attribute-discard" : "treat-as-withdraw"),
      decode(r, _c, out) {
        if (r.remaining !== 4) throw lenErr("LOCAL_PREF", r.remaining);
        out.localPref = r.u32();
      },
      encode(w, a) {
        if (a.localPref === undefined) return false;
        w.u32(a.localPref);
        return true;
      },
    },
  ],
  [
    AttrType.ATOMIC_AGGREGATE,
    {
      name: "ATOMIC_AGGREGATE",
      flags: TRANS,
      action: discard,
      decode(r, _c, out) {
        if (r.remaining !== 0) throw lenErr("ATOMIC_AGGREGATE", r.remaining);
        out.atomicAggregate = true;
      },
      encode(_w, a) {
        return a.atomicAggregate === true;
      },
    },
  ],
  [
    AttrType.AGGREGATOR,
    {
      name: "AGGREGATOR",
      flags: OPT | TRANS,
      action: discard,
      decode(r, c, out) {
        out.aggregator = readAggregator(r, c.as4 ? 4 : 2);
      },
      encode(w, a, c) {
        if (a.aggregator === undefined) return false;
        if (c.as4) w.u32(a.aggregator.asn);
        else w.u16(a.aggregator.asn > 0xffff ? 23456 : a.aggregator.asn);
        writeAddr(w, a.aggregator.address, 4);
        return true;
      },
    },
  ],
  [
    AttrType.COMMUNITIES,
    {
      name: "COMMUNITIES",
      flags: OPT | TRANS,
      action: withdraw,
      decode(r, _c, out) {
        if (r.remaining % 4 !== 0 || r.remaining === 0) throw lenErr("COMMUNITIES", r.remaining);
        const cs: number[] = [];
        while (r.remaining > 0) cs.push(r.u32());
        out.communities = cs;
      },
      encode(w, a) {
        if (a.communities === undefined || a.communities.length === 0) return false;
        for (const c of a.communities) w.u32(c);
        return true;
      },
    },
  ],
  [
    AttrType.ORIGINATOR_ID,
    {
      name: "ORIGINATOR_ID",
      flags: OPT,
      action: withdraw,
      decode(r, _c, out) {
        if (r.remaining !== 4) throw lenErr("ORIGINATOR_ID", r.remaining);
        out.originatorId = readAddr4(r);
      },
      encode(w, a) {
        if (a.originatorId === undefined) return false;
        writeAddr(w, a.originatorId, 4);
        return true;
      },
    },
  ],
  [
    AttrType.CLUSTER_LIST,
    {
      name: "CLUSTER_LIST",
      flags: OPT,
      action: withdraw,
      decode(r, _c, out) {
        if (r.remaining % 4 !== 0 || r.remaining === 0) throw lenErr("CLUSTER_LIST", r.remaining);
        const ids: string[] = [];
        while (r.remaining > 0) ids.push(readAddr4(r));
        out.clusterList = ids;
      },
      encode(w, a) {
        if (a.clusterList === undefined || a.clusterList.length === 0) return false;
        for (const id of a.clusterList) writeAddr(w, id, 4);
        return true;
      },
    },
  ],
  MP_REACH_ENTRY,
  MP_UNREACH_ENTRY,
  [
    AttrType.AS4_PATH,
    {
      name: "AS4_PATH",
      flags: OPT | TRANS,
      action: discard,
      decode(r, _c, out) {
        out.as4Path = readAsPath(r, 4);
      },
      encode(w, a) {
        if (a.as4Path === undefined) return false;
        writeAsPath(w, a.as4Path, 4);
        return true;
      },
    },
  ],
  [
    AttrType.AS4_AGGREGATOR,
    {
      name: "AS4_AGGREGATOR",
      flags: OPT | TRANS,
      action: discard,
      decode(r, _c, out) {
        out.as4Aggregator = readAggregator(r, 4);
      },
      encode(w, a) {
        if (a.as4Aggregator === undefined) return false;
        w.u32(a.as4Aggregator.asn);
        writeAddr(w, a.as4Aggregator.address, 4);
        return true;
      },
    },
  ],
  [
    AttrType.LARGE_COMMUNITIES,
    {
      name: "LARGE_COMMUNITIES",
      flags: OPT | TRANS,
      action: withdraw,
      decode(r, _c, out) {
        if (r.remaining % 12 !== 0 || r.remaining === 0) throw lenErr("LARGE_COMMUNITIES", r.remaining);
        const cs: LargeCommunity[] = [];
        while (r.remaining > 0) cs.push([r.u32(), r.u32(), r.u32()]);
        out.largeCommunities = cs;
      },
      encode(w, a) {
        if (a.largeCommunities === undefined || a.largeCommunities.length === 0) return false;
        for (const [x, y, z] of a.largeCommunities) w.u32(x).u32(y).u32(z);
        return true;
      },
    },
  ],
]);
