/**
 * The API as route modules behind one gate (src/api/gate.ts, src/api/routes/*.ts), through
 * `app.request()` (no socket): each module mounted alone answers its routes and nothing else,
 * a new module is gated by its own rules, the route table refuses two rules for one route, and
 * changes are written to the audit log (who, what, result) while reads and dry runs are not.
 */

import { describe, expect, test } from "bun:test";
import { createApp } from "../../src/api/app.ts";
import { AuditLog } from "../../src/api/audit.ts";
import { hashToken } from "../../src/api/auth.ts";
import { JSON_HEADERS, type RouteModule } from "../../src/api/context.ts";
import { configRoutes } from "../../src/api/routes/config.ts";
import { healthRoutes } from "../../src/api/routes/health.ts";
import { ALL_RULES, ROUTE_MODULES, RULES } from "../../src/api/routes/index.ts";
import { l2Routes } from "../../src/api/routes/l2.ts";
import { pageRoutes } from "../../src/api/routes/pages.ts";
import { stateRoutes } from "../../src/api/routes/state.ts";
import { routeTable } from "../../src/api/routes.ts";
import type { FailoverRequest } from "../../src/api/runtime.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeRuntime } from "./api-runtime-fake.ts";

const ADMIN = "routes-admin-token";
const READER = "routes-read-token";
const TOKENS = [
  { name: "ops", role: "admin" as const, hash: hashToken(ADMIN) },
  { name: "dash", role: "read" as const, hash: hashToken(READER) },
];
const auth = (t: string) => ({ Authorization: `Bearer ${t}` });
const quiet = () => createLogger("api", { level: "error", sink: () => {} });

function appWith(modules: readonly RouteModule[], rt = new FakeRuntime(), audit = new AuditLog()) {
  return {
    rt,
    audit,
    app: createApp(rt, { tokens: TOKENS, metricsOpen: false, modules, audit, log: quiet() }),
  };
}

describe("route modules mounted alone", () => {
  test("health: probes open, metrics behind the token; other modules' paths are 404", async () => {
    const { app } = appWith([healthRoutes]);
    expect((await app.request("/livez")).status).toBe(200);
    expect((await app.request("/readyz")).status).toBe(200);
    expect((await app.request("/metrics")).status).toBe(401);
    expect((await app.request("/metrics", { headers: auth(READER) })).status).toBe(200);
    const res = await app.request("/api/v1/status", { headers: auth(ADMIN) });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: "NotFound", message: "no route /api/v1/status" });
  });

  test("state: reads with a read token, lists from the runtime", async () => {
    const { app, rt } = appWith([stateRoutes]);
    rt.serviceList = [{ namespace: "default", name: "web", ips: ["192.168.10.1"], warnings: [] }];
    const res = await app.request("/api/v1/services", { headers: auth(READER) });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { items: unknown[] }).items).toHaveLength(1);
    expect((await app.request("/api/v1/xdp", { headers: auth(READER) })).status).toBe(200);
    expect((await app.request("/api/v1/services")).status).toBe(401);
    expect((await app.request("/livez")).status).toBe(404);
  });

  test("config: GET needs admin, validate a read token; PUT without If-Match is 428", async () => {
    const { app } = appWith([configRoutes]);
    expect((await app.request("/api/v1/config", { headers: auth(READER) })).status).toBe(403);
    expect((await app.request("/api/v1/config", { headers: auth(ADMIN) })).status).toBe(200);
    const put = await app.request("/api/v1/config", {
      method: "PUT",
      headers: { ...auth(ADMIN), "Content-Type": "application/yaml" },
      body: "",
    });
    expect(put.status).toBe(428);
    const dry = await app.request("/api/v1/config/validate", {
      method: "POST",
      headers: { ...auth(READER), "Content-Type": "application/yaml" },
      body: "{}",
    });
    expect(dry.status).toBe(200);
  }, 60_000);

  test("l2: the failover action refuses a runtime without elections with 409 NoCluster", async () => {
    const { app } = appWith([l2Routes]);
    const res = await app.request("/api/v1/l2/failover", {
      method: "POST",
      headers: { ...auth(ADMIN), "Content-Type": "application/json" },
      body: JSON.stringify({ ip: "10.0.0.5" }),
    });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: string }).error).toBe("NoCluster");
  });

  test("pages: shells open, the OpenAPI document lists only the mounted modules' routes", async () => {
    const { app } = appWith([stateRoutes, pageRoutes]);
    expect((await app.request("/")).status).toBe(200);
    expect((await app.request("/docs")).status).toBe(200);
    expect((await app.request("/openapi.json")).status).toBe(401);
    const doc = (await (await app.request("/openapi.json", { headers: auth(READER) })).json()) as {
      paths: Record<string, unknown>;
    };
    expect(doc.paths["/api/v1/services"]).toBeDefined();
    expect(doc.paths["/api/v1/config"]).toBeUndefined();
  });
});

describe("the route table", () => {
  test("every module's rules are in ALL_RULES; contract:false rules are not in RULES", () => {
    expect(ALL_RULES.length).toBe(ROUTE_MODULES.reduce((n, m) => n + m.rules.length, 0));
    expect(RULES.some((r) => r.path === "/api/v1/l2/failover")).toBe(false);
    expect(ALL_RULES.some((r) => r.path === "/api/v1/l2/failover")).toBe(true);
  });

  test("two rules for one method and path are refused at creation", () => {
    const r = { method: "GET" as const, path: "/x", access: "open" as const, produces: "json" as const };
    expect(() => routeTable([r, { ...r, access: "read" }])).toThrow("two API routes for GET /x");
    expect(() =>
      createApp(new FakeRuntime(), {
        tokens: TOKENS,
        metricsOpen: false,
        modules: [healthRoutes, healthRoutes],
      }),
    ).toThrow(/two API routes/);
  });

  test("HEAD is served as GET; a wrong method is 405 with Allow", () => {
    const lookup = routeTable(ALL_RULES);
    expect(lookup("HEAD", "/livez").kind).toBe("found");
    expect(lookup("DELETE", "/api/v1/config")).toEqual({
      kind: "methodNotAllowed",
      allow: ["GET", "HEAD", "PUT"],
    });
    expect(lookup("GET", "/nope")).toEqual({ kind: "notFound" });
  });

  test("a new module is one entry: its rules gate it (401, 403, 406) before its handler runs", async () => {
    let calls = 0;
    const extra: RouteModule = {
      name: "extra",
      rules: [{ method: "POST", path: "/api/v1/extra", access: "admin", produces: "json" }],
      mount(app) {
        app.post("/api/v1/extra", (c) => {
          calls += 1;
          return c.json({ ok: true }, 200, JSON_HEADERS);
        });
      },
    };
    const { app } = appWith([...ROUTE_MODULES, extra]);
    expect((await app.request("/api/v1/extra", { method: "POST" })).status).toBe(401);
    expect((await app.request("/api/v1/extra", { method: "POST", headers: auth(READER) })).status).toBe(403);
    const h = { ...auth(ADMIN), Accept: "text/html" };
    expect((await app.request("/api/v1/extra", { method: "POST", headers: h })).status).toBe(406);
    expect(calls).toBe(0);
    expect((await app.request("/api/v1/extra", { method: "POST", headers: auth(ADMIN) })).status).toBe(200);
    expect(calls).toBe(1);
    expect((await app.request("/api/v1/extra", { headers: auth(ADMIN) })).status).toBe(405);
  });

  test("a handler registered without a rule is unreachable (404)", async () => {
    const sneaky: RouteModule = {
      name: "sneaky",
      rules: [],
      mount(app) {
        app.get("/api/v1/sneaky", (c) => c.json({ leaked: true }));
      },
    };
    const { app } = appWith([sneaky]);
    expect((await app.request("/api/v1/sneaky", { headers: auth(ADMIN) })).status).toBe(404);
  });
});

describe("the audit log of changes", () => {
  class L2Runtime extends FakeRuntime {
    l2Failover(req: FailoverRequest) {
      if (req.ip !== "10.0.0.5")
        return {
          ok: false as const,
          status: 404 as const,
          error: "UnknownVip" as const,
          message: "not a VIP",
        };
      return { ok: true as const, ip: req.ip, from: "node-a", to: "node-b", declined: [req.ip] };
    }
  }

  test("PUTs and actions are recorded with token, result and detail; reads, dry runs and 401s are not", async () => {
    let t = Date.UTC(2026, 0, 1);
    const audit = new AuditLog({ now: () => t++ });
    const { app, rt } = appWith(ROUTE_MODULES, new L2Runtime(), audit);
    const yamlHeaders = { "Content-Type": "application/yaml" };
    const cfg = await rt.config();
    // Not recorded: a read, a dry run, an unauthenticated change.
    await app.request("/api/v1/config", { headers: auth(ADMIN) });
    await app.request("/api/v1/config/validate", {
      method: "POST",
      headers: { ...auth(READER), ...yamlHeaders },
      body: cfg.yaml,
    });
    await app.request("/api/v1/config", { method: "PUT", headers: yamlHeaders, body: cfg.yaml });
    expect(audit.stats().recorded).toBe(0);

    const put = await app.request("/api/v1/config", {
      method: "PUT",
      headers: { ...auth(ADMIN), ...yamlHeaders, "If-Match": `"${cfg.etag}"` },
      body: cfg.yaml.replace("192.168.10.0/24", "192.168.20.0/24"),
    });
    expect(put.status).toBe(200);
    const newEtag = ((await put.json()) as { etag: string }).etag;
    const stale = await app.request("/api/v1/config", {
      method: "PUT",
      headers: { ...auth(ADMIN), ...yamlHeaders, "If-Match": `"${cfg.etag}"` },
      body: cfg.yaml,
    });
    expect(stale.status).toBe(412);
    const json = { "Content-Type": "application/json" };
    await app.request("/api/v1/l2/failover", {
      method: "POST",
      headers: { ...auth(READER), ...json },
      body: '{"ip":"10.0.0.5"}',
    });
    await app.request("/api/v1/l2/failover", {
      method: "POST",
      headers: { ...auth(ADMIN), ...json },
      body: '{"ip":"10.0.0.5","node":"node-b"}',
    });
    const entries = audit.list({ afterSeq: 0, limit: 10 });
    expect(entries).toEqual([
      {
        seq: 1,
        time: "2026-01-01T00:00:00.000Z",
        token: "ops",
        role: "admin",
        method: "PUT",
        path: "/api/v1/config",
        status: 200,
        result: "ok",
        detail: { etag: newEtag },
      },
      {
        seq: 2,
        time: "2026-01-01T00:00:00.001Z",
        token: "ops",
        role: "admin",
        method: "PUT",
        path: "/api/v1/config",
        status: 412,
        result: "refused",
        error: "PreconditionFailed",
      },
      {
        seq: 3,
        time: "2026-01-01T00:00:00.002Z",
        token: "dash",
        role: "read",
        method: "POST",
        path: "/api/v1/l2/failover",
        status: 403,
        result: "refused",
        error: "Forbidden",
      },
      {
        seq: 4,
        time: "2026-01-01T00:00:00.003Z",
        token: "ops",
        role: "admin",
        method: "POST",
        path: "/api/v1/l2/failover",
        status: 200,
        result: "ok",
        detail: { ip: "10.0.0.5", from: "node-a", to: "node-b", declined: ["10.0.0.5"] },
      },
    ]);
  }, 60_000); // two manifest bodies through the worker: seconds on a loaded machine

  test("the log is bounded: the oldest entries go, and are counted", () => {
    const audit = new AuditLog({ capacity: 3, now: () => 0 });
    for (let i = 0; i < 5; i++)
      audit.record({ token: "ops", role: "admin", method: "PUT", path: "/api/v1/config", status: 200 });
    expect(audit.stats()).toEqual({ recorded: 5, kept: 3, dropped: 2 });
    expect(audit.list({ afterSeq: 0, limit: 10 }).map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(audit.list({ afterSeq: 3, limit: 1 }).map((e) => e.seq)).toEqual([4]);
    expect(audit.remainingAfter(3)).toBe(2);
    expect(audit.list({ afterSeq: 5, limit: 10 })).toEqual([]);
    expect(() => new AuditLog({ capacity: 0 })).toThrow(/capacity/);
  });
});
