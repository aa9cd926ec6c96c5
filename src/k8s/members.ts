/**
 * Live membership in Kubernetes mode, the pure part: who the members are (the Node list, each
 * Node's InternalIP as the address its heartbeats go to) and which nodes may own layer-2 VIPs
 * (Kubernetes says Ready AND, when membership is on, the heartbeats say alive and ready).
 * Values in, values out; src/k8s/speaker.ts and src/k8s/run.ts feed it and apply its results.
 * The heartbeat protocol itself is src/cluster/ (HMAC-SHA256 authenticated, see heartbeat.ts).
 */

import type { NodeInfo } from "../plan/plan.ts";
import { formatIp, parseIp } from "../util/ip.ts";
import type { KubeObject } from "./client.ts";

/** A member of the heartbeat mesh: a Node's name and the address its heartbeats are sent to. */
export interface Member {
  name: string;
  address?: string | undefined;
}

/** Which InternalIP a member is reached at when a Node has both families. */
export type AddressFamily = "ipv4" | "ipv6";

/**
 * Every Node as a member, sorted by name; its address is the first InternalIP of the preferred
 * family, else the first of the other (none: the member is known but no heartbeat goes to it,
 * so it never becomes alive). Addresses are normalised (an IPv6 text has one canonical form).
 */
export function membersFromNodes(nodes: readonly KubeObject[], prefer: AddressFamily = "ipv4"): Member[] {
  const out: Member[] = [];
  for (const n of nodes) {
    const addrs = ((n.status as { addresses?: unknown } | undefined)?.addresses ?? []) as unknown[];
    const internal: { family: 4 | 6; text: string }[] = [];
    for (const a of Array.isArray(addrs) ? addrs : []) {
      const x = a as { type?: unknown; address?: unknown };
      if (x.type !== "InternalIP" || typeof x.address !== "string") continue;
      const ip = parseIp(x.address);
      if (ip !== null) internal.push({ family: ip.family, text: formatIp(ip) });
    }
    const want = prefer === "ipv4" ? 4 : 6;
    const pick = internal.find((a) => a.family === want) ?? internal[0];
    out.push(pick === undefined ? { name: n.metadata.name } : { name: n.metadata.name, address: pick.text });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** True when two member lists name the same nodes at the same addresses (in any order). */
export function sameMembers(a: readonly Member[], b: readonly Member[]): boolean {
  if (a.length !== b.length) return false;
  const m = new Map(a.map((x) => [x.name, x.address]));
  return b.every((x) => m.has(x.name) && m.get(x.name) === x.address);
}

/** What the speaker needs of live membership (src/cluster/service.ts MembershipService). */
export interface LiveMembership {
  /** Nodes alive and ready, this one included when it is ready. */
  alive(): string[];
  /** This node takes part in elections (not holding back after a start, a pause or a partition). */
  ready(): boolean;
}

/**
 * The layer-2 candidates: Nodes Kubernetes calls Ready, and — with live membership — only those
 * the heartbeats say are alive and ready. `notReady` holds this node while it holds back (it is
 * then shown as NotReady, not NotAlive, in the elections).
 */
export function electionMembers(
  ready: readonly NodeInfo[],
  self: string,
  membership?: { alive: readonly string[]; ready: boolean } | undefined,
): { members: NodeInfo[]; notReady: Set<string> | undefined } {
  if (membership === undefined) return { members: [...ready], notReady: undefined };
  const alive = new Set(membership.alive);
  return {
    members: ready.filter((n) => alive.has(n.name)),
    notReady: membership.ready ? undefined : new Set([self]),
  };
}
