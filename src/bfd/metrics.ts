/**
 * Prometheus families for BFD, derived from `BfdManager.status()` at scrape time (pure). The
 * shape matches the API's `MetricFamily` (src/api/runtime.ts), so the composition root can return
 * `bfdMetricFamilies(bfd.status())` from `ApiRuntime.metrics()`. Names follow Prometheus rules:
 * `vipd_` prefix, base units (seconds), `_total` only on counters; sessions are labelled by their
 * key (the BGPPeer name), not by IP address.
 */

import type { BfdStatus } from "./manager.ts";

export interface BfdMetricFamily {
  name: string;
  help: string;
  type: "counter" | "gauge";
  samples: { labels?: Record<string, string>; value: number }[];
}

export function bfdMetricFamilies(st: BfdStatus): BfdMetricFamily[] {
  const per = (
    name: string,
    help: string,
    type: "counter" | "gauge",
    value: (s: BfdStatus["sessions"][number]) => number,
  ) => ({
    name,
    help,
    type,
    samples: st.sessions.map((s) => ({ labels: { session: s.key }, value: value(s) })),
  });
  return [
    per("vipd_bfd_session_up", "1 when the BFD session is Up", "gauge", (s) => (s.state === "Up" ? 1 : 0)),
    per(
      "vipd_bfd_session_detection_time_seconds",
      "Negotiated detection time (0 until the remote is heard)",
      "gauge",
      (s) => s.detectionTimeMs / 1000,
    ),
    per(
      "vipd_bfd_session_transmit_interval_seconds",
      "Negotiated transmit interval before jitter",
      "gauge",
      (s) => s.txIntervalMs / 1000,
    ),
    per("vipd_bfd_session_flaps_total", "Transitions of the session out of Up", "counter", (s) => s.flaps),
    per("vipd_bfd_packets_sent_total", "BFD Control packets sent", "counter", (s) => s.packetsSent),
    per(
      "vipd_bfd_packets_received_total",
      "BFD Control packets received for the session",
      "counter",
      (s) => s.packetsReceived,
    ),
    {
      name: "vipd_bfd_dropped_packets_total",
      help: "Received BFD packets discarded, by reason (RFC 5880 section 6.8.6 order)",
      type: "counter",
      samples: Object.entries(st.drops).map(([reason, value]) => ({ labels: { reason }, value })),
    },
    {
      name: "vipd_bfd_socket_errors_total",
      help: "Errors reported by BFD sockets (e.g. ECONNREFUSED from ICMP port unreachable), by code",
      type: "counter",
      samples: Object.entries(st.socketErrors).map(([code, value]) => ({ labels: { code }, value })),
    },
    {
      name: "vipd_bfd_timer_lateness_p99_seconds",
      help: "99th percentile of how late the BFD scheduler fired, over the last 4096 fires",
      type: "gauge",
      samples: [{ value: st.timer.latenessP99Ms / 1000 }],
    },
  ];
}
