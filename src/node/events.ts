/**
 * The node's events on the event hub (src/events/hub.ts, served as `GET /api/v1/events`): what
 * the plan applier and the spine report (NodeEvent, src/node/applier.ts) as hub events —
 * `ownership` (a layer-2 VIP gained, lost or moved, with the nodes), `assignment` (a Service's
 * addresses changed), `config` (a configuration generation applied). A mass change (10,000
 * Services assigned at start) becomes one summary event with counts, so watchers are not cut off.
 *
 * Keeps only the last assignments (to publish changes, not the whole list every time).
 */

import type { EventHub } from "../events/hub.ts";
import { sameEnds } from "../util/same-ends.ts";
import type { NodeEvent } from "./applier.ts";

/** More Service (or VIP owner) changes than this at once are published as one summary event. */
export const SUMMARY_OVER = 64;

/** A Service's assignment as the events carry it (the allocator's own objects). */
type Service = { readonly key: string; readonly ips: readonly string[] };

const sameIps = (a: readonly string[], b: readonly string[]): boolean =>
  a === b || (a.length === b.length && a.every((ip, i) => ip === b[i]));

export class NodeEventPublisher {
  /** Each key of the last call's list with its addresses (the last of a key listed twice). */
  private assigned = new Map<string, readonly string[]>();
  /** The last call's list (a copy of it). */
  private last: readonly Service[] = [];
  /** Whether each key is in `last` once (the shortcut of `changes` needs it). */
  private unique = true;

  constructor(private readonly hub: EventHub) {}

  /** The callback to hand the applier / Daemon / speaker as `onEvent`. */
  readonly onEvent = (e: NodeEvent): void => {
    switch (e.type) {
      case "owners":
        if (e.changes.length > SUMMARY_OVER) {
          const count = (k: string) => e.changes.filter((c) => c.change === k).length;
          this.hub.publish("ownership", {
            summary: true,
            acquired: count("acquired"),
            released: count("released"),
            moved: count("moved"),
          });
        } else
          for (const c of e.changes)
            this.hub.publish("ownership", { vip: c.ip, from: c.from, to: c.to, reason: c.change });
        return;
      case "config":
        this.hub.publish("config", { generation: e.generation, result: "applied", reason: e.reason });
        return;
      case "assignments":
        this.assignments(e.services);
        return;
      case "applied":
        return;
    }
  };

  private assignments(services: readonly { key: string; ips: readonly string[] }[]): void {
    const changed = this.changes(services);
    if (changed.length > SUMMARY_OVER) {
      this.hub.publish("assignment", {
        summary: true,
        changed: changed.length,
        services: this.assigned.size,
      });
      return;
    }
    for (const c of changed)
      this.hub.publish("assignment", {
        service: c.service,
        addresses: c.addresses,
        ...(c.addresses.length === 0 ? { reason: "released" } : {}),
      });
  }

  /**
   * The Services whose addresses changed since the last call (in the order of `services`, then
   * the released ones in the order of the last call's), and `assigned` made the map of `services`.
   * The allocator hands on the same assignment objects while they do not change: those at the
   * same place from either end of both lists are passed over, and only what lies between is
   * compared (a one-Service reload: one entry of 10,000). The shortcut needs each key once in
   * both lists; otherwise every entry is compared, as the map of all of them.
   */
  private changes(services: readonly Service[]): { service: string; addresses: string[] }[] {
    const prev = this.last;
    const m = prev.length;
    const n = services.length;
    // The list as it was given (a caller's array is not relied on to stay as it is).
    this.last = services.slice();
    if (this.unique) {
      const { head: p, tail: q } = sameEnds(prev, services);
      const was = prev.slice(p, m - q);
      const now = services.slice(p, n - q);
      const wasKeys = new Set(was.map((s) => s.key));
      const nowKeys = new Set<string>();
      let unique = true;
      for (const s of now) {
        // Twice in the new list, or kept at either end under the same key.
        if (nowKeys.has(s.key) || (this.assigned.has(s.key) && !wasKeys.has(s.key))) {
          unique = false;
          break;
        }
        nowKeys.add(s.key);
      }
      if (unique) {
        const changed: { service: string; addresses: string[] }[] = [];
        for (const s of now) {
          const was = this.assigned.get(s.key);
          if (was === undefined || !sameIps(was, s.ips))
            changed.push({ service: s.key, addresses: [...s.ips] });
        }
        for (const s of was) if (!nowKeys.has(s.key)) changed.push({ service: s.key, addresses: [] });
        for (const s of was) this.assigned.delete(s.key);
        for (const s of now) this.assigned.set(s.key, s.ips);
        return changed;
      }
    }
    // The assignments' own address arrays (shared, not copied or joined: 10,000 of them at a start).
    const next = new Map(services.map((s) => [s.key, s.ips]));
    const changed: { service: string; addresses: string[] }[] = [];
    for (const [key, ips] of next) {
      const was = this.assigned.get(key);
      if (was === undefined || !sameIps(was, ips)) changed.push({ service: key, addresses: [...ips] });
    }
    // Released: in the order of the last call's list (the order its map was made in).
    const seen = new Set<string>();
    for (const s of prev)
      if (!next.has(s.key) && !seen.has(s.key)) {
        seen.add(s.key);
        changed.push({ service: s.key, addresses: [] });
      }
    this.assigned = next;
    this.unique = next.size === n;
    return changed;
  }
}
