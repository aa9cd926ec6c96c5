/**
 * The MP_REACH_NLRI and MP_UNREACH_NLRI entries of the attribute table (RFC 4760 §3, §4): AFI/SAFI,
 * next hop (one address; IPv6 global + link-local, RFC 2545 §3; IPv6 for IPv4, RFC 8950), NLRI.
 * Families vipd does not parse are kept raw. A malformed instance resets the session (RFC 7606
 * §7.11, RFC 4760 §7). No import from attributes.ts (it imports these entries); the types are in attr-types.ts.
 */
import type { Family } from "../../util/ip.ts";
import type { AttrSpec } from "./attr-types.ts";
import { Afi, AttrFlag, AttrType, Safi } from "./constants.ts";
import { BgpEncodeError } from "./errors.ts";
import { formatAddr, parseAddr, readPrefixes, writePrefix } from "./prefix.ts";

const OPT = AttrFlag.OPTIONAL;

function lenErr(name: string, len: number): Error {
  return new Error(`${name}: bad length ${len}`);
}

function familyOf(afi: number, safi: number): Family | null {
  if (safi !== Safi.UNICAST) return null;
  if (afi === Afi.IPV4) return 4;
  if (afi === Afi.IPV6) return 6;
  return null;
}

export const MP_REACH_ENTRY: [number, AttrSpec] = [
  AttrType.MP_REACH_NLRI,
  {
    name: "MP_REACH_NLRI",
    flags: OPT,
    action: () => "session-reset",
    decode(r, _c, out) {
      const afi = r.u16();
      const safi = r.u8();
      const nhLen = r.u8();
      if (nhLen > r.remaining) throw lenErr("MP_REACH_NLRI next hop", nhLen);
      const fam = familyOf(afi, safi);
      if (fam === null) {
        r.pos -= 1;
        out.mpReach = { afi, safi, nextHops: [], nlri: [], raw: r.bytes(r.remaining).slice() };
        return;
      }
      const nh = r.bytes(nhLen);
      const nextHops: string[] = [];
      if (nhLen === 4 || nhLen === 16) nextHops.push(formatAddr(nh));
      else if (nhLen === 32) nextHops.push(formatAddr(nh.subarray(0, 16)), formatAddr(nh.subarray(16)));
      else throw lenErr("MP_REACH_NLRI next hop", nhLen);
      if (r.remaining < 1) throw lenErr("MP_REACH_NLRI", 0);
      r.u8(); // reserved (RFC 4760 §3: ignored on receipt)
      out.mpReach = { afi, safi, nextHops, nlri: readPrefixes(r, fam) };
    },
    encode(w, a) {
      const m = a.mpReach;
      if (m === undefined) return false;
      w.u16(m.afi).u8(m.safi);
      if (m.raw !== undefined) {
        w.bytes(m.raw);
        return true;
      }
      const nhs = m.nextHops.map((s) => {
        const b = parseAddr(s);
        if (b === null) throw new BgpEncodeError(`bad next hop "${s}"`);
        return b;
      });
      w.u8(nhs.reduce((n, b) => n + b.length, 0));
      for (const b of nhs) w.bytes(b);
      w.u8(0);
      for (const p of m.nlri) writePrefix(w, p);
      return true;
    },
  },
];

export const MP_UNREACH_ENTRY: [number, AttrSpec] = [
  AttrType.MP_UNREACH_NLRI,
  {
    name: "MP_UNREACH_NLRI",
    flags: OPT,
    action: () => "session-reset",
    decode(r, _c, out) {
      const afi = r.u16();
      const safi = r.u8();
      const fam = familyOf(afi, safi);
      if (fam === null) {
        out.mpUnreach = { afi, safi, withdrawn: [], raw: r.bytes(r.remaining).slice() };
        return;
      }
      out.mpUnreach = { afi, safi, withdrawn: readPrefixes(r, fam) };
    },
    encode(w, a) {
      const m = a.mpUnreach;
      if (m === undefined) return false;
      w.u16(m.afi).u8(m.safi);
      if (m.raw !== undefined) w.bytes(m.raw);
      else for (const p of m.withdrawn) writePrefix(w, p);
      return true;
    },
  },
];
