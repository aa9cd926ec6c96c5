/**
 * Contract tests of the HTTP API, through `app.request()` (no socket): every route, every error
 * status, the auth matrix, and the promise that a rejected request changes nothing.
 *
 * Parameterised by runtime: FACTORIES lists how to build an ApiRuntime plus manifest sets it
 * accepts and rejects. The in-memory fake is the first; the real `vipd run` runtime can be
 * added as another entry and must pass the same tests.
 */

import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import type { z } from "@hono/zod-openapi";
import { createApp } from "../../src/api/app.ts";
import { hashToken, type TokenConfig } from "../../src/api/auth.ts";
import { RULES } from "../../src/api/routes/index.ts";
import type { ApiRuntime } from "../../src/api/runtime.ts";
import {
  BfdSessionList,
  BgpPeerList,
  ConfigView,
  ErrorBody,
  InvalidConfigBody,
  L2List,
  PoolList,
  Readiness,
  ServiceList,
  StatusSummary,
  ValidateResult,
  XdpView,
} from "../../src/api/schemas.ts";
import { createLogger } from "../../src/util/log.ts";
import { BAD_SYNTAX_YAML, FakeRuntime, INVALID_YAML, VALID_YAML } from "./api-runtime-fake.ts";

export interface RuntimeUnderTest {
  runtime: ApiRuntime;
  /** A manifest set the runtime accepts, different from the one it starts with. */
  otherValidYaml: string;
  /** Well-formed YAML the runtime's validation rejects. */
  invalidYaml: string;
  close(): void | Promise<void>;
}

const FACTORIES: [string, () => RuntimeUnderTest | Promise<RuntimeUnderTest>][] = [
  [
    "fake runtime",
    () => ({
      runtime: new FakeRuntime(),
      otherValidYaml: VALID_YAML.replace("192.168.10.0/24", "192.168.20.0/24"),
      invalidYaml: INVALID_YAML,
      close: () => {},
    }),
  ],
];

const ADMIN = "admin-0123456789abcdef";
const READER = "read-0123456789abcdef";
const TOKENS: TokenConfig[] = [
  { name: "ops", role: "admin", hash: hashToken(ADMIN) },
  { name: "grafana", role: "read", hash: hashToken(READER) },
];
const YAML_CT = { "Content-Type": "application/yaml" };

const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });
const quiet = () => createLogger("api", { sink: () => {} });

async function expectError(res: Response, status: number, code: string): Promise<void> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toStartWith("application/json");
  const body = ErrorBody.parse(await res.json());
  expect(body.error).toBe(code);
  expect(body.message.length).toBeGreaterThan(0);
}

async function parsed<T extends z.ZodType>(res: Response, schema: T): Promise<z.infer<T>> {
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toStartWith("application/json");
  return schema.parse(await res.json());
}

for (const [label, factory] of FACTORIES) {
  describe(`API contract (${label})`, () => {
    let rt: RuntimeUnderTest;
    let app: ReturnType<typeof createApp>;
    beforeEach(async () => {
      rt = await factory();
      app = createApp(rt.runtime, { tokens: TOKENS, metricsOpen: false, log: quiet() });
    });
    afterEach(async () => {
      await rt.close();
    });

    const get = (path: string, headers: Record<string, string> = bearer(READER)) =>
      app.request(path, { headers });
    const put = (body: string, headers: Record<string, string>) =>
      app.request("/api/v1/config", {
        method: "PUT",
        body,
        headers: { ...bearer(ADMIN), ...YAML_CT, ...headers },
      });
    const currentEtag = async () => `"${(await rt.runtime.config()).etag}"`;

    test("every state route answers JSON that matches its schema", async () => {
      const st = await parsed(await get("/api/v1/status"), StatusSummary);
      expect(st.configGeneration).toBeGreaterThanOrEqual(0);
      await parsed(await get("/api/v1/services"), ServiceList);
      const pools = await parsed(await get("/api/v1/pools"), PoolList);
      for (const p of pools.items)
        for (const f of p.families) expect(f.assigned).toMatch(/^(0|[1-9][0-9]*)$/);
      await parsed(await get("/api/v1/l2/announcements"), L2List);
      await parsed(await get("/api/v1/bgp/peers"), BgpPeerList);
      await parsed(await get("/api/v1/bfd/sessions"), BfdSessionList);
      await parsed(await get("/api/v1/xdp"), XdpView);
      const cfg = await parsed(await get("/api/v1/config", bearer(ADMIN)), ConfigView);
      expect(cfg).toEqual(await rt.runtime.config());
    });

    test("probes are open; /healthz is /livez; /readyz explains itself", async () => {
      for (const p of ["/livez", "/healthz"]) {
        const res = await app.request(p);
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({ status: "ok" });
      }
      const res = await app.request("/readyz");
      expect([200, 503]).toContain(res.status);
      const r = Readiness.parse(await res.json());
      expect(r.ready).toBe(res.status === 200);
      expect(r.ready).toBe(r.reasons.length === 0);
    });

    test("/openapi.json is an OpenAPI 3.1 document describing every API route", async () => {
      const doc = (await (await get("/openapi.json")).json()) as {
        openapi: string;
        paths: Record<string, Record<string, { responses: Record<string, unknown>; security?: unknown[] }>>;
        components: { schemas: Record<string, unknown>; securitySchemes: Record<string, { scheme: string }> };
      };
      expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
      // 3.0-only keywords must not appear in a 3.1 document.
      expect(JSON.stringify(doc)).not.toMatch(/"nullable"|"exclusiveMinimum":(true|false)/);
      expect(doc.components.securitySchemes["bearerAuth"]?.scheme).toBe("bearer");
      for (const r of RULES) {
        if (r.produces === "html" || r.path === "/openapi.json") continue;
        const op = doc.paths[r.path]?.[r.method.toLowerCase()];
        expect(op, `${r.method} ${r.path}`).toBeDefined();
        expect(Object.keys(op!.responses)).toContain("200");
        if (r.access === "read" || r.access === "admin") expect(op!.security).toEqual([{ bearerAuth: [] }]);
      }
      // Every $ref resolves to a component.
      const refs = JSON.stringify(doc).match(/"#\/components\/schemas\/[^"]+"/g) ?? [];
      expect(refs.length).toBeGreaterThan(10);
      for (const ref of refs) expect(doc.components.schemas[ref.slice(22, -1)], ref).toBeDefined();
      for (const name of ["Error", "Problem", "StatusSummary", "Pool", "BgpPeer", "Config"]) {
        expect(doc.components.schemas[name], name).toBeDefined();
      }
    });

    test("auth matrix: no token, malformed, wrong token, read token and admin token on every route", async () => {
      const expected = (access: string, who: string): number[] => {
        if (access === "open") return [200, 503];
        if (who === "none" || who === "wrong" || who === "malformed") return [401];
        if (access === "admin" && who === "read") return [403];
        return [200];
      };
      const creds: Record<string, Record<string, string>> = {
        none: {},
        malformed: { Authorization: `Basic ${btoa("a:b")}` },
        wrong: bearer("not-a-configured-token"),
        read: bearer(READER),
        admin: bearer(ADMIN),
      };
      for (const r of RULES) {
        for (const [who, headers] of Object.entries(creds)) {
          const before = await rt.runtime.config();
          const init: RequestInit = { method: r.method, headers: { ...headers } };
          if (r.method !== "GET") {
            init.body = before.yaml;
            init.headers = { ...headers, ...YAML_CT, "If-Match": `"${before.etag}"` };
          }
          const res = await app.request(r.path, init);
          expect(
            expected(r.access === "metrics" ? "read" : r.access, who),
            `${who} ${r.method} ${r.path}`,
          ).toContain(res.status);
          if (res.status === 401) {
            expect(res.headers.get("www-authenticate")).toStartWith("Bearer");
            await expectError(res, 401, "Unauthorized");
          }
          if (res.status === 403) await expectError(res, 403, "Forbidden");
          expect(await rt.runtime.config()).toEqual(before);
        }
      }
    });

    test("metrics: protected unless configured open", async () => {
      expect((await app.request("/metrics")).status).toBe(401);
      const open = createApp(rt.runtime, { tokens: TOKENS, metricsOpen: true, log: quiet() });
      const res = await open.request("/metrics");
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
      const text = await res.text();
      expect(text).toContain("# TYPE vipd_pool_addresses_assigned gauge");
      expect(text).toContain("# TYPE vipd_api_requests_total counter");
    });

    test("reads may be opened to anyone; writes and config still need admin", async () => {
      const open = createApp(rt.runtime, {
        tokens: TOKENS,
        metricsOpen: false,
        readOpen: true,
        log: quiet(),
      });
      expect((await open.request("/api/v1/status")).status).toBe(200);
      expect((await open.request("/api/v1/config")).status).toBe(401);
      const res = await open.request("/api/v1/config", { method: "PUT", body: "x", headers: YAML_CT });
      expect(res.status).toBe(401);
    });

    test("404 for unknown paths, as JSON, with or without a token", async () => {
      await expectError(await app.request("/nope"), 404, "NotFound");
      await expectError(await get("/api/v1/nope"), 404, "NotFound");
      await expectError(await get("/api/v2/status"), 404, "NotFound");
      await expectError(await get("/api/v1/status/"), 404, "NotFound");
    });

    test("405 with an Allow header for a known path and a wrong method", async () => {
      let res = await app.request("/api/v1/config", { method: "DELETE", headers: bearer(ADMIN) });
      expect(res.headers.get("allow")).toBe("GET, HEAD, PUT");
      await expectError(res, 405, "MethodNotAllowed");
      res = await app.request("/api/v1/status", { method: "POST", headers: bearer(ADMIN) });
      expect(res.headers.get("allow")).toBe("GET, HEAD");
      await expectError(res, 405, "MethodNotAllowed");
      res = await app.request("/api/v1/config/validate", { method: "GET", headers: bearer(ADMIN) });
      expect(res.headers.get("allow")).toBe("POST");
      await expectError(res, 405, "MethodNotAllowed");
      res = await app.request("/livez", { method: "PATCH" });
      await expectError(res, 405, "MethodNotAllowed");
    });

    test("406 when Accept excludes JSON; wildcards and q-values are honoured", async () => {
      await expectError(
        await get("/api/v1/status", { ...bearer(READER), Accept: "text/html" }),
        406,
        "NotAcceptable",
      );
      await expectError(
        await get("/api/v1/pools", { ...bearer(READER), Accept: "application/json;q=0, text/*" }),
        406,
        "NotAcceptable",
      );
      await expectError(
        await get("/api/v1/config", { ...bearer(ADMIN), Accept: "text/plain" }),
        406,
        "NotAcceptable",
      );
      for (const accept of [
        "application/json",
        "*/*",
        "application/*",
        "text/html, application/json;q=0.1",
      ]) {
        expect((await get("/api/v1/status", { ...bearer(READER), Accept: accept })).status, accept).toBe(200);
      }
    });

    test("HEAD is served like GET without a body", async () => {
      const res = await app.request("/api/v1/status", { method: "HEAD", headers: bearer(READER) });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("");
    });

    test("GET config: ETag header, YAML on request, 304 on If-None-Match", async () => {
      const { etag, yaml } = await rt.runtime.config();
      let res = await get("/api/v1/config", bearer(ADMIN));
      expect(res.headers.get("etag")).toBe(`"${etag}"`);
      res = await get("/api/v1/config", { ...bearer(ADMIN), Accept: "application/yaml" });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toStartWith("application/yaml");
      expect(await res.text()).toBe(yaml);
      res = await get("/api/v1/config", { ...bearer(ADMIN), "If-None-Match": `"${etag}"` });
      expect(res.status).toBe(304);
      res = await get("/api/v1/config", { ...bearer(ADMIN), "If-None-Match": '"something-else"' });
      expect(res.status).toBe(200);
    });

    test("PUT config applies atomically with If-Match, then the old ETag is stale", async () => {
      const old = await currentEtag();
      const res = await put(rt.otherValidYaml, { "If-Match": old });
      expect(res.status).toBe(200);
      const { etag } = (await res.json()) as { etag: string };
      expect(res.headers.get("etag")).toBe(`"${etag}"`);
      expect(await rt.runtime.config()).toEqual({ etag, yaml: rt.otherValidYaml });
      const st = StatusSummary.parse(await (await get("/api/v1/status")).json());
      expect(st.configGeneration).toBeGreaterThanOrEqual(1);
      // The ETag we used is now stale.
      const again = await put(rt.otherValidYaml, { "If-Match": old });
      expect(again.headers.get("etag")).toBe(`"${etag}"`);
      await expectError(again, 412, "PreconditionFailed");
      // "*" matches whatever is current.
      expect((await put(rt.otherValidYaml, { "If-Match": "*" })).status).toBe(200);
    });

    test("a rejected PUT changes nothing, whatever the reason", async () => {
      const before = await rt.runtime.config();
      const etag = `"${before.etag}"`;
      const cases: [string, () => Response | Promise<Response>, number, string][] = [
        ["missing If-Match", () => put(rt.otherValidYaml, {}), 428, "PreconditionRequired"],
        ["stale If-Match", () => put(rt.otherValidYaml, { "If-Match": '"0000"' }), 412, "PreconditionFailed"],
        [
          "weak If-Match",
          () => put(rt.otherValidYaml, { "If-Match": `W/${etag}` }),
          412,
          "PreconditionFailed",
        ],
        ["malformed If-Match", () => put(rt.otherValidYaml, { "If-Match": "no-quotes" }), 400, "BadRequest"],
        [
          "JSON body",
          () => put("{}", { "If-Match": etag, "Content-Type": "application/json" }),
          415,
          "UnsupportedMediaType",
        ],
        [
          "text/plain",
          () => put(rt.otherValidYaml, { "If-Match": etag, "Content-Type": "text/plain" }),
          415,
          "UnsupportedMediaType",
        ],
        [
          "latin-1 YAML",
          () =>
            put(rt.otherValidYaml, {
              "If-Match": etag,
              "Content-Type": "application/yaml; charset=iso-8859-1",
            }),
          415,
          "UnsupportedMediaType",
        ],
        [
          "no Content-Type",
          () =>
            app.request("/api/v1/config", {
              method: "PUT",
              body: new TextEncoder().encode(rt.otherValidYaml),
              headers: { ...bearer(ADMIN), "If-Match": etag },
            }),
          415,
          "UnsupportedMediaType",
        ],
        [
          "too large",
          () => put(`# ${"x".repeat(1024 * 1024)}\n`, { "If-Match": etag }),
          413,
          "PayloadTooLarge",
        ],
        [
          "not UTF-8",
          () =>
            app.request("/api/v1/config", {
              method: "PUT",
              body: new Uint8Array([0x6b, 0x3a, 0x20, 0xff, 0xfe, 0x0a]),
              headers: { ...bearer(ADMIN), ...YAML_CT, "If-Match": etag },
            }),
          400,
          "BadRequest",
        ],
        ["bad YAML", () => put(BAD_SYNTAX_YAML, { "If-Match": etag }), 400, "InvalidConfig"],
        ["invalid manifest", () => put(rt.invalidYaml, { "If-Match": etag }), 400, "InvalidConfig"],
        [
          "read-only token",
          () => put(rt.otherValidYaml, { ...bearer(READER), "If-Match": etag }),
          403,
          "Forbidden",
        ],
      ];
      for (const [name, send, status, code] of cases) {
        const res = await send();
        expect(res.status, name).toBe(status);
        await expectError(res, status, code);
        expect(await rt.runtime.config(), name).toEqual(before);
      }
    });

    test("an invalid manifest set is refused with file:line problems and JSON pointers", async () => {
      const res = await put(rt.invalidYaml, { "If-Match": await currentEtag() });
      const body = InvalidConfigBody.parse(await res.json());
      expect(body.error).toBe("InvalidConfig");
      const problems = body.problems ?? [];
      expect(problems.length).toBeGreaterThan(0);
      for (const p of problems) {
        expect(p.line).toBeGreaterThan(0);
        expect(p.pointer).toMatch(/^(\/[^/]*)*$/);
      }
      const syntax = await put(BAD_SYNTAX_YAML, { "If-Match": await currentEtag() });
      expect(InvalidConfigBody.parse(await syntax.json()).problems?.length).toBeGreaterThan(0);
    });

    test("POST validate is a dry run: problems or none, and nothing changes", async () => {
      const before = await rt.runtime.config();
      const post = (body: string, headers: Record<string, string> = {}) =>
        app.request("/api/v1/config/validate", {
          method: "POST",
          body,
          headers: { ...bearer(READER), ...YAML_CT, ...headers },
        });
      expect(await parsed(await post(rt.otherValidYaml), ValidateResult)).toEqual({
        valid: true,
        problems: [],
      });
      const bad = await parsed(await post(rt.invalidYaml), ValidateResult);
      expect(bad.valid).toBe(false);
      expect(bad.problems[0]!.line).toBeGreaterThan(0);
      expect((await parsed(await post(BAD_SYNTAX_YAML), ValidateResult)).valid).toBe(false);
      await expectError(
        await post("a: 1", { "Content-Type": "application/json" }),
        415,
        "UnsupportedMediaType",
      );
      await expectError(await post(`# ${"x".repeat(1024 * 1024)}`), 413, "PayloadTooLarge");
      for (const ct of ["text/yaml", "application/x-yaml", "application/yaml; charset=UTF-8"]) {
        expect((await post(rt.otherValidYaml, { "Content-Type": ct })).status, ct).toBe(200);
      }
      expect(await rt.runtime.config()).toEqual(before);
    });

    test("the body limit is configurable", async () => {
      const small = createApp(rt.runtime, {
        tokens: TOKENS,
        metricsOpen: false,
        bodyLimit: 64,
        log: quiet(),
      });
      const res = await small.request("/api/v1/config/validate", {
        method: "POST",
        body: `# ${"y".repeat(64)}`,
        headers: { ...bearer(READER), ...YAML_CT },
      });
      await expectError(res, 413, "PayloadTooLarge");
    });
  });
}
