/**
 * The pure half of the XDP driver: turns the desired set of (interface, VIP, MAC) into resolved
 * map entries, and the difference between what the map holds and what is desired.
 *
 * Values in, values out: interface lookups are passed in, so this is tested without root.
 * Bad input (unknown interface, bad address or MAC, one VIP with two MACs on an interface) is
 * reported as a list of problems and nothing is applied.
 */

import { type Ip, parseIp } from "../util/ip.ts";
import { formatMac, parseMac, type VipEntry } from "./layout.ts";

/** A cheap identity of a map key, for diffs of large sets. */
function keyOf(ifindex: number, ip: Ip): string {
  return `${ifindex}/${ip.family}/${ip.value.toString(16)}`;
}

function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** One VIP to answer for on one interface; `mac` defaults to the interface's own. */
export interface DesiredEntry {
  ifname: string;
  ip: string;
  mac?: string;
}

export interface ResolvedEntry extends VipEntry {
  ifname: string;
}

export interface InterfaceInfo {
  ifindex: number;
  mac: Uint8Array;
}

export type Resolved = { ok: true; entries: ResolvedEntry[] } | { ok: false; problems: string[] };

/** Validates and resolves the desired set; duplicates with the same MAC collapse into one. */
export function resolveDesired(
  desired: readonly DesiredEntry[],
  lookup: (ifname: string) => InterfaceInfo | null,
  parse: (s: string) => Ip | null = parseIp,
): Resolved {
  const problems: string[] = [];
  const byId = new Map<string, ResolvedEntry>();
  for (const [i, d] of desired.entries()) {
    const where = `entry ${i} (${d.ifname} ${d.ip})`;
    const ip: Ip | null = parse(d.ip);
    if (ip === null) {
      problems.push(`${where}: "${d.ip}" is not an IP address`);
      continue;
    }
    if (ip.family === 6 && ip.value >> 120n === 0xffn) {
      problems.push(`${where}: a multicast address cannot be a VIP`);
      continue;
    }
    const ifc = lookup(d.ifname);
    if (ifc === null) {
      problems.push(`${where}: no interface named "${d.ifname}"`);
      continue;
    }
    let mac = ifc.mac;
    if (d.mac !== undefined) {
      const m = parseMac(d.mac);
      if (m === null) {
        problems.push(`${where}: "${d.mac}" is not a MAC address`);
        continue;
      }
      mac = m;
    }
    if ((mac[0]! & 1) === 1 || mac.every((b) => b === 0)) {
      problems.push(`${where}: ${formatMac(mac)} is not a unicast MAC address`);
      continue;
    }
    const id = keyOf(ifc.ifindex, ip);
    const prev = byId.get(id);
    if (prev !== undefined && !sameMac(prev.mac, mac)) {
      problems.push(`${where}: already listed with MAC ${formatMac(prev.mac)}, now ${formatMac(mac)}`);
      continue;
    }
    byId.set(id, { ifname: d.ifname, ifindex: ifc.ifindex, ip, mac });
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, entries: [...byId.values()] };
}

export interface Diff {
  /** Not in the map yet. */
  add: ResolvedEntry[];
  /** In the map with another MAC. */
  change: ResolvedEntry[];
  /** In the map, not desired. */
  remove: VipEntry[];
  /** Already right. */
  unchanged: number;
}

/** What to do to the map so it holds exactly `desired`. */
export function diffEntries(current: readonly VipEntry[], desired: readonly ResolvedEntry[]): Diff {
  const have = new Map(current.map((e) => [keyOf(e.ifindex, e.ip), e]));
  const want = new Set<string>();
  const diff: Diff = { add: [], change: [], remove: [], unchanged: 0 };
  for (const d of desired) {
    const id = keyOf(d.ifindex, d.ip);
    want.add(id);
    const h = have.get(id);
    if (h === undefined) diff.add.push(d);
    else if (!sameMac(h.mac, d.mac)) diff.change.push(d);
    else diff.unchanged++;
  }
  for (const [id, e] of have) if (!want.has(id)) diff.remove.push(e);
  return diff;
}
