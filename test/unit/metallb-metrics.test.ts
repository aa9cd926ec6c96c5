/**
 * MetalLB's series come from the same inputs as vipd's: the story of one node's scrape, checked
 * against the `vipd_*` values it is derived from, and through the real /metrics route.
 */

import { describe, expect, test } from "bun:test";
import { createApp } from "../../src/api/app.ts";
import { METALLB_METRIC_NAMES, metallbFamilies } from "../../src/api/metallb-metrics.ts";
import type { MetricFamily } from "../../src/api/runtime.ts";
import { daemonMetrics } from "../../src/appliance/metrics.ts";
import type { BfdStatus } from "../../src/bfd/manager.ts";
import { bfdMetricFamilies } from "../../src/bfd/metrics.ts";
import { createLogger } from "../../src/util/log.ts";
import { COUNTERS, type CounterName } from "../../src/xdp/layout.ts";
import { xdpMetricFamilies } from "../../src/xdp/metrics.ts";
import { FakeRuntime } from "./api-runtime-fake.ts";

function xdp(values: Partial<Record<CounterName | "announcements_sent" | "announcements_failed", number>>) {
  const counters = Object.fromEntries(
    [...COUNTERS, "announcements_sent", "announcements_failed"].map((k) => [
      k,
      BigInt(values[k as CounterName] ?? 0),
    ]),
  ) as Record<CounterName | "announcements_sent" | "announcements_failed", bigint>;
  return xdpMetricFamilies({ counters, entries: 1, attachments: [{ ifname: "eth0", mode: "native" }] });
}

function bfd(sessions: { key: string; state: "Up" | "Down"; flaps: number; sent: number; recv: number }[]) {
  return bfdMetricFamilies({
    sessions: sessions.map((s) => ({
      key: s.key,
      state: s.state,
      flaps: s.flaps,
      packetsSent: s.sent,
      packetsReceived: s.recv,
      detectionTimeMs: 150,
      txIntervalMs: 50,
    })),
    drops: {},
    socketErrors: {},
    timer: { latenessP99Ms: 0 },
  } as unknown as BfdStatus);
}

// The BGP driver's families (src/drivers/bgp.ts), as it would report two peers.
const BGP: MetricFamily[] = [
  {
    name: "vipd_bgp_session_up",
    help: "h",
    type: "gauge",
    samples: [
      { labels: { peer: "tor-a" }, value: 1 },
      { labels: { peer: "tor-b" }, value: 0 },
    ],
  },
  {
    name: "vipd_bgp_prefixes_sent",
    help: "h",
    type: "gauge",
    samples: [
      { labels: { peer: "tor-a" }, value: 3 },
      { labels: { peer: "tor-b" }, value: 0 },
    ],
  },
  {
    name: "vipd_bgp_updates_sent_total",
    help: "h",
    type: "counter",
    samples: [
      { labels: { peer: "tor-a" }, value: 7 },
      { labels: { peer: "tor-b" }, value: 0 },
    ],
  },
  {
    name: "vipd_bgp_updates_received_total",
    help: "h",
    type: "counter",
    samples: [
      { labels: { peer: "tor-a" }, value: 2 },
      { labels: { peer: "tor-b" }, value: 0 },
    ],
  },
];
const PEERS = [
  { name: "tor-a", address: "10.0.0.1" },
  { name: "tor-b", address: "10.0.0.2" },
];

const byName = (fams: { name: string; samples: unknown[] }[], n: string) =>
  fams.find((f) => f.name === n)?.samples;

describe("metallbFamilies", () => {
  test("pools: in use and usable addresses summed over both families, per pool", () => {
    const fams = metallbFamilies({
      status: { ready: true },
      pools: [
        {
          name: "lan",
          autoAssign: true,
          families: [
            { family: "IPv4", assigned: "3", available: "253" },
            { family: "IPv6", assigned: "1", available: "15" },
          ],
        },
        { name: "empty", autoAssign: false, families: [] },
      ],
      bgpPeers: [],
      families: [],
    });
    expect(byName(fams, "metallb_allocator_addresses_in_use_total")).toEqual([
      { labels: { pool: "lan" }, value: 4 },
      { labels: { pool: "empty" }, value: 0 },
    ]);
    expect(byName(fams, "metallb_allocator_addresses_total")).toEqual([
      { labels: { pool: "lan" }, value: 272 },
      { labels: { pool: "empty" }, value: 0 },
    ]);
  });

  test("BGP: labelled by the peer's address; a down session reads 0", () => {
    const fams = metallbFamilies({ status: { ready: true }, pools: [], bgpPeers: PEERS, families: BGP });
    expect(byName(fams, "metallb_bgp_session_up")).toEqual([
      { labels: { peer: "10.0.0.1" }, value: 1 },
      { labels: { peer: "10.0.0.2" }, value: 0 },
    ]);
    expect(byName(fams, "metallb_bgp_announced_prefixes_total")?.[0]).toEqual({
      labels: { peer: "10.0.0.1" },
      value: 3,
    });
    expect(byName(fams, "metallb_bgp_updates_total")?.[0]).toEqual({
      labels: { peer: "10.0.0.1" },
      value: 7,
    });
    expect(byName(fams, "metallb_bgp_updates_total_received")?.[0]).toEqual({
      labels: { peer: "10.0.0.1" },
      value: 2,
    });
    // A peer the BGP view does not know (yet) keeps its name rather than vanishing.
    const unknown = metallbFamilies({ status: { ready: true }, pools: [], bgpPeers: [], families: BGP });
    expect(byName(unknown, "metallb_bgp_session_up")?.[1]).toEqual({ labels: { peer: "tor-b" }, value: 0 });
  });

  test("BFD: up, packets, up/down events (a session that flapped twice and is Up again entered Up 3 times)", () => {
    const fams = metallbFamilies({
      status: { ready: true },
      pools: [],
      bgpPeers: PEERS,
      families: bfd([
        { key: "tor-a", state: "Up", flaps: 2, sent: 100, recv: 90 },
        { key: "tor-b", state: "Down", flaps: 1, sent: 5, recv: 0 },
      ]),
    });
    expect(byName(fams, "metallb_bfd_session_up")).toEqual([
      { labels: { peer: "10.0.0.1" }, value: 1 },
      { labels: { peer: "10.0.0.2" }, value: 0 },
    ]);
    expect(byName(fams, "metallb_bfd_session_up_events")).toEqual([
      { labels: { peer: "10.0.0.1" }, value: 3 },
      { labels: { peer: "10.0.0.2" }, value: 1 },
    ]);
    expect(byName(fams, "metallb_bfd_session_down_events")).toEqual([
      { labels: { peer: "10.0.0.1" }, value: 2 },
      { labels: { peer: "10.0.0.2" }, value: 1 },
    ]);
    expect(byName(fams, "metallb_bfd_control_packet_output")?.[0]).toEqual({
      labels: { peer: "10.0.0.1" },
      value: 100,
    });
    expect(byName(fams, "metallb_bfd_control_packet_input")?.[0]).toEqual({
      labels: { peer: "10.0.0.1" },
      value: 90,
    });
    expect(byName(fams, "metallb_bfd_echo_packet_output")?.[0]).toEqual({
      labels: { peer: "10.0.0.1" },
      value: 0,
    });
  });

  test("layer 2: requests for owned VIPs (not the others), replies, gratuitous frames sent", () => {
    const fams = metallbFamilies({
      status: { ready: true },
      pools: [],
      bgpPeers: [],
      families: xdp({
        arp_requests: 10,
        ns_requests: 4,
        pass_not_owned: 5,
        pass_stale: 1,
        arp_replies: 6,
        na_replies: 2,
        announcements_sent: 3,
        announcements_failed: 9,
      }),
    });
    expect(byName(fams, "metallb_layer2_requests_received")).toEqual([{ value: 9 }]);
    expect(byName(fams, "metallb_layer2_responses_sent")).toEqual([{ value: 8 }]);
    expect(byName(fams, "metallb_layer2_gratuitous_sent")).toEqual([{ value: 3 }]);
    // No XDP responder on the node: no layer-2 series at all, rather than zeros.
    const none = metallbFamilies({ status: { ready: true }, pools: [], bgpPeers: [], families: [] });
    expect(byName(none, "metallb_layer2_requests_received")).toBeUndefined();
  });

  test("configuration: loaded follows status.ready; stale follows vipd_config_stale, else the last reload", () => {
    const cfg = (ready: boolean, families: MetricFamily[]) => {
      const f = metallbFamilies({ status: { ready }, pools: [], bgpPeers: [], families });
      return [
        byName(f, "metallb_k8s_client_config_loaded_bool"),
        byName(f, "metallb_k8s_client_config_stale_bool"),
      ];
    };
    const owners = { acquired: 0, released: 0, moved: 0 };
    const reloads = { applied: 1, unchanged: 0, rejected: 1 };
    expect(cfg(false, [])).toEqual([[{ value: 0 }], [{ value: 0 }]]);
    expect(cfg(true, daemonMetrics(reloads, true, owners))).toEqual([[{ value: 1 }], [{ value: 0 }]]);
    expect(cfg(true, daemonMetrics(reloads, false, owners))).toEqual([[{ value: 1 }], [{ value: 1 }]]);
    const stale = (v: number): MetricFamily => ({
      name: "vipd_config_stale",
      help: "h",
      type: "gauge",
      samples: [{ value: v }],
    });
    expect(cfg(true, [stale(1)])).toEqual([[{ value: 1 }], [{ value: 1 }]]);
    expect(cfg(true, [stale(0)])).toEqual([[{ value: 1 }], [{ value: 0 }]]);
  });

  test("names and types are MetalLB's, and only from the documented list", () => {
    const fams = metallbFamilies({
      status: { ready: true },
      pools: [],
      bgpPeers: PEERS,
      families: [...BGP, ...bfd([{ key: "tor-a", state: "Up", flaps: 0, sent: 1, recv: 1 }]), ...xdp({})],
    });
    expect(fams.map((f) => f.name).sort()).toEqual([...METALLB_METRIC_NAMES].sort());
    const type = (n: string) => fams.find((f) => f.name === n)?.type;
    // MetalLB's own types, conventions or not: a gauge named _total, counters without it.
    expect(type("metallb_allocator_addresses_in_use_total")).toBe("gauge");
    expect(type("metallb_bgp_announced_prefixes_total")).toBe("gauge");
    expect(type("metallb_bgp_updates_total")).toBe("counter");
    expect(type("metallb_layer2_requests_received")).toBe("counter");
    expect(type("metallb_bfd_control_packet_input")).toBe("counter");
  });
});

describe("/metrics", () => {
  test("exports metallb_* beside vipd_*, from the same pool usage and runtime families", async () => {
    const rt = new FakeRuntime();
    rt.serviceList = [
      { namespace: "default", name: "web", ips: ["192.168.10.5"], pool: "lan", warnings: [] },
    ];
    rt.bgpList = [
      {
        name: "tor-a",
        address: "10.0.0.1",
        asn: 64512,
        state: "Established",
        prefixesSent: 3,
        prefixesReceived: 0,
      },
      {
        name: "tor-b",
        address: "10.0.0.2",
        asn: 64512,
        state: "Active",
        prefixesSent: 0,
        prefixesReceived: 0,
      },
    ];
    rt.metricFamilies = [...BGP];
    const app = createApp(rt, {
      tokens: [],
      metricsOpen: true,
      log: createLogger("test", { level: "error" }),
    });
    const text = await (await app.request("/metrics")).text();
    const value = (series: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    expect(text).toContain("# TYPE metallb_allocator_addresses_in_use_total gauge");
    expect(text).toContain("# TYPE metallb_bgp_updates_total counter");
    const inUse = value('metallb_allocator_addresses_in_use_total{pool="lan"}');
    const v4 = value('vipd_pool_addresses_assigned{pool="lan",family="IPv4"}');
    const v6 = value('vipd_pool_addresses_assigned{pool="lan",family="IPv6"}');
    expect(inUse).toBe((v4 ?? Number.NaN) + (v6 ?? Number.NaN));
    expect(inUse).toBe(1);
    expect(value('metallb_bgp_session_up{peer="10.0.0.2"}')).toBe(0);
    expect(value('vipd_bgp_session_up{peer="tor-b"}')).toBe(0);
    expect(value("metallb_k8s_client_config_loaded_bool")).toBe(1);
    rt.configLoaded = false;
    const again = await (await app.request("/metrics")).text();
    expect(again).toContain("metallb_k8s_client_config_loaded_bool 0");
  });
});
