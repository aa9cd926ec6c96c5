/**
 * Which local interface answers ARP/NDP for the VIPs when none is named: the one holding this
 * Node's InternalIP, as the API server has it (`status.addresses`). An operator's choice, when
 * there is one (`VIPD_INTERFACE`, e.g. from an optional ConfigMap key in the k3s addon), wins.
 *
 * `chooseInterface` is pure (the Node's addresses and the local interfaces in, a name or a
 * reason out); `localInterfaces` reads the interfaces of the current network namespace.
 */

import { networkInterfaces } from "node:os";
import { parseIp } from "../util/ip.ts";
import type { KubeObject } from "./client.ts";

/** One address of a local interface, as `os.networkInterfaces()` lists it. */
export interface LocalAddress {
  address: string;
  internal: boolean;
}

export type InterfaceChoice = { ok: true; name: string; address: string } | { ok: false; message: string };

/** The Node's InternalIP addresses, in the order the API server lists them. */
export function nodeInternalIps(node: KubeObject | undefined): string[] {
  const addrs = (node?.status as { addresses?: { type?: string; address?: string }[] } | undefined)
    ?.addresses;
  return (addrs ?? [])
    .filter((a) => a.type === "InternalIP" && typeof a.address === "string")
    .map((a) => a.address as string);
}

/** Canonical text of an address (so fd00::0:1 and fd00::1 match), or null when it is none. */
function canonical(s: string): string | null {
  const bare = s.split("%")[0] ?? s; // fe80::1%eth0
  const ip = parseIp(bare);
  return ip === null ? null : `${ip.family}/${ip.value}`;
}

/**
 * The interface holding the first of `nodeIps` found locally (loopback excluded). More than one
 * interface with that address is ambiguous and refused, rather than guessed.
 */
export function chooseInterface(
  nodeIps: readonly string[],
  local: Readonly<Record<string, readonly LocalAddress[] | undefined>>,
): InterfaceChoice {
  if (nodeIps.length === 0) return { ok: false, message: "the Node has no InternalIP address" };
  for (const ip of nodeIps) {
    const want = canonical(ip);
    if (want === null) continue;
    const holders = Object.entries(local)
      .filter(([, addrs]) => (addrs ?? []).some((a) => !a.internal && canonical(a.address) === want))
      .map(([name]) => name)
      .sort();
    if (holders.length === 1) return { ok: true, name: holders[0]!, address: ip };
    if (holders.length > 1)
      return {
        ok: false,
        message: `the Node's InternalIP ${ip} is on several interfaces (${holders.join(", ")}): name one (VIPD_INTERFACE)`,
      };
  }
  return {
    ok: false,
    message: `no local interface holds the Node's InternalIP (${nodeIps.join(", ")}): name one (VIPD_INTERFACE)`,
  };
}

/** The interfaces of this network namespace and their addresses. */
export function localInterfaces(): Record<string, LocalAddress[]> {
  const out: Record<string, LocalAddress[]> = {};
  for (const [name, addrs] of Object.entries(networkInterfaces()))
    out[name] = (addrs ?? []).map((a) => ({ address: a.address, internal: a.internal }));
  return out;
}

/**
 * `--interface auto`: the interfaces named in `VIPD_INTERFACE` (comma-separated) when it is set
 * and not empty, else the one holding the Node's InternalIP.
 */
export function resolveAuto(
  configured: string | undefined,
  node: KubeObject | undefined,
  local: Readonly<Record<string, readonly LocalAddress[] | undefined>>,
): { ok: true; names: string[]; why: string } | { ok: false; message: string } {
  const named = (configured ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (named.length > 0) return { ok: true, names: named, why: "VIPD_INTERFACE" };
  if (node === undefined) return { ok: false, message: "this Node is not in the API server's Node list" };
  const c = chooseInterface(nodeInternalIps(node), local);
  return c.ok ? { ok: true, names: [c.name], why: `holds the Node's InternalIP ${c.address}` } : c;
}
