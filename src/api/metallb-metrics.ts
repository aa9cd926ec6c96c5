/**
 * MetalLB's Prometheus series (`metallb_*`), derived at scrape time from the same state the
 * `vipd_*` series come from: the pool usage the API already reads (`ApiRuntime.pools()`), the
 * runtime's own families (BGP, BFD, XDP, configuration) and the status summary. No second
 * bookkeeping: every value here is a function of those inputs, so both sets always agree.
 *
 * The point is compatibility: MetalLB users' Grafana dashboards and PrometheusRules keep working.
 * So the names, types, label names and help texts are MetalLB's, including where they break
 * Prometheus conventions (gauges named `_total`, counters without `_total`, `_bool` gauges).
 * vipd's own `vipd_*` series keep the conventions. MetalLB's reference: its docs page "Prometheus
 * metrics" and internal/{allocator,bgp,layer2}/stats.go, internal/k8s/..., FRR's BFD collector.
 *
 * What vipd can back, and how:
 * - `metallb_allocator_addresses_in_use_total{pool}` / `_addresses_total{pool}`: assigned, and
 *   assigned + available, summed over the pool's families (MetalLB counts both families together).
 * - `metallb_k8s_client_config_loaded_bool`: the configuration was loaded (status.ready);
 *   `metallb_k8s_client_config_stale_bool`: vipd runs on its last good configuration because the
 *   latest did not load (`vipd_config_stale`, or in appliance mode `vipd_config_last_reload_successful == 0`).
 * - `metallb_bgp_session_up`, `_updates_total` (UPDATEs sent), `_updates_total_received`,
 *   `_announced_prefixes_total`, labelled `peer` = the peer's address, as MetalLB's FRR mode does.
 * - `metallb_bfd_session_up`, `_control_packet_input/_output`, `_session_down_events` (flaps),
 *   `_session_up_events` (entries into Up = exits + 1 while Up: sessions start Down), and the
 *   echo counters, always 0 (vipd sends no echo packets), labelled `peer` = the peer's address.
 * - `metallb_layer2_requests_received`, `_responses_sent`, `_gratuitous_sent`: from the XDP
 *   responder's counters. MetalLB labels these by `ip`; vipd's data path counts per node, not per
 *   VIP (a per-VIP counter would cost in the hot path), so these series carry no `ip` label:
 *   `sum(...)` queries work, per-IP breakdowns show one series per node.
 */

import type { BgpPeerView, MetricFamily, PoolView, StatusSummary } from "./runtime.ts";

/** A `metallb_*` family: MetricFamily's shape, without vipd's naming rules. */
export interface MetallbFamily {
  name: string;
  help: string;
  type: "counter" | "gauge";
  samples: { labels?: Record<string, string>; value: number }[];
}

export interface MetallbInput {
  status: Pick<StatusSummary, "ready">;
  pools: readonly PoolView[];
  /** For the `peer` label: BGPPeer name → address. */
  bgpPeers: readonly Pick<BgpPeerView, "name" | "address">[];
  /** The runtime's `vipd_*` families, as exported beside these. */
  families: readonly MetricFamily[];
}

/** Every name this module may export (for tests and the README). */
export const METALLB_METRIC_NAMES = [
  "metallb_allocator_addresses_in_use_total",
  "metallb_allocator_addresses_total",
  "metallb_k8s_client_config_loaded_bool",
  "metallb_k8s_client_config_stale_bool",
  "metallb_bgp_session_up",
  "metallb_bgp_updates_total",
  "metallb_bgp_updates_total_received",
  "metallb_bgp_announced_prefixes_total",
  "metallb_bfd_session_up",
  "metallb_bfd_control_packet_input",
  "metallb_bfd_control_packet_output",
  "metallb_bfd_echo_packet_input",
  "metallb_bfd_echo_packet_output",
  "metallb_bfd_session_up_events",
  "metallb_bfd_session_down_events",
  "metallb_layer2_requests_received",
  "metallb_layer2_responses_sent",
  "metallb_layer2_gratuitous_sent",
] as const;

type Sample = MetricFamily["samples"][number];

/** The samples of a family by name ([] when the runtime does not export it). */
function samplesOf(families: readonly MetricFamily[], name: string): Sample[] {
  return families.find((f) => f.name === name)?.samples ?? [];
}

function sum(samples: readonly Sample[], where: (l: Record<string, string>) => boolean = () => true): number {
  let n = 0;
  for (const s of samples) if (where(s.labels ?? {})) n += s.value;
  return n;
}

export function metallbFamilies(input: MetallbInput): MetallbFamily[] {
  const fams = input.families;
  const out: MetallbFamily[] = [];
  const gauge = (name: string, help: string, samples: Sample[]) =>
    out.push({ name, help, type: "gauge", samples });
  const counter = (name: string, help: string, samples: Sample[]) =>
    out.push({ name, help, type: "counter", samples });

  // Allocator: per pool, both families together.
  const big = (s: string) => Number(BigInt(s));
  gauge(
    "metallb_allocator_addresses_in_use_total",
    "Number of IP addresses in use, per pool",
    input.pools.map((p) => ({
      labels: { pool: p.name },
      value: p.families.reduce((n, f) => n + big(f.assigned), 0),
    })),
  );
  gauge(
    "metallb_allocator_addresses_total",
    "Number of usable IP addresses, per pool",
    input.pools.map((p) => ({
      labels: { pool: p.name },
      value: p.families.reduce((n, f) => n + big(f.assigned) + big(f.available), 0),
    })),
  );

  // Configuration state.
  const staleK8s = samplesOf(fams, "vipd_config_stale");
  const lastReload = samplesOf(fams, "vipd_config_last_reload_successful");
  const stale =
    staleK8s.length > 0
      ? sum(staleK8s) > 0
      : lastReload.length > 0
        ? lastReload.some((s) => s.value === 0)
        : false;
  gauge(
    "metallb_k8s_client_config_loaded_bool",
    "1 if the MetalLB configuration was successfully loaded at least once",
    [{ value: input.status.ready ? 1 : 0 }],
  );
  gauge(
    "metallb_k8s_client_config_stale_bool",
    "1 if running on a stale configuration, because the latest config failed to load",
    [{ value: stale ? 1 : 0 }],
  );

  // BGP and BFD sessions are keyed by BGPPeer name in vipd; MetalLB labels them by address.
  const address = new Map<string, string>();
  for (const p of input.bgpPeers) if (p.name !== undefined) address.set(p.name, p.address);
  const byPeer = (name: string, key: "peer" | "session"): Sample[] =>
    samplesOf(fams, name).map((s) => {
      const id = s.labels?.[key] ?? "";
      return { labels: { peer: address.get(id) ?? id }, value: s.value };
    });
  gauge(
    "metallb_bgp_session_up",
    "BGP session state (1 is up, 0 is down)",
    byPeer("vipd_bgp_session_up", "peer"),
  );
  counter(
    "metallb_bgp_updates_total",
    "Number of BGP UPDATE messages sent",
    byPeer("vipd_bgp_updates_sent_total", "peer"),
  );
  counter(
    "metallb_bgp_updates_total_received",
    "Number of BGP UPDATE messages received",
    byPeer("vipd_bgp_updates_received_total", "peer"),
  );
  gauge(
    "metallb_bgp_announced_prefixes_total",
    "Number of prefixes currently being advertised on the BGP session",
    byPeer("vipd_bgp_prefixes_sent", "peer"),
  );

  const bfdUp = byPeer("vipd_bfd_session_up", "session");
  const flaps = byPeer("vipd_bfd_session_flaps_total", "session");
  gauge("metallb_bfd_session_up", "BFD session state (1 is up, 0 is down)", bfdUp);
  counter(
    "metallb_bfd_control_packet_input",
    "Number of received BFD control packets",
    byPeer("vipd_bfd_packets_received_total", "session"),
  );
  counter(
    "metallb_bfd_control_packet_output",
    "Number of sent BFD control packets",
    byPeer("vipd_bfd_packets_sent_total", "session"),
  );
  const zero = bfdUp.map((s) => ({ labels: { ...s.labels }, value: 0 }));
  counter("metallb_bfd_echo_packet_input", "Number of received BFD echo packets", zero);
  counter("metallb_bfd_echo_packet_output", "Number of sent BFD echo packets", zero);
  counter(
    "metallb_bfd_session_up_events",
    "Number of BFD session up events",
    flaps.map((s) => ({
      labels: { ...s.labels },
      value: s.value + (bfdUp.some((u) => u.labels?.peer === s.labels?.peer && u.value === 1) ? 1 : 0),
    })),
  );
  counter("metallb_bfd_session_down_events", "Number of BFD session down events", flaps);

  // Layer 2, from the XDP responder (per node: see the module comment). Only when it runs.
  const requests = samplesOf(fams, "vipd_xdp_requests_total");
  if (requests.length > 0) {
    const notOwned = sum(samplesOf(fams, "vipd_xdp_passed_total"), (l) => l.reason === "not_owned");
    counter("metallb_layer2_requests_received", "Number of layer2 requests received for owned IPs", [
      { value: Math.max(0, sum(requests) - notOwned) },
    ]);
    counter(
      "metallb_layer2_responses_sent",
      "Number of layer2 responses sent for owned IPs in response to requests",
      [{ value: sum(samplesOf(fams, "vipd_xdp_replies_total")) }],
    );
    counter(
      "metallb_layer2_gratuitous_sent",
      "Number of gratuitous layer2 packets sent for owned IPs as a result of failovers",
      [{ value: sum(samplesOf(fams, "vipd_xdp_announcements_total"), (l) => l.result === "sent") }],
    );
  }
  return out;
}
