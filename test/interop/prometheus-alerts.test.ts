/**
 * MetalLB's BGP alert, end to end with a real Prometheus (Debian's `prometheus` 2.42).
 *
 * Story: `vipd run` peers with BIRD 2 in a router namespace (run-router.ts). A Prometheus of our
 * own, in vipd's namespace (its own data directory, loopback, 1 s scrape and rule evaluation),
 * scrapes vipd's /metrics and loads deploy/monitoring/rules.yaml as shipped. While the session is
 * Established Prometheus reads `metallb_bgp_session_up{peer="10.88.1.1"} 1` and the pool's
 * `metallb_allocator_*` series, and no alert is active. BIRD then shuts the session down
 * (`birdc disable`): the alert goes pending at once and fires once the rule's `for: 1m` has
 * passed, as Prometheus's /api/v1/alerts reports. When BIRD enables the session again, the
 * alert resolves. Needs root (namespaces); fails when prometheus or BIRD is missing.
 */

import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { RunAndRouter, until } from "./run-router.ts";

setDefaultTimeout(240_000);

const RULES = join(import.meta.dir, "../../deploy/monitoring/rules.yaml");
const PROM = "127.0.0.1:9090";

const CONFIG = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: site }
spec: { addresses: [10.88.0.100/30] }
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: { name: site }
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: router }
spec: { myASN: 64512, peerASN: 64500, peerAddress: 10.88.1.1, holdTime: 9s, connectTime: 1s }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { type: LoadBalancer, ports: [{ port: 80 }] }
`;

const BIRD = `router id 10.88.1.1;
protocol device { }
protocol bgp vipd {
  local 10.88.1.1 as 64500; neighbor 10.88.1.2 as 64512;
  ipv4 { import all; export none; };
  hold time 9; connect retry time 1; error wait time 1,2;
}
`;

const PROMETHEUS_YML = `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - ${RULES}
scrape_configs:
  - job_name: vipd
    static_configs:
      - targets: ["127.0.0.1:7473"]
`;

type Alert = { labels: Record<string, string>; state: "pending" | "firing"; activeAt: string };

let t: RunAndRouter;

/** GET on our Prometheus's HTTP API (inside vipd's namespace); undefined until it answers. */
async function prom<T>(path: string): Promise<T | undefined> {
  const r = await t.lab.run("node", ["curl", "-sf", "--max-time", "2", `http://${PROM}${path}`], {
    allowFail: true,
  });
  if (r.code !== 0) return undefined;
  const body = JSON.parse(r.stdout) as { status: string; data: T };
  return body.status === "success" ? body.data : undefined;
}

async function query(q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  return (
    (await prom<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
      `/api/v1/query?query=${encodeURIComponent(q)}`,
    )) ?? { result: [] }
  ).result;
}

async function bgpAlerts(): Promise<Alert[]> {
  const data = await prom<{ alerts: Alert[] }>("/api/v1/alerts");
  return (data?.alerts ?? []).filter((a) => a.labels.alertname === "MetalLBBGPSessionDown");
}

async function birdc(...cmd: string[]): Promise<string> {
  return (await t.lab.run("router", ["birdc", "-s", join(t.dir, "bird.ctl"), ...cmd])).stdout;
}

beforeAll(async () => {
  t = await RunAndRouter.start("promal", { "site.yaml": CONFIG }, BIRD);
  await until("BGP Established", async () => (await t.bgpState()) === "Established");
  writeFileSync(join(t.dir, "prometheus.yml"), PROMETHEUS_YML);
  t.lab.spawn(
    "node",
    [
      "prometheus",
      `--config.file=${join(t.dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(t.dir, "prometheus-data")}`,
      `--web.listen-address=${PROM}`,
    ],
    { stderr: "ignore" },
  );
  await until(
    "Prometheus ready",
    async () => (await prom<unknown>("/api/v1/status/buildinfo")) !== undefined,
    30_000,
  );
});

afterAll(async () => {
  await t?.destroy();
});

test("Prometheus scrapes MetalLB's series from vipd, and the BGP alert fires after `for` when the session goes down", async () => {
  // Up: the compatibility series are scraped, with MetalLB's labels; nothing alerts.
  await until(
    "Prometheus to see the session up",
    async () => (await query('metallb_bgp_session_up{job="vipd",peer="10.88.1.1"} == 1')).length === 1,
    30_000,
  );
  expect((await query('metallb_allocator_addresses_in_use_total{pool="site"}'))[0]?.value[1]).toBe("1");
  expect((await query('metallb_allocator_addresses_total{pool="site"}'))[0]?.value[1]).toBe("4");
  expect((await query('metallb_bgp_announced_prefixes_total{peer="10.88.1.1"}'))[0]?.value[1]).toBe("1");
  expect((await query("metallb_k8s_client_config_loaded_bool"))[0]?.value[1]).toBe("1");
  // The rules were loaded as shipped (all seven), and the BGP one is quiet.
  const groups = await prom<{ groups: { rules: { name: string; health: string }[] }[] }>("/api/v1/rules");
  const loaded = groups?.groups.flatMap((g) => g.rules) ?? [];
  expect(loaded.map((r) => r.name)).toContain("MetalLBBGPSessionDown");
  expect(loaded.length).toBe(7);
  expect(await bgpAlerts()).toEqual([]);

  // Down: BIRD shuts the session; vipd reports it, the alert is pending, then firing.
  await birdc("disable", "vipd");
  await until("vipd to see the session down", async () => (await t.bgpState()) !== "Established");
  await until(
    "the alert to be pending",
    async () => (await bgpAlerts()).some((a) => a.state === "pending"),
    30_000,
  );
  let firing: Alert | undefined;
  await until(
    "the alert to fire",
    async () => {
      firing = (await bgpAlerts()).find((a) => a.state === "firing");
      return firing !== undefined;
    },
    120_000,
  );
  expect(firing?.labels).toEqual({
    alertname: "MetalLBBGPSessionDown",
    severity: "critical",
    job: "vipd",
    instance: "127.0.0.1:7473",
    peer: "10.88.1.1",
  });
  // Prometheus's own clock: it fired no sooner than `for: 1m` after the alert became active.
  const evalNow = Number((await query("vector(time())"))[0]?.value[1] ?? 0) * 1000;
  expect(evalNow - Date.parse(firing?.activeAt ?? "")).toBeGreaterThanOrEqual(60_000);

  // Up again: the alert resolves.
  await birdc("enable", "vipd");
  await until("BGP Established again", async () => (await t.bgpState()) === "Established", 30_000);
  await until("the alert to resolve", async () => (await bgpAlerts()).length === 0, 30_000);
});
