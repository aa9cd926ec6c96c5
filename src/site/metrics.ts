/**
 * The site channel's Prometheus families: consistency, generation, readiness, who allocates, the
 * messages taken, sent and refused (by reason), heals, re-addressed Services, writes and
 * persistence errors. Pure: from a SiteDriver's counters to families.
 */

import type { MetricFamily } from "../api/runtime.ts";
import { SITE_DROPS, type SiteDrop } from "./codec.ts";
import type { SiteState } from "./state.ts";
import type { SiteView } from "./view.ts";

export interface SiteMetricInputs {
  view: SiteView;
  counters: SiteState["counters"];
  self: string;
  ready: boolean;
  received: ReadonlyMap<string, number>;
  sent: ReadonlyMap<string, number>;
  drops: ReadonlyMap<SiteDrop | "BadFrame" | "QueueFull", number>;
  persistErrors: number;
}

export function siteMetrics(m: SiteMetricInputs): MetricFamily[] {
  const v = m.view;
  const c = m.counters;
  return [
    {
      name: "vipd_site_consistent",
      help: "1 when every alive site member holds the same generation and assignment table as this one",
      type: "gauge",
      samples: [{ value: v.consistent ? 1 : 0 }],
    },
    {
      name: "vipd_site_generation",
      help: "The site configuration generation this member holds (0: none yet)",
      type: "gauge",
      samples: [{ value: v.generation }],
    },
    {
      name: "vipd_site_ready",
      help: "1 when this member holds the site's table (or knows it is alone) and may announce",
      type: "gauge",
      samples: [{ value: m.ready ? 1 : 0 }],
    },
    {
      name: "vipd_site_allocator",
      help: "1 when this member allocates for the site",
      type: "gauge",
      samples: [{ value: v.allocator === m.self ? 1 : 0 }],
    },
    {
      name: "vipd_site_messages_received_total",
      help: "Authenticated site messages taken, by type",
      type: "counter",
      samples: [...m.received].map(([type, value]) => ({ labels: { type }, value })),
    },
    {
      name: "vipd_site_messages_sent_total",
      help: "Site messages written to a connection, by type",
      type: "counter",
      samples: [...m.sent].map(([type, value]) => ({ labels: { type }, value })),
    },
    {
      name: "vipd_site_messages_dropped_total",
      help: "Site messages refused or not sent, by reason (BadMac: forged or wrong key; Replay, StaleNonce: replayed)",
      type: "counter",
      samples: [...SITE_DROPS, "BadFrame", "QueueFull"].map((reason) => ({
        labels: { reason },
        value: m.drops.get(reason as SiteDrop) ?? 0,
      })),
    },
    {
      name: "vipd_site_heals_total",
      help: "Partition heals in which this member's snapshot lost to another",
      type: "counter",
      samples: [{ value: c.heals }],
    },
    {
      name: "vipd_site_readdressed_total",
      help: "Services whose addresses changed because this member's snapshot lost a partition heal",
      type: "counter",
      samples: [{ value: c.readdressed }],
    },
    {
      name: "vipd_site_writes_total",
      help: "Site configuration writes this member handled, by outcome (no_quorum: refused without a majority of the site alive)",
      type: "counter",
      samples: [
        { labels: { outcome: "committed" }, value: c.committed },
        { labels: { outcome: "stale" }, value: c.stale },
        { labels: { outcome: "refused" }, value: c.refused },
        { labels: { outcome: "no_quorum" }, value: c.noQuorum },
      ],
    },
    {
      name: "vipd_site_persist_errors_total",
      help: "Site snapshots that could not be written to the state dir",
      type: "counter",
      samples: [{ value: m.persistErrors }],
    },
  ];
}
