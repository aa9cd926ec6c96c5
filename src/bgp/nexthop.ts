/**
 * The next hop for routes of the other family than a session's own (IPv6 VIPs over an IPv4
 * session, IPv4 VIPs over an IPv6 one), pure: the host's interface table in, addresses out.
 *
 * The address must be on the interface the session runs over — the one holding the session's
 * local address — so that the peer, which reached us there, can reach it too. A peer on a second
 * interface must not be handed the first interface's address. For IPv6 the link-local address of
 * that interface goes with the global one when the peer shares the link (RFC 2545 §3: global +
 * link-local, 32 octets); for IPv4 any IPv4 address of the interface does (RFC 4760 §3).
 */
import { parseIp } from "../util/ip.ts";

/** One address of an interface, as `os.networkInterfaces()` lists it. */
export interface IfaceAddress {
  address: string;
  /** "a.b.c.d/len" or "x::y/len". */
  cidr: string | null;
  family: "IPv4" | "IPv6" | string;
  internal?: boolean;
}

export type IfaceTable = Record<string, IfaceAddress[] | undefined>;

export interface OtherFamilyNextHops {
  /** The interface the session's local address is on. */
  iface?: string;
  /** An IPv4 address of that interface (next hop of IPv4 routes over an IPv6 session). */
  4?: string;
  /** Global (then, when the peer is on the link, link-local) IPv6 next hop(s) of that interface. */
  6?: string[];
}

const isLinkLocal6 = (v: bigint) => v >> 118n === 0x3fan; // fe80::/10

function prefixLen(a: IfaceAddress): number {
  const l = Number((a.cidr ?? "").split("/")[1]);
  return Number.isInteger(l) ? l : 128;
}

/** Whether `ip` is inside the subnet of interface address `a`. */
function onLink(a: IfaceAddress, ip: string): boolean {
  const net = parseIp(a.address);
  const x = parseIp(ip);
  if (net === null || x === null || net.family !== x.family) return false;
  const bits = net.family === 4 ? 32 : 128;
  const len = Math.min(prefixLen(a), bits);
  const shift = BigInt(bits - len);
  return net.value >> shift === x.value >> shift;
}

/**
 * The other family's next hops for a session from `localAddress` to `peerAddress`, read from the
 * interface holding `localAddress`. Addresses with a subnet (not /32 or /128 host addresses such
 * as VIPs) are preferred. Empty when the local address is on no interface.
 */
export function otherFamilyNextHops(
  ifaces: IfaceTable,
  localAddress: string,
  peerAddress: string,
): OtherFamilyNextHops {
  let local = parseIp(localAddress);
  if (local === null) return {};
  // An IPv4 session accepted on a dual-stack listener shows a v4-mapped local address.
  if (local.family === 6 && local.value >> 32n === 0xffffn)
    local = { family: 4, value: local.value & 0xffffffffn };
  for (const [name, addrs] of Object.entries(ifaces)) {
    if (!addrs) continue;
    const own = addrs.find((a) => {
      const p = parseIp(a.address.split("%")[0] ?? "");
      return p !== null && p.family === local.family && p.value === local.value;
    });
    if (!own) continue;
    const out: OtherFamilyNextHops = { iface: name };
    const ranked = (fam: 4 | 6) =>
      addrs
        .filter((a) => parseIp(a.address.split("%")[0] ?? "")?.family === fam)
        .sort(
          (x, y) =>
            Number(prefixLen(x) === (fam === 4 ? 32 : 128)) - Number(prefixLen(y) === (fam === 4 ? 32 : 128)),
        );
    if (local.family === 6) {
      const v4 = ranked(4)[0];
      if (v4) out[4] = v4.address;
    } else {
      const v6 = ranked(6).map((a) => ({ a, ip: parseIp(a.address.split("%")[0] ?? "")! }));
      const global = v6.find((x) => !isLinkLocal6(x.ip.value));
      const ll = v6.find((x) => isLinkLocal6(x.ip.value));
      if (global) {
        out[6] = [global.a.address];
        // RFC 2545 §3: the link-local address goes along only when the peer shares the link. The
        // IPv4 session tells: the peer's IPv4 address is on this interface's subnet.
        if (ll && onLink(own, peerAddress)) out[6].push(ll.a.address.split("%")[0]!);
      }
    }
    return out;
  }
  return {};
}
