/**
 * OPEN message body and its capabilities (RFC 4271 §4.2, RFC 5492), plus OPEN validation
 * (RFC 4271 §6.2) as a pure function the FSM calls.
 *
 * Capabilities understood: multiprotocol (RFC 4760), route refresh (RFC 2918), extended next hop
 * (RFC 8950), extended message (RFC 8654, recognised only), graceful restart (RFC 4724), 4-octet AS
 * (RFC 6793). Anything else is kept as raw bytes. Extended optional parameters (RFC 9072) are
 * decoded.
 */
import type { Reader, Writer } from "./buf.ts";
import { AS_TRANS, BGP_VERSION, CapCode, ErrCode, OpenSub } from "./constants.ts";
import { BgpDecodeError } from "./errors.ts";

export interface AfiSafi {
  afi: number;
  safi: number;
}

export type Capability =
  | { kind: "multiprotocol"; afi: number; safi: number }
  | { kind: "route-refresh" }
  | { kind: "as4"; asn: number }
  | { kind: "extended-next-hop"; entries: { afi: number; safi: number; nextHopAfi: number }[] }
  | { kind: "extended-message" }
  | {
      kind: "graceful-restart";
      /** R bit: the sender has restarted and its peer should not wait for its own EoR first. */
      restarting: boolean;
      /** N bit (RFC 8538): the sender supports graceful restart for NOTIFICATIONs. */
      notification: boolean;
      /** Seconds the peer should keep our routes after the session goes down. */
      time: number;
      families: { afi: number; safi: number; forwardingPreserved: boolean }[];
    }
  | { kind: "unknown"; code: number; value: Uint8Array };

export interface OpenMessage {
  type: "open";
  version: number;
  /** The 2-octet "My Autonomous System" field (AS_TRANS when the real ASN needs 4 octets). */
  myAs: number;
  holdTime: number;
  /** BGP Identifier as an unsigned 32-bit number. */
  bgpId: number;
  capabilities: Capability[];
}

const openErr = (sub: number, msg: string) => new BgpDecodeError(ErrCode.OPEN_MESSAGE, sub, msg);

function decodeCapability(code: number, r: Reader): Capability {
  const len = r.remaining;
  const bad = () => openErr(OpenSub.UNSPECIFIC, `capability ${code} has bad length ${len}`);
  switch (code) {
    case CapCode.MULTIPROTOCOL: {
      if (len !== 4) throw bad();
      const afi = r.u16();
      r.u8();
      return { kind: "multiprotocol", afi, safi: r.u8() };
    }
    case CapCode.ROUTE_REFRESH:
      if (len !== 0) throw bad();
      return { kind: "route-refresh" };
    case CapCode.EXTENDED_MESSAGE:
      if (len !== 0) throw bad();
      return { kind: "extended-message" };
    case CapCode.AS4:
      if (len !== 4) throw bad();
      return { kind: "as4", asn: r.u32() };
    case CapCode.EXTENDED_NEXT_HOP: {
      if (len % 6 !== 0) throw bad();
      const entries: { afi: number; safi: number; nextHopAfi: number }[] = [];
      while (r.remaining > 0) entries.push({ afi: r.u16(), safi: r.u16(), nextHopAfi: r.u16() });
      return { kind: "extended-next-hop", entries };
    }
    case CapCode.GRACEFUL_RESTART: {
      if (len < 2 || (len - 2) % 4 !== 0) throw bad();
      const word = r.u16();
      const families: { afi: number; safi: number; forwardingPreserved: boolean }[] = [];
      while (r.remaining > 0) {
        const afi = r.u16();
        const safi = r.u8();
        families.push({ afi, safi, forwardingPreserved: (r.u8() & 0x80) !== 0 });
      }
      return {
        kind: "graceful-restart",
        restarting: (word & 0x8000) !== 0,
        notification: (word & 0x4000) !== 0,
        time: word & 0x0fff,
        families,
      };
    }
    default:
      return { kind: "unknown", code, value: r.bytes(len).slice() };
  }
}

function encodeCapability(w: Writer, c: Capability): void {
  const start = w.pos;
  w.u8(0).u8(0);
  switch (c.kind) {
    case "multiprotocol":
      w.patchU8(start, CapCode.MULTIPROTOCOL);
      w.u16(c.afi).u8(0).u8(c.safi);
      break;
    case "route-refresh":
      w.patchU8(start, CapCode.ROUTE_REFRESH);
      break;
    case "extended-message":
      w.patchU8(start, CapCode.EXTENDED_MESSAGE);
      break;
    case "as4":
      w.patchU8(start, CapCode.AS4);
      w.u32(c.asn);
      break;
    case "extended-next-hop":
      w.patchU8(start, CapCode.EXTENDED_NEXT_HOP);
      for (const e of c.entries) w.u16(e.afi).u16(e.safi).u16(e.nextHopAfi);
      break;
    case "graceful-restart":
      w.patchU8(start, CapCode.GRACEFUL_RESTART);
      w.u16((c.restarting ? 0x8000 : 0) | (c.notification ? 0x4000 : 0) | (c.time & 0x0fff));
      for (const f of c.families)
        w.u16(f.afi)
          .u8(f.safi)
          .u8(f.forwardingPreserved ? 0x80 : 0);
      break;
    case "unknown":
      w.patchU8(start, c.code);
      w.bytes(c.value);
      break;
  }
  w.patchU8(start + 1, w.pos - start - 2);
}

/** Decodes an OPEN body (after the 19-byte header). */
export function decodeOpen(r: Reader): OpenMessage {
  const version = r.u8();
  if (version !== BGP_VERSION) {
    // RFC 4271 §6.2: data is the largest locally supported version number.
    throw new BgpDecodeError(
      ErrCode.OPEN_MESSAGE,
      OpenSub.UNSUPPORTED_VERSION,
      `unsupported BGP version ${version}`,
      "session-reset",
      new Uint8Array([0, BGP_VERSION]),
    );
  }
  const myAs = r.u16();
  const holdTime = r.u16();
  const bgpId = r.u32();
  let optLen = r.u8();
  let extended = false;
  // RFC 9072: non-extended length 255 followed by type 255 means a 2-octet length follows.
  if (optLen === 255 && r.remaining >= 3 && r.buf[r.pos] === 255) {
    r.u8();
    optLen = r.u16();
    extended = true;
  }
  if (optLen !== r.remaining)
    throw openErr(OpenSub.UNSPECIFIC, `optional parameters length ${optLen} != ${r.remaining}`);
  const capabilities: Capability[] = [];
  while (r.remaining > 0) {
    const type = r.u8();
    const len = extended ? r.u16() : r.u8();
    const p = r.sub(len, () => openErr(OpenSub.UNSPECIFIC, "optional parameter truncated"));
    if (type !== 2)
      throw openErr(OpenSub.UNSUPPORTED_OPTIONAL_PARAMETER, `unsupported optional parameter ${type}`);
    while (p.remaining > 0) {
      const code = p.u8();
      const clen = p.u8();
      capabilities.push(
        decodeCapability(
          code,
          p.sub(clen, () => openErr(OpenSub.UNSPECIFIC, "capability truncated")),
        ),
      );
    }
  }
  return { type: "open", version, myAs, holdTime, bgpId, capabilities };
}

export function encodeOpenBody(w: Writer, m: OpenMessage): void {
  w.u8(m.version).u16(m.myAs).u16(m.holdTime).u32(m.bgpId);
  const lenAt = w.pos;
  w.u8(0);
  // One optional parameter holding all capabilities, as BIRD does.
  if (m.capabilities.length > 0) {
    const pStart = w.pos;
    w.u8(2).u8(0);
    for (const c of m.capabilities) encodeCapability(w, c);
    const plen = w.pos - pStart - 2;
    if (plen > 255) throw new BgpDecodeError(ErrCode.OPEN_MESSAGE, 0, "capabilities exceed 255 bytes");
    w.patchU8(pStart + 1, plen);
  }
  w.patchU8(lenAt, w.pos - lenAt - 1);
}

/** Convenience: the real ASN an OPEN announces (AS4 capability wins over the 2-octet field). */
export function openAsn(m: OpenMessage): number {
  for (const c of m.capabilities) if (c.kind === "as4") return c.asn;
  return m.myAs;
}

export function findCap<K extends Capability["kind"]>(
  caps: readonly Capability[],
  kind: K,
): Extract<Capability, { kind: K }> | undefined {
  for (const c of caps) if (c.kind === kind) return c as Extract<Capability, { kind: K }>;
  return undefined;
}

export function hasFamily(caps: readonly Capability[], afi: number, safi: number): boolean {
  return caps.some((c) => c.kind === "multiprotocol" && c.afi === afi && c.safi === safi);
}

export function twoOctetAs(asn: number): number {
  return asn > 0xffff ? AS_TRANS : asn;
}

export interface OpenExpectation {
  /** Expected peer ASN; undefined accepts any (dynamicASN "internal"/"external" is checked by kind). */
  peerAsn?: number;
  localAsn: number;
  dynamic?: "internal" | "external";
  localBgpId: number;
}

/** The outcome of validating a peer's OPEN: negotiated values, or the NOTIFICATION to send. */
export type OpenCheck = { ok: true; peerAsn: number; as4: boolean } | { ok: false; error: BgpDecodeError };

/** RFC 4271 §6.2 checks, in the order the RFC lists them. Version was checked by the decoder. */
export function validateOpen(m: OpenMessage, exp: OpenExpectation): OpenCheck {
  const as4cap = findCap(m.capabilities, "as4");
  const peerAsn = as4cap ? as4cap.asn : m.myAs;
  if (as4cap && m.myAs !== twoOctetAs(as4cap.asn) && m.myAs !== AS_TRANS) {
    return {
      ok: false,
      error: openErr(OpenSub.BAD_PEER_AS, `OPEN AS ${m.myAs} disagrees with AS4 capability ${as4cap.asn}`),
    };
  }
  if (exp.peerAsn !== undefined && peerAsn !== exp.peerAsn) {
    return { ok: false, error: openErr(OpenSub.BAD_PEER_AS, `peer AS ${peerAsn}, expected ${exp.peerAsn}`) };
  }
  if (exp.dynamic === "internal" && peerAsn !== exp.localAsn) {
    return {
      ok: false,
      error: openErr(OpenSub.BAD_PEER_AS, `peer AS ${peerAsn} is not internal (${exp.localAsn})`),
    };
  }
  if (exp.dynamic === "external" && peerAsn === exp.localAsn) {
    return { ok: false, error: openErr(OpenSub.BAD_PEER_AS, `peer AS ${peerAsn} is not external`) };
  }
  if (m.holdTime === 1 || m.holdTime === 2) {
    return {
      ok: false,
      error: openErr(OpenSub.UNACCEPTABLE_HOLD_TIME, `hold time ${m.holdTime} is not 0 or >= 3`),
    };
  }
  if (m.bgpId === 0 || m.bgpId === 0xffffffff) {
    return { ok: false, error: openErr(OpenSub.BAD_BGP_IDENTIFIER, `bad BGP identifier ${m.bgpId}`) };
  }
  // RFC 6286 §2.2: for iBGP the identifiers must differ.
  if (peerAsn === exp.localAsn && m.bgpId === exp.localBgpId) {
    return { ok: false, error: openErr(OpenSub.BAD_BGP_IDENTIFIER, "peer uses our BGP identifier") };
  }
  return { ok: true, peerAsn, as4: as4cap !== undefined };
}
