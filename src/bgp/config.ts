/**
 * Peer configuration as the speaker takes it: the BGPPeer spec fields of MetalLB (metallb.io
 * v1beta2 BGPPeer), already resolved to one peer, plus validation with clear messages.
 */
import { formatIp, parseIp } from "../util/ip.ts";

export interface PeerConfig {
  /** Unique name (the BGPPeer's metadata.name); also the metrics label. */
  name: string;
  myASN: number;
  /** Exactly one of peerASN and dynamicASN. */
  peerASN?: number;
  dynamicASN?: "internal" | "external";
  peerAddress: string;
  /** Default 179. */
  peerPort?: number;
  sourceAddress?: string;
  /** Seconds; 0 or >= 3. Default 90. */
  holdTime?: number;
  /** Seconds; default holdTime/3; must be < holdTime. */
  keepaliveTime?: number;
  /** Connect-retry interval, seconds. Default 5 (backs off to 60). */
  connectTime?: number;
  /** Overrides the speaker's router ID for this session. */
  routerID?: string;
  /** TCP-MD5 (RFC 2385) key. */
  password?: string;
  /** eBGP peer more than one hop away: TTL 255 instead of 1. */
  ebgpMultiHop?: boolean;
  /** RFC 5082 GTSM: send with TTL 255, accept only TTL >= 254 (direct peers only). */
  gtsm?: boolean;
  /** RFC 4724: advertise graceful restart, so a planned restart of vipd keeps our routes at the peer. */
  enableGracefulRestart?: boolean;
  /** Restart time advertised, seconds (default 120, max 4095). */
  gracefulRestartTime?: number;
  /** Only accept connections; never initiate. */
  passive?: boolean;
  /** Address families carried (default both). */
  families?: (4 | 6)[];
}

const isU32 = (n: unknown): n is number =>
  typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 0xffffffff;

/** Problems with one peer config, as "name: field: message" lines; empty when valid. */
export function validatePeer(p: PeerConfig): string[] {
  const e: string[] = [];
  const at = (f: string, m: string) => e.push(`${p.name || "(unnamed)"}: ${f}: ${m}`);
  if (!p.name) at("name", "required");
  if (!isU32(p.myASN)) at("myASN", `${p.myASN} is not an ASN (1..4294967295)`);
  if (p.peerASN === undefined && p.dynamicASN === undefined)
    at("peerASN", "one of peerASN or dynamicASN is required");
  if (p.peerASN !== undefined && p.dynamicASN !== undefined)
    at("dynamicASN", "cannot be set together with peerASN");
  if (p.peerASN !== undefined && !isU32(p.peerASN))
    at("peerASN", `${p.peerASN} is not an ASN (1..4294967295)`);
  if (p.dynamicASN !== undefined && p.dynamicASN !== "internal" && p.dynamicASN !== "external")
    at("dynamicASN", `"${p.dynamicASN}" is not "internal" or "external"`);
  if (parseIp(p.peerAddress) === null) at("peerAddress", `"${p.peerAddress}" is not an IP address`);
  if (p.sourceAddress !== undefined) {
    const s = parseIp(p.sourceAddress);
    const a = parseIp(p.peerAddress);
    if (s === null) at("sourceAddress", `"${p.sourceAddress}" is not an IP address`);
    else if (a !== null && s.family !== a.family)
      at("sourceAddress", "must be the same family as peerAddress");
  }
  if (p.peerPort !== undefined && !(Number.isInteger(p.peerPort) && p.peerPort >= 1 && p.peerPort <= 65535))
    at("peerPort", `${p.peerPort} is not a TCP port`);
  const hold = p.holdTime ?? 90;
  if (!(Number.isInteger(hold) && (hold === 0 || (hold >= 3 && hold <= 65535))))
    at("holdTime", `${hold} must be 0 or 3..65535 seconds`);
  if (p.keepaliveTime !== undefined) {
    if (!(Number.isInteger(p.keepaliveTime) && p.keepaliveTime >= 1))
      at("keepaliveTime", `${p.keepaliveTime} must be a positive integer`);
    else if (hold !== 0 && p.keepaliveTime >= hold)
      at("keepaliveTime", `${p.keepaliveTime} must be less than holdTime ${hold}`);
  }
  if (p.connectTime !== undefined && !(p.connectTime > 0 && p.connectTime <= 65535))
    at("connectTime", `${p.connectTime} must be > 0 seconds`);
  if (p.routerID !== undefined) {
    const r = parseIp(p.routerID);
    if (r === null || r.family !== 4) at("routerID", `"${p.routerID}" is not an IPv4 address`);
  }
  if (p.password !== undefined && new TextEncoder().encode(p.password).length > 80)
    at("password", "longer than 80 bytes (TCP-MD5 limit)");
  if (
    p.gracefulRestartTime !== undefined &&
    !(Number.isInteger(p.gracefulRestartTime) && p.gracefulRestartTime >= 1 && p.gracefulRestartTime <= 4095)
  )
    at("gracefulRestartTime", `${p.gracefulRestartTime} must be 1..4095 seconds`);
  if (p.gtsm && p.ebgpMultiHop) at("gtsm", "cannot be combined with ebgpMultiHop");
  if (p.families !== undefined && (p.families.length === 0 || p.families.some((f) => f !== 4 && f !== 6)))
    at("families", "must list 4 and/or 6");
  return e;
}

/** Router ID text to the 32-bit BGP Identifier. */
export function routerIdValue(s: string): number {
  const ip = parseIp(s);
  if (ip === null || ip.family !== 4) throw new Error(`router ID "${s}" is not an IPv4 address`);
  return Number(ip.value);
}

/** "::ffff:10.0.0.1" → "10.0.0.1"; other addresses canonical. */
export function normalizeAddress(s: string): string {
  const ip = parseIp(s);
  if (ip === null) return s;
  if (ip.family === 6 && ip.value >> 32n === 0xffffn) {
    const v = ip.value & 0xffffffffn;
    return [24n, 16n, 8n, 0n].map((k) => String((v >> k) & 255n)).join(".");
  }
  return formatIp(ip);
}
