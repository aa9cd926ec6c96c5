/**
 * Optional per-VIP Lease fencing for layer 2 (Kubernetes mode, off by default), after the
 * proposal in MetalLB issue #2838: the elected owner of a VIP announces it only while it holds
 * that VIP's coordination.k8s.io/v1 Lease, so two nodes never answer for one VIP even when the
 * heartbeat membership is partitioned — the API server is the tie-breaker. The price: a new
 * owner waits until the old owner's Lease is released or has expired (its duration).
 *
 * Pure: the election's result, what is known of each Lease, and the clock go in; which VIPs may
 * be announced, what to do with each Lease (acquire, renew, release) and why a VIP waits come
 * out. src/k8s/lease-fence.ts reads and writes the Leases.
 *
 * Expiry is judged as client-go's leader election does, on this node's own clock: a Lease held by
 * another node is expired `duration` after this node last saw it change (holder or renewTime),
 * never from the holder's timestamps, so clock skew between nodes does not matter. A holder
 * stops announcing `margin` before `duration` has passed since it sent its last successful
 * renewal; as that send preceded every other node's observation of it, the holder is silent
 * before anyone else may take over.
 */

import { formatIp, parseIp } from "../util/ip.ts";

/** What a read of the Lease returned. */
export interface LeaseRecord {
  /** The holder's identity; "" when released. */
  holder: string;
  durationS: number;
  /** renewTime as written by the holder (ms since the epoch; for display only). */
  renewTime: number;
  resourceVersion?: string | undefined;
}

/** What this node knows of one VIP's Lease. */
export interface LeaseKnowledge {
  /** The last read or write; null: the Lease does not exist. */
  record: LeaseRecord | null;
  /** Local time when the record was last seen to change (holder or renewTime). */
  observedAt: number;
  /**
   * Local time at which this node sent its last successful acquire or renewal (undefined: this
   * node does not hold it, or lost it).
   */
  renewedAt?: number | undefined;
}

export interface FenceTiming {
  /** The Lease duration this node writes (seconds). */
  durationS: number;
  /** Renew when this much time passed since the last renewal. */
  renewEveryMs: number;
  /** Stop announcing this long before the own Lease would run out. */
  marginMs: number;
}

export interface FenceInput {
  self: string;
  now: number;
  /** The VIPs this node won the election for. */
  elected: ReadonlySet<string>;
  leases: ReadonlyMap<string, LeaseKnowledge>;
  timing: FenceTiming;
}

export type FenceAction = { kind: "acquire" | "renew" | "release"; ip: string };

export type FenceState =
  /** Held by this node: announced. */
  | "Held"
  /** Elected; the Lease is free (absent, released, expired, or not read yet): acquiring it. */
  | "Acquiring"
  /** Elected, but another node holds the Lease: not announced until it is released or expires. */
  | "Waiting";

export interface FenceVerdict {
  ip: string;
  state: FenceState;
  /** Who holds the Lease (Held: this node; Waiting: the other node). */
  holder?: string | undefined;
  /** Held: when this node's hold runs out unless renewed; Waiting: when the other's expires. */
  until?: number | undefined;
}

export interface FenceDecision {
  /** The elected VIPs this node may announce now (sorted). */
  announce: string[];
  actions: FenceAction[];
  /** One per elected VIP (sorted by IP). */
  verdicts: FenceVerdict[];
  /** The next time the decision changes on its own (a hold runs out, a Lease expires). */
  wakeAt: number | undefined;
}

/** Whether this node holds the Lease by its own account (a successful write it made). */
function held(self: string, k: LeaseKnowledge | undefined): k is LeaseKnowledge & { renewedAt: number } {
  return k?.renewedAt !== undefined && k.record?.holder === self;
}

export function decideFencing(input: FenceInput): FenceDecision {
  const { self, now, timing } = input;
  const announce: string[] = [];
  const actions: FenceAction[] = [];
  const verdicts: FenceVerdict[] = [];
  let wakeAt: number | undefined;
  const wake = (t: number) => {
    if (t > now && (wakeAt === undefined || t < wakeAt)) wakeAt = t;
  };
  for (const ip of [...input.elected].sort()) {
    const k = input.leases.get(ip);
    if (held(self, k)) {
      const end = k.renewedAt + (k.record?.durationS ?? timing.durationS) * 1000;
      const stopAt = end - timing.marginMs;
      if (now < stopAt) {
        announce.push(ip);
        wake(stopAt);
        if (now - k.renewedAt >= timing.renewEveryMs) actions.push({ kind: "renew", ip });
        else wake(k.renewedAt + timing.renewEveryMs);
        verdicts.push({ ip, state: "Held", holder: self, until: end });
      } else {
        // Could not renew in time: silent until a renewal succeeds again.
        actions.push({ kind: "renew", ip });
        verdicts.push({ ip, state: "Acquiring", holder: self, until: end });
      }
      continue;
    }
    const r = k?.record;
    // A Lease this node's identity holds without a write of this process (a previous run on
    // this node) is free for it: the same node, the same interfaces.
    if (k === undefined || r === null || r === undefined || r.holder === "" || r.holder === self) {
      actions.push({ kind: "acquire", ip });
      verdicts.push({ ip, state: "Acquiring" });
      continue;
    }
    const expires = k.observedAt + r.durationS * 1000;
    if (now >= expires) {
      actions.push({ kind: "acquire", ip });
      verdicts.push({ ip, state: "Acquiring", holder: r.holder, until: expires });
    } else {
      wake(expires);
      verdicts.push({ ip, state: "Waiting", holder: r.holder, until: expires });
    }
  }
  // Leases this node holds for VIPs it no longer wins: handed back (after the entry is gone).
  for (const [ip, k] of [...input.leases].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    if (!input.elected.has(ip) && held(self, k)) actions.push({ kind: "release", ip });
  return { announce, actions, verdicts, wakeAt };
}

/**
 * The default timing for a Lease duration: renew three times per duration; margin 10% (at least
 * 500 ms). The XDP liveness window must not exceed the margin (src/k8s/run.ts sees to it): a
 * holder that dies just before it would have stopped on its own still falls silent before its
 * Lease can expire for anyone else.
 */
export function fenceTiming(durationS: number): FenceTiming {
  const d = durationS * 1000;
  return { durationS, renewEveryMs: Math.floor(d / 3), marginMs: Math.max(500, Math.floor(d / 10)) };
}

/**
 * The Lease's name for a VIP: DNS-1123 safe and one per address. IPv4 `vipd-l2-v4-10-0-0-1`;
 * IPv6 `vipd-l2-v6-` and the 32 hex digits of the address (every text form of one address gives
 * one name). Throws on text that is not an IP address.
 */
export function leaseName(ip: string): string {
  const p = parseIp(ip);
  if (p === null) throw new RangeError(`${JSON.stringify(ip)} is not an IP address`);
  if (p.family === 4) return `vipd-l2-v4-${formatIp(p).replaceAll(".", "-")}`;
  return `vipd-l2-v6-${p.value.toString(16).padStart(32, "0")}`;
}
