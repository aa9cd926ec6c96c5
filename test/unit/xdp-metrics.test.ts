/** The XDP metric families follow the project's Prometheus rules and carry the counters. */

import { expect, test } from "bun:test";
import { familyProblem } from "../../src/api/metrics.ts";
import { COUNTERS, type CounterName } from "../../src/xdp/layout.ts";
import { xdpMetricFamilies } from "../../src/xdp/metrics.ts";

test("families: vipd_ names, _total only on counters, every pass reason labelled", () => {
  const counters = Object.fromEntries(
    [...COUNTERS, "announcements_sent", "announcements_failed"].map((k, i) => [k, BigInt(i)]),
  ) as Record<CounterName | "announcements_sent" | "announcements_failed", bigint>;
  const fams = xdpMetricFamilies({
    counters,
    entries: 3,
    attachments: [
      { ifname: "eth0", mode: "native" },
      { ifname: "br0", mode: "generic", error: "another XDP program is attached" },
    ],
  });
  for (const f of fams) {
    expect(familyProblem(f, new Set())).toBeNull(); // what /metrics accepts
    expect(f.name).toMatch(/^vipd_xdp_[a-z_]+$/);
    expect(f.name.endsWith("_total")).toBe(f.type === "counter");
  }
  const passed = fams.find((f) => f.name === "vipd_xdp_passed_total")!;
  expect(passed.samples.map((s) => s.labels?.reason)).toEqual(
    COUNTERS.filter((k) => k.startsWith("pass_")).map((k) => k.slice(5)),
  );
  expect(passed.samples.find((s) => s.labels?.reason === "stale")?.value).toBe(
    COUNTERS.indexOf("pass_stale"),
  );
  expect(fams.find((f) => f.name === "vipd_xdp_replies_total")!.samples).toEqual([
    { labels: { protocol: "arp" }, value: 2 },
    { labels: { protocol: "ndp" }, value: 4 },
  ]);
  expect(fams.find((f) => f.name === "vipd_xdp_attached")!.samples).toEqual([
    { labels: { interface: "eth0", mode: "native" }, value: 1 },
    { labels: { interface: "br0", mode: "none" }, value: 0 },
  ]);
});
