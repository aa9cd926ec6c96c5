/**
 * Prometheus families for the XDP data path, from `XdpDriver.status()`: packets seen, requests
 * examined and replies sent per protocol, packets passed to the kernel per reason, takeover
 * announcements, entries and attachments. Pure: status in, families out (the shape of
 * `MetricFamily` in src/api/runtime.ts), so the API exports them without knowing the driver.
 */

import { COUNTERS, type CounterName } from "./layout.ts";

export interface XdpMetricFamily {
  name: string;
  help: string;
  type: "counter" | "gauge";
  samples: { labels?: Record<string, string>; value: number }[];
}

export interface XdpMetricsInput {
  counters: Record<CounterName | "announcements_sent" | "announcements_failed", bigint>;
  entries: number;
  attachments: { ifname: string; mode: string; error?: string }[];
}

/** The families; counters are summed over CPUs (and over interfaces: the program counts per node). */
export function xdpMetricFamilies(s: XdpMetricsInput): XdpMetricFamily[] {
  const c = s.counters;
  const n = (v: bigint) => Number(v);
  return [
    {
      name: "vipd_xdp_packets_total",
      help: "Frames the XDP responder examined",
      type: "counter",
      samples: [{ value: n(c.seen) }],
    },
    {
      name: "vipd_xdp_requests_total",
      help: "Well-formed ARP requests and Neighbor Solicitations examined",
      type: "counter",
      samples: [
        { labels: { protocol: "arp" }, value: n(c.arp_requests) },
        { labels: { protocol: "ndp" }, value: n(c.ns_requests) },
      ],
    },
    {
      name: "vipd_xdp_replies_total",
      help: "ARP replies and Neighbor Advertisements sent by the XDP responder",
      type: "counter",
      samples: [
        { labels: { protocol: "arp" }, value: n(c.arp_replies) },
        { labels: { protocol: "ndp" }, value: n(c.na_replies) },
      ],
    },
    {
      name: "vipd_xdp_passed_total",
      help: "Frames passed to the kernel untouched, by reason",
      type: "counter",
      samples: COUNTERS.filter((k) => k.startsWith("pass_")).map((k) => ({
        labels: { reason: k.slice("pass_".length) },
        value: n(c[k]),
      })),
    },
    {
      name: "vipd_xdp_announcements_total",
      help: "Gratuitous ARP and unsolicited Neighbor Advertisement frames, by result",
      type: "counter",
      samples: [
        { labels: { result: "sent" }, value: n(c.announcements_sent) },
        { labels: { result: "failed" }, value: n(c.announcements_failed) },
      ],
    },
    {
      name: "vipd_xdp_entries",
      help: "(interface, VIP) entries the XDP responder answers for",
      type: "gauge",
      samples: [{ value: s.entries }],
    },
    {
      name: "vipd_xdp_attached",
      help: "1 for each interface the responder is attached to, labelled with the mode; 0 when attaching failed",
      type: "gauge",
      samples: s.attachments.map((a) => ({
        labels: { interface: a.ifname, mode: a.error === undefined ? a.mode : "none" },
        value: a.error === undefined ? 1 : 0,
      })),
    },
  ];
}
