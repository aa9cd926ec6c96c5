/**
 * Forced failover (`POST /api/v1/l2/failover`), the decision part shared by the appliance and
 * Kubernetes mode: the VIP's owner declines it — one decline per Service, keyed by the Service's
 * first address, which is what the election follows — so the next candidate, or the named one,
 * takes it. The declines travel with the owner's authenticated heartbeats, so every node agrees.
 *
 * Pure: the election and this node's declines in, the new declines or a refusal out.
 */

import type { FailoverRefusal } from "../api/runtime.ts";
import { type Decline, MAX_DECLINES } from "../cluster/heartbeat.ts";
import type { L2Election } from "./plan.ts";

export type DeclineRefusal = Omit<FailoverRefusal, "ok"> & { ok: false };

export interface DeclineInput {
  ip: string;
  /** The node asked for; undefined: the next candidate. */
  to?: string | undefined;
  self: string;
  /** Live membership is on (without it there is no one to hand over to). */
  live: boolean;
  /** The VIP's election; undefined when it is not a layer-2 VIP here. */
  election: L2Election | undefined;
  /** The first address of the election's first Service (the election key of its addresses). */
  key: string;
  /** This node's current declines. */
  mine: readonly Decline[];
}

/** The declines this node should carry from now on, or why the request is refused. */
export function declineVip(x: DeclineInput): { ok: true; declines: Decline[] } | DeclineRefusal {
  const { ip, to, self, election: e } = x;
  if (!x.live)
    return {
      ok: false,
      status: 409,
      error: "NoCluster",
      message:
        "live membership is off (no cluster key: NodeSettings.spec.cluster.keyFile, or --cluster-key-file " +
        "in Kubernetes mode): there is no other node to move to",
    };
  if (e === undefined)
    return { ok: false, status: 404, error: "UnknownVip", message: `${ip} is not a layer-2 VIP here` };
  if (e.owner !== self)
    return {
      ok: false,
      status: 409,
      error: "NotOwner",
      message: `this node (${self}) does not own ${ip}; its owner is ${e.owner ?? "nobody"}: ask it`,
    };
  if (to !== undefined && (to === self || !e.candidates.includes(to)))
    return {
      ok: false,
      status: 422,
      error: "NotEligible",
      message: `${to} is not an eligible candidate for ${ip} (candidates: ${e.candidates.join(", ")})`,
    };
  if (!e.candidates.some((c) => c !== self))
    return {
      ok: false,
      status: 409,
      error: "NoCandidate",
      message: `no other eligible node for ${ip}: it stays here`,
    };
  const rest = x.mine.filter((d) => d.ip !== x.key);
  if (rest.length >= MAX_DECLINES)
    return {
      ok: false,
      status: 409,
      error: "Conflict",
      message: `this node already declines ${rest.length} VIPs (at most ${MAX_DECLINES}); cancel one first`,
    };
  return { ok: true, declines: [...rest, to === undefined ? { ip: x.key } : { ip: x.key, to }] };
}

/** This node's declines without the one for `key`; undefined when there was none. */
export function withdrawDecline(mine: readonly Decline[], key: string): Decline[] | undefined {
  const rest = mine.filter((d) => d.ip !== key);
  return rest.length === mine.length ? undefined : rest;
}
