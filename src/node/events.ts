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
import type { NodeEvent } from "./applier.ts";

/** More Service (or VIP owner) changes than this at once are published as one summary event. */
export const SUMMARY_OVER = 64;

export class NodeEventPublisher {
  private assigned = new Map<string, readonly string[]>();

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

  private assignments(services: { key: string; ips: readonly string[] }[]): void {
    // The assignments' own address arrays (shared, not copied or joined: 10,000 of them at a start).
    const next = new Map(services.map((s) => [s.key, s.ips]));
    const changed: { service: string; addresses: string[] }[] = [];
    for (const [key, ips] of next) {
      const was = this.assigned.get(key);
      if (was === undefined || was.length !== ips.length || was.some((ip, i) => ip !== ips[i]))
        changed.push({ service: key, addresses: [...ips] });
    }
    for (const key of this.assigned.keys()) if (!next.has(key)) changed.push({ service: key, addresses: [] });
    this.assigned = next;
    if (changed.length > SUMMARY_OVER) {
      this.hub.publish("assignment", { summary: true, changed: changed.length, services: next.size });
      return;
    }
    for (const c of changed)
      this.hub.publish("assignment", {
        service: c.service,
        addresses: c.addresses,
        ...(c.addresses.length === 0 ? { reason: "released" } : {}),
      });
  }
}
