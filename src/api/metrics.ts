/**
 * `/metrics`: Prometheus text exposition (format 0.0.4) through prom-client, with one Registry
 * per app instance (never the global one, so two apps in one process do not mix).
 *
 * The API's own families (requests, auth failures) are counted as requests pass; allocator and
 * status gauges are read from the runtime at scrape time; the runtime may add its own families
 * (`ApiRuntime.metrics`), checked against Prometheus naming rules: `vipd_` prefix, base units,
 * `_total` only on counters. A family breaking them is left out and logged, never half-exported.
 * MetalLB's `metallb_*` series are derived from the same inputs (src/api/metallb-metrics.ts) and
 * exported beside them under MetalLB's own names. The standard `process_*` series (memory, CPU,
 * file descriptors, start time) are read from /proc/self at scrape time (./process-metrics.ts).
 */

import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Logger } from "../util/log.ts";
import { type MetallbFamily, metallbFamilies } from "./metallb-metrics.ts";
import { PROCESS_METRIC_NAMES, processFamilies, readProcessFigures } from "./process-metrics.ts";
import type { ApiRuntime, MetricFamily, PoolView, StatusSummary } from "./runtime.ts";

export const API_METRIC_NAMES = [
  "vipd_api_requests_total",
  "vipd_api_request_duration_seconds",
  "vipd_api_auth_failures_total",
  "vipd_api_refusals_total",
  "vipd_api_tls_rejected_total",
  "vipd_api_watchers",
  "vipd_api_watchers_cut_off_total",
  "vipd_api_metric_families_rejected_total",
  "vipd_build_info",
  "vipd_start_time_seconds",
  "vipd_ready",
  "vipd_config_generation",
  "vipd_driver_healthy",
  "vipd_pool_addresses_assigned",
  "vipd_pool_addresses_available",
] as const;

const NAME_RE = /^vipd_[a-z0-9_]+$/;
const LABEL_RE = /^[a-z_][a-z0-9_]*$/;

/** Why a runtime family is refused, or null when it is fine. */
export function familyProblem(f: MetricFamily, taken: ReadonlySet<string>): string | null {
  if (!NAME_RE.test(f.name)) return "name must match ^vipd_[a-z0-9_]+$";
  if (taken.has(f.name)) return "name already exported";
  if (f.type !== "counter" && f.type !== "gauge") return "type must be counter or gauge";
  if (f.type === "counter" && !f.name.endsWith("_total")) return "counter name must end in _total";
  if (f.type === "gauge" && f.name.endsWith("_total")) return "gauge name must not end in _total";
  if (typeof f.help !== "string" || f.help.trim() === "") return "help is required";
  for (const s of f.samples) {
    if (typeof s.value !== "number" || Number.isNaN(s.value)) return "sample value must be a number";
    if (f.type === "counter" && !(s.value >= 0)) return "counter value must be >= 0";
    for (const [k, v] of Object.entries(s.labels ?? {})) {
      if (!LABEL_RE.test(k) || k.startsWith("__")) return `bad label name ${JSON.stringify(k)}`;
      if (typeof v !== "string") return `label ${k} must be a string`;
    }
  }
  return null;
}

/** A family whose values are replaced wholesale on every scrape (prom-client's metric shape). */
class SnapshotFamily {
  values: { labels: Record<string, string>; value: number }[] = [];
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge",
  ) {}
  get() {
    return { name: this.name, help: this.help, type: this.type, values: this.values, aggregator: "sum" };
  }
  reset(): void {
    this.values = [];
  }
}

export interface ApiMetrics {
  registry: Registry;
  observeRequest(method: string, route: string, code: number, seconds: number): void;
  authFailure(reason: string): void;
  /** A client refused in the TLS handshake (mutual TLS: no, an untrusted or an expired certificate). */
  tlsRejected(reason: string): void;
  /** Refreshes the scrape-time families from the runtime, then renders the text format. */
  render(runtime: ApiRuntime): Promise<string>;
}

/** The families read from the runtime's status and pools at scrape time. */
function statusGauges(registry: Registry) {
  const buildInfo = new Gauge({
    name: "vipd_build_info",
    help: "Always 1; labels carry the version and node name",
    labelNames: ["version", "node"],
    registers: [registry],
  });
  const startTime = new Gauge({
    name: "vipd_start_time_seconds",
    help: "Process start time, seconds since the Unix epoch",
    registers: [registry],
  });
  const ready = new Gauge({
    name: "vipd_ready",
    help: "1 when configuration is loaded and every driver is healthy",
    registers: [registry],
  });
  const generation = new Gauge({
    name: "vipd_config_generation",
    help: "Generation of the applied configuration",
    registers: [registry],
  });
  const driverHealthy = new Gauge({
    name: "vipd_driver_healthy",
    help: "1 when the driver reports healthy",
    labelNames: ["driver"],
    registers: [registry],
  });
  const assigned = new Gauge({
    name: "vipd_pool_addresses_assigned",
    help: "Addresses of the pool assigned to services, per family",
    labelNames: ["pool", "family"],
    registers: [registry],
  });
  const available = new Gauge({
    name: "vipd_pool_addresses_available",
    help: "Addresses of the pool still free, per family",
    labelNames: ["pool", "family"],
    registers: [registry],
  });
  return { buildInfo, startTime, ready, generation, driverHealthy, assigned, available };
}

function setStatus(g: ReturnType<typeof statusGauges>, st: StatusSummary, pools: PoolView[]): void {
  g.buildInfo.reset();
  g.buildInfo.set({ version: st.version, node: st.node }, 1);
  const started = Date.parse(st.startedAt);
  if (Number.isFinite(started)) g.startTime.set(started / 1000);
  g.ready.set(st.ready && st.drivers.every((d) => d.healthy) ? 1 : 0);
  g.generation.set(st.configGeneration);
  g.driverHealthy.reset();
  for (const d of st.drivers) g.driverHealthy.set({ driver: d.name }, d.healthy ? 1 : 0);

  g.assigned.reset();
  g.available.reset();
  for (const p of pools) {
    for (const f of p.families) {
      // Prometheus values are float64: a /64's count is exact to 53 bits, which is plenty.
      g.assigned.set({ pool: p.name, family: f.family }, Number(f.assigned));
      g.available.set({ pool: p.name, family: f.family }, Number(f.available));
    }
  }
}

export function createApiMetrics(log: Logger): ApiMetrics {
  const registry = new Registry();
  const requests = new Counter({
    name: "vipd_api_requests_total",
    help: "HTTP API requests by method, route template and status code",
    labelNames: ["method", "route", "code"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "vipd_api_request_duration_seconds",
    help: "HTTP API request handling time",
    labelNames: ["route"],
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry],
  });
  const authFailures = new Counter({
    name: "vipd_api_auth_failures_total",
    help: "Requests refused by authentication or authorization, by reason",
    labelNames: ["reason"],
    registers: [registry],
  });
  const tlsRejected = new Counter({
    name: "vipd_api_tls_rejected_total",
    help: "Clients refused in the TLS handshake of the API (mutual TLS), by reason: no_certificate, untrusted, expired, not_yet_valid, revoked, bad_certificate, handshake_timeout, plain_http, other",
    labelNames: ["reason"],
    registers: [registry],
  });
  const rejected = new Counter({
    name: "vipd_api_metric_families_rejected_total",
    help: "Metric families from the runtime left out for breaking naming rules",
    registers: [registry],
  });
  const g = statusGauges(registry);
  const taken = new Set<string>([...API_METRIC_NAMES, ...PROCESS_METRIC_NAMES]);
  const processFamily = new Map<string, SnapshotFamily>();
  const refreshProcess = (): void => {
    const figures = readProcessFigures();
    const fams = figures === null ? [] : processFamilies(figures);
    for (const f of fams) {
      let fam = processFamily.get(f.name);
      if (fam === undefined) {
        fam = new SnapshotFamily(f.name, f.help, f.type);
        processFamily.set(f.name, fam);
        registry.registerMetric(fam as unknown as Gauge);
      }
      fam.values = [{ labels: {}, value: f.value }];
    }
    for (const [name, fam] of processFamily) if (!fams.some((f) => f.name === name)) fam.values = [];
  };
  const dynamic = new Map<string, SnapshotFamily>();
  const warned = new Set<string>();

  async function refresh(runtime: ApiRuntime): Promise<void> {
    const st = await runtime.status();
    const pools = await runtime.pools();
    setStatus(g, st, pools);
    refreshProcess();

    const seen = new Set<string>();
    const families = (await runtime.metrics?.()) ?? [];
    const snapshot = (f: MetricFamily | MetallbFamily): void => {
      seen.add(f.name);
      let fam = dynamic.get(f.name);
      if (fam === undefined || fam.type !== f.type || fam.help !== f.help) {
        if (fam) registry.removeSingleMetric(f.name);
        fam = new SnapshotFamily(f.name, f.help, f.type);
        dynamic.set(f.name, fam);
        registry.registerMetric(fam as unknown as Gauge);
      }
      fam.values = f.samples.map((s) => ({ labels: { ...(s.labels ?? {}) }, value: s.value }));
    };
    for (const f of families) {
      const problem = seen.has(f.name) ? "family reported twice" : familyProblem(f, taken);
      if (problem !== null) {
        rejected.inc();
        if (!warned.has(f.name)) {
          warned.add(f.name);
          log.warn("metric family left out", { family: f.name, problem });
        }
        continue;
      }
      snapshot(f);
    }
    // MetalLB's names (they break the rules above on purpose), from the same state.
    const accepted = families.filter((f) => seen.has(f.name));
    for (const f of metallbFamilies({
      status: st,
      pools,
      bgpPeers: await runtime.bgpPeers(),
      families: accepted,
    }))
      snapshot(f);
    for (const name of [...dynamic.keys()]) {
      if (!seen.has(name)) {
        registry.removeSingleMetric(name);
        dynamic.delete(name);
      }
    }
  }

  return {
    registry,
    observeRequest(method, route, code, seconds) {
      requests.inc({ method, route, code: String(code) });
      duration.observe({ route }, seconds);
    },
    authFailure(reason) {
      authFailures.inc({ reason });
    },
    tlsRejected(reason) {
      tlsRejected.inc({ reason });
    },
    async render(runtime) {
      await refresh(runtime);
      return registry.metrics();
    },
  };
}
