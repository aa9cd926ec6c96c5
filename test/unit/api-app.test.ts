/**
 * Behaviour of the API that needs a runtime the test can steer (the in-memory fake): readiness,
 * pool counts beyond 2^53, metrics, racing writers, runtime failures, the pages' security
 * headers, and what gets logged.
 */

import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { createApp } from "../../src/api/app.ts";
import { hashToken } from "../../src/api/auth.ts";
import { DOCS_PAGE, STATUS_PAGE } from "../../src/api/pages.ts";
import { PoolList, ServiceList } from "../../src/api/schemas.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeRuntime, VALID_YAML } from "./api-runtime-fake.ts";

const ADMIN = "admin-token-for-app-tests";
const READER = "read-token-for-app-tests";
const TOKENS = [
  { name: "ops", role: "admin" as const, hash: hashToken(ADMIN) },
  { name: "dash", role: "read" as const, hash: hashToken(READER) },
];
const auth = (t: string) => ({ Authorization: `Bearer ${t}` });

function setup(rt = new FakeRuntime(), metricsOpen = true) {
  const lines: string[] = [];
  const log = createLogger("api", { level: "debug", sink: (l) => lines.push(l) });
  const app = createApp(rt, { tokens: TOKENS, metricsOpen, log });
  const logs = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { rt, app, logs };
}

const BIG_POOLS = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: big
  namespace: metallb-system
spec:
  addresses: [10.1.0.0/16, "2001:db8:1::/48"]
  autoAssign: false
`;

describe("readiness", () => {
  test("ready only when configuration is loaded and every driver is healthy", async () => {
    const { rt, app } = setup();
    rt.drivers = [
      { name: "xdp", healthy: true },
      { name: "bgp", healthy: true },
    ];
    expect((await app.request("/readyz")).status).toBe(200);

    rt.drivers[1] = { name: "bgp", healthy: false, detail: "socket bind failed" };
    let res = await app.request("/readyz");
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ ready: false, reasons: ["driver bgp unhealthy: socket bind failed"] });

    rt.configLoaded = false;
    res = await app.request("/readyz");
    expect(((await res.json()) as { reasons: string[] }).reasons[0]).toBe("configuration not loaded");
    // Liveness does not depend on readiness.
    expect((await app.request("/livez")).status).toBe(200);
  });
});

describe("pools", () => {
  test("usage per family as exact decimal strings, beyond 2^53", async () => {
    const { rt, app } = setup(new FakeRuntime(BIG_POOLS));
    rt.serviceList = [
      { namespace: "web", name: "front", ips: ["10.1.0.1", "2001:db8:1::1"], pool: "big", warnings: [] },
      { namespace: "web", name: "pending", ips: [], reason: "no pool has a free address", warnings: [] },
    ];
    const pools = PoolList.parse(
      await (await app.request("/api/v1/pools", { headers: auth(READER) })).json(),
    );
    expect(pools.items).toEqual([
      {
        name: "big",
        autoAssign: false,
        families: [
          { family: "IPv4", assigned: "1", available: "65535" },
          { family: "IPv6", assigned: "1", available: ((1n << 80n) - 1n).toString() },
        ],
      },
    ]);
    const svcs = ServiceList.parse(
      await (await app.request("/api/v1/services", { headers: auth(READER) })).json(),
    );
    expect(svcs.items[1]!.reason).toBe("no pool has a free address");
  });
});

describe("metrics", () => {
  test("allocator gauges per pool and family, status gauges, request counters", async () => {
    const { rt, app } = setup(new FakeRuntime(BIG_POOLS));
    rt.serviceList = [{ namespace: "a", name: "b", ips: ["10.1.0.7"], pool: "big", warnings: [] }];
    rt.drivers = [{ name: "xdp", healthy: false }];
    await app.request("/api/v1/status", { headers: auth(READER) });
    await app.request("/api/v1/status");
    const text = await (await app.request("/metrics")).text();
    expect(text).toContain('vipd_pool_addresses_assigned{pool="big",family="IPv4"} 1');
    expect(text).toContain('vipd_pool_addresses_available{pool="big",family="IPv4"} 65535');
    expect(text).toContain('vipd_pool_addresses_available{pool="big",family="IPv6"} 1.2089258196146292e+24');
    expect(text).toContain('vipd_driver_healthy{driver="xdp"} 0');
    expect(text).toContain("vipd_ready 0");
    expect(text).toContain("vipd_config_generation 1");
    expect(text).toContain('vipd_build_info{version="0.1.0-test",node="node-a"} 1');
    expect(text).toContain('vipd_api_requests_total{method="GET",route="/api/v1/status",code="200"} 1');
    expect(text).toContain('vipd_api_requests_total{method="GET",route="/api/v1/status",code="401"} 1');
    expect(text).toContain('vipd_api_auth_failures_total{reason="MissingToken"} 1');
    // Conventions: every family is vipd_-prefixed, and _total is on counters only; MetalLB's
    // compatibility series keep MetalLB's names (test/unit/metallb-metrics.test.ts), the
    // standard process_* series the client libraries' (test/unit/process-metrics.test.ts).
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      if (m[1]!.startsWith("metallb_") || m[1]!.startsWith("process_")) continue;
      expect(m[1]!).toStartWith("vipd_");
      expect(m[1]!.endsWith("_total"), m[1]).toBe(m[2] === "counter");
    }
  });

  test("runtime families are exported when they follow the rules, left out and logged when not", async () => {
    const { rt, app, logs } = setup();
    rt.metricFamilies = [
      {
        name: "vipd_bgp_updates_sent_total",
        help: "UPDATE messages sent",
        type: "counter",
        samples: [{ labels: { peer: "192.0.2.1" }, value: 42 }],
      },
      { name: "vipd_xdp_up", help: "XDP attached", type: "gauge", samples: [{ value: 1 }] },
      { name: "bgp_sessions", help: "no prefix", type: "gauge", samples: [{ value: 1 }] },
      { name: "vipd_bad_counter", help: "no _total", type: "counter", samples: [{ value: 1 }] },
      { name: "vipd_ready", help: "clash", type: "gauge", samples: [{ value: 5 }] },
    ];
    let text = await (await app.request("/metrics")).text();
    expect(text).toContain("# TYPE vipd_bgp_updates_sent_total counter");
    expect(text).toContain('vipd_bgp_updates_sent_total{peer="192.0.2.1"} 42');
    expect(text).toContain("vipd_xdp_up 1");
    expect(text).not.toContain("bgp_sessions");
    expect(text).not.toContain("vipd_bad_counter");
    expect(text).not.toContain("vipd_ready 5");
    expect(text).toContain("vipd_api_metric_families_rejected_total 3");
    const left = logs().filter((l) => l["message"] === "metric family left out");
    expect(left.map((l) => l["family"])).toEqual(["bgp_sessions", "vipd_bad_counter", "vipd_ready"]);

    // A family the runtime stops reporting disappears; values follow the runtime.
    rt.metricFamilies = [
      { name: "vipd_xdp_up", help: "XDP attached", type: "gauge", samples: [{ value: 0 }] },
    ];
    text = await (await app.request("/metrics")).text();
    expect(text).not.toContain("vipd_bgp_updates_sent_total");
    expect(text).toContain("vipd_xdp_up 0");
  });

  test("client-chosen methods cannot grow label cardinality", async () => {
    const { app } = setup();
    for (const m of ["PROPFIND", "MKCOL", "LOCK"]) await app.request("/api/v1/status", { method: m });
    const text = await (await app.request("/metrics")).text();
    expect(text).toContain('vipd_api_requests_total{method="other",route="/api/v1/status",code="405"} 3');
    expect(text).not.toContain('method="PROPFIND"');
  });

  test("two apps in one process keep separate registries", async () => {
    const a = setup();
    const b = setup();
    await a.app.request("/api/v1/pools", { headers: auth(READER) });
    const textB = await (await b.app.request("/metrics")).text();
    expect(textB).not.toContain('route="/api/v1/pools"');
  });
});

describe("configuration writes", () => {
  test("two writers with the same ETag: one wins, the other gets 412", async () => {
    const { rt, app } = setup();
    rt.applyDelayMs = 30;
    const etag = `"${rt.config().etag}"`;
    const send = (yaml: string) =>
      app.request("/api/v1/config", {
        method: "PUT",
        body: yaml,
        headers: { ...auth(ADMIN), "Content-Type": "application/yaml", "If-Match": etag },
      });
    const a = VALID_YAML.replace("192.168.10.0/24", "192.168.30.0/24");
    const b = VALID_YAML.replace("192.168.10.0/24", "192.168.40.0/24");
    const [ra, rb] = await Promise.all([send(a), send(b)]);
    expect([ra.status, rb.status].sort()).toEqual([200, 412]);
    expect(rt.applied).toBe(1);
    expect(rt.config().yaml).toBe(ra.status === 200 ? a : b);
  });

  test("applies and refusals are logged with the token's name, never the token", async () => {
    const { rt, app, logs } = setup();
    const res = await app.request("/api/v1/config", {
      method: "PUT",
      body: VALID_YAML.replace("192.168.10.0/24", "192.168.50.0/24"),
      headers: { ...auth(ADMIN), "Content-Type": "text/yaml", "If-Match": `"${rt.config().etag}"` },
    });
    expect(res.status).toBe(200);
    await app.request("/api/v1/status", { headers: auth("guess") });
    const all = logs();
    expect(all.find((l) => l["message"] === "configuration applied")?.["token"]).toBe("ops");
    expect(all.find((l) => l["message"] === "authentication failed")?.["reason"]).toBe("UnknownToken");
    const raw = JSON.stringify(all);
    expect(raw).not.toContain(ADMIN);
    expect(raw).not.toContain("guess");
  });
});

describe("start-up", () => {
  test("an app without tokens says so in the log; bad token configuration throws", () => {
    const lines: string[] = [];
    createApp(new FakeRuntime(), {
      tokens: [],
      metricsOpen: true,
      log: createLogger("api", { sink: (l) => lines.push(l) }),
    });
    expect(lines.map((l) => JSON.parse(l).message)).toEqual([
      "no API tokens configured: only the probes, the pages and (if open) metrics and reads answer",
    ]);
    expect(() =>
      createApp(new FakeRuntime(), { tokens: [{ role: "admin", hash: "sha256:abc" }], metricsOpen: true }),
    ).toThrow(/tokens\[0\]\.hash/);
    expect(() => createApp(new FakeRuntime(), { tokens: TOKENS, metricsOpen: true, bodyLimit: 0 })).toThrow(
      /bodyLimit/,
    );
  });
});

describe("failures inside the runtime", () => {
  test("become a JSON 500 that reveals nothing, and are logged", async () => {
    const rt = new FakeRuntime();
    rt.bgpPeers = () => {
      throw new Error("secret detail from the driver");
    };
    const { app, logs } = setup(rt);
    const res = await app.request("/api/v1/bgp/peers", { headers: auth(READER) });
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe("InternalError");
    expect(JSON.stringify(body)).not.toContain("secret");
    expect(logs().some((l) => l["level"] === "error" && JSON.stringify(l).includes("secret detail"))).toBe(
      true,
    );
  });
});

describe("pages", () => {
  test("/ and /docs are open HTML shells whose only script is allowed by its hash", async () => {
    const { app } = setup(new FakeRuntime(), false);
    for (const page of [STATUS_PAGE, DOCS_PAGE]) {
      const res = await app.request(page.path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toStartWith("text/html");
      const html = await res.text();
      const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
      expect(scripts.length).toBe(1);
      const hash = createHash("sha256").update(scripts[0]!, "utf8").digest("base64");
      const csp = res.headers.get("content-security-policy")!;
      expect(csp).toContain(`script-src 'sha256-${hash}'`);
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("connect-src 'self'");
      // Self-contained: nothing loaded from anywhere else.
      expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    }
  });
});
