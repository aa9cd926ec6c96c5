/**
 * Make-before-break hand-over of layer-2 VIPs. Pure: the previous and next ownership, the clock
 * and this node's readiness in; the VIPs this node keeps answering for out.
 *
 * When a VIP moves by choice — failback to its natural owner, a forced failover or its cancel, a
 * node joining the site — both nodes are alive, and the order matters: clients keep sending to
 * the MAC in their neighbour cache until the new owner's gratuitous ARP / unsolicited NA reaches
 * them. If the old owner stopped first, that traffic would fall into a hole. So:
 *
 *   1. the new owner programs its XDP entry (and local route) and announces at once; until it
 *      has, its heartbeats say "not settled" (heartbeat flag bit 2, src/cluster/heartbeat.ts),
 *      and the first one after that says "settled";
 *   2. the old owner, which lost the VIP to that live node, keeps its entry and route — it
 *      keeps answering ARP/NDP and delivering traffic — until it hears a settled heartbeat from
 *      the new owner sent at least HANDOVER_ACK_MARGIN_MS after its own decision (so a heartbeat
 *      already in flight, sent before the new owner learned of its gain, does not count), or at
 *      most HANDOVER_HOLD_MS;
 *   3. then the old owner stops.
 *
 * The overlap is about one heartbeat interval plus the new owner's apply, however slow that
 * apply is (a loaded machine); meanwhile both answer ARP, and a client that asked then and took
 * the old owner's answer is corrected by the new owner's repeated announcements (0.5, 1, 2, 4 s).
 *
 * No hold when the VIP is lost for any other reason: this node is not ready (starting, resumed
 * after a pause, stepping back after a partition — its view is stale, it must let go at once),
 * or the VIP has no owner any more (Service deleted). A VIP regained during its hold is owned again (and announced: see
 * src/drivers/l2.ts); a held VIP is never held past its first deadline.
 */

/** At most this long the old owner keeps answering after losing a VIP to another live node (ms). */
export const HANDOVER_HOLD_MS = 2000;
/** A settled heartbeat counts as the new owner's acknowledgment only if sent this long after the loss. */
export const HANDOVER_ACK_MARGIN_MS = 50;

export interface Held<E> {
  entry: E;
  /** When the VIP was lost (same clock as `now`). */
  since: number;
  /** When the hold ends at the latest (same clock as `now`). */
  until: number;
  /** The node the VIP went to. */
  to: string;
}

export interface HandoverInput<E extends { ip: string }> {
  /** The VIPs this node owned in the previous plan (not counting held ones). */
  prevOwned: readonly E[];
  /** The holds in force. */
  held: ReadonlyMap<string, Held<E>>;
  /** The VIPs this node owns in the next plan. */
  nextOwned: readonly E[];
  /** The owner of each VIP by the next election (undefined: none). */
  ownerOf: (ip: string) => string | undefined;
  self: string;
  /** This node takes part in elections now (not starting, paused or stepping back). */
  selfReady: boolean;
  now: number;
  /** The new owner has acknowledged (a settled heartbeat sent after `since` + margin). */
  acknowledged?: (h: Held<E>) => boolean;
  holdMs?: number;
}

export interface HandoverResult<E> {
  /** The VIPs still held (keep answering, do not announce). */
  held: Map<string, Held<E>>;
  /** When to look again (the earliest hold's end); undefined when nothing is held. */
  wakeAt: number | undefined;
}

/** The holds after one plan change. */
export function handover<E extends { ip: string }>(x: HandoverInput<E>): HandoverResult<E> {
  const holdMs = x.holdMs ?? HANDOVER_HOLD_MS;
  const owned = new Set(x.nextOwned.map((e) => e.ip));
  const out = new Map<string, Held<E>>();
  if (x.selfReady) {
    for (const [ip, h] of x.held) {
      const to = x.ownerOf(ip);
      if (owned.has(ip) || h.until <= x.now || to !== h.to) continue;
      if (x.acknowledged?.(h) === true) continue;
      out.set(ip, h);
    }
    for (const e of x.prevOwned) {
      if (owned.has(e.ip) || out.has(e.ip)) continue;
      const to = x.ownerOf(e.ip);
      if (to === undefined || to === x.self || holdMs <= 0) continue;
      out.set(e.ip, { entry: e, since: x.now, until: x.now + holdMs, to });
    }
  }
  let wakeAt: number | undefined;
  for (const h of out.values()) wakeAt = wakeAt === undefined ? h.until : Math.min(wakeAt, h.until);
  return { held: out, wakeAt };
}
