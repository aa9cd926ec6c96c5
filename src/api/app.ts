/**
 * The vipd HTTP API as a Hono app, built against an injected `ApiRuntime` (no driver knowledge).
 *
 * Every request passes one gate, in this order, before any handler runs:
 *   404 unknown path → 405 wrong method (+ Allow) → 401 no/unknown token → 403 role too low →
 *   406 Accept without JSON (JSON routes).
 * Body-carrying routes then check 415 (media type) → 428 (If-Match missing) → 413 (size) →
 * 400 (not UTF-8) → 412 (stale ETag, checked under the write lock) → 400 (invalid manifests).
 * Every refusal is `{ "error", "message" }` JSON and changes nothing. Open without a token:
 * /livez, /readyz, /healthz, and the static shells / and /docs (they carry no data); /metrics
 * is open or not as configured; reads need a read or admin token; writes, and reading the
 * configuration (manifests may hold BGP passwords), need admin. `POST /config/validate` is a dry
 * run and needs only a read token.
 *
 * @example
 * const app = createApp(runtime, { tokens: [{ role: "admin", hash: hashToken("t") }], metricsOpen: true });
 * const res = await app.request("/api/v1/status", { headers: { Authorization: "Bearer t" } });
 */

import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { createLogger, type Logger } from "../util/log.ts";
import { allows, authenticate, compileTokens, type Role, type TokenConfig } from "./auth.ts";
import {
  ApiError,
  acceptQuality,
  negotiate,
  parseEtagList,
  parseMediaType,
  readBodyLimited,
  strongMatch,
  weakMatch,
} from "./http.ts";
import { createApiMetrics } from "./metrics.ts";
import { DOCS_PAGE, STATUS_PAGE } from "./pages.ts";
import { lookupRoute, routes, YAML_TYPES } from "./routes.ts";
import type { ApiRuntime } from "./runtime.ts";
import { FailoverRequest } from "./schemas.ts";

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

export interface AppOptions {
  /**
   * The accepted tokens; a function is read on every request, so a configuration reload can
   * rotate tokens without a restart (malformed entries then throw at the first request).
   */
  tokens: TokenConfig[] | (() => TokenConfig[]);
  /** Serve /metrics without a token. */
  metricsOpen: boolean;
  /** Serve the read-only routes without a token (mutations and config still need admin). */
  readOpen?: boolean | (() => boolean);
  /** Largest request body in bytes; default 1 MiB. */
  bodyLimit?: number;
  log?: Logger;
}

type Env = { Variables: { role: Role | null; principal: string } };

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
/** Metric label for a method: clients choose it, so unknown ones share one value. */
const methodLabel = (m: string): string => (METHODS.has(m) ? m : "other");

const JSON_HEADERS = { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" };

function quote(etag: string): string {
  return `"${etag.replace(/["\\]/g, "")}"`;
}

function errorResponse(c: Context<Env>, e: ApiError): Response {
  return c.json({ error: e.code, message: e.message, ...e.extra }, e.status, {
    ...JSON_HEADERS,
    ...e.headers,
  });
}

/** Refuses a body that is not YAML text in UTF-8 (415), before reading it. */
function checkYamlContentType(header: string | undefined): void {
  const allowed = `send ${YAML_TYPES.join(", ")} (UTF-8)`;
  if (header === undefined)
    throw new ApiError(415, "UnsupportedMediaType", `Content-Type is missing; ${allowed}`);
  const mt = parseMediaType(header);
  const essence = mt ? `${mt.type}/${mt.subtype}` : "";
  if (!mt || !(YAML_TYPES as readonly string[]).includes(essence)) {
    throw new ApiError(
      415,
      "UnsupportedMediaType",
      `Content-Type ${JSON.stringify(header)} is not accepted; ${allowed}`,
    );
  }
  const cs = mt.params["charset"];
  if (cs !== undefined && cs.toLowerCase() !== "utf-8" && cs.toLowerCase() !== "utf8") {
    throw new ApiError(
      415,
      "UnsupportedMediaType",
      `charset ${JSON.stringify(cs)} is not accepted; send UTF-8`,
    );
  }
}

async function readYaml(req: Request, limit: number): Promise<string> {
  const body = await readBodyLimited(req, limit);
  if (!body.ok) throw new ApiError(413, "PayloadTooLarge", `the body exceeds the limit of ${limit} bytes`);
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body.bytes);
  } catch {
    throw new ApiError(400, "BadRequest", "the body is not valid UTF-8");
  }
}

/** Serializes async sections (the ETag check and the apply it guards). */
function createLock() {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => {});
    return run;
  };
}

export function createApp(runtime: ApiRuntime, opts: AppOptions): OpenAPIHono<Env> {
  const tokenSource = typeof opts.tokens === "function" ? opts.tokens : () => opts.tokens as TokenConfig[];
  let tokenKey = "";
  let compiled = compileTokens([]);
  /** The compiled tokens, recompiled only when the configured list changes. */
  const currentTokens = () => {
    const list = tokenSource();
    const key = JSON.stringify(list);
    if (key !== tokenKey) {
      compiled = compileTokens(list);
      tokenKey = key;
    }
    return compiled;
  };
  const tokens = currentTokens();
  const readOpen = () => (typeof opts.readOpen === "function" ? opts.readOpen() : opts.readOpen === true);
  const limit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  if (!Number.isInteger(limit) || limit <= 0) throw new Error("bodyLimit: must be a positive integer");
  const log = opts.log ?? createLogger("api");
  const metrics = createApiMetrics(log);
  if (tokens.length === 0) {
    log.warn("no API tokens configured: only the probes, the pages and (if open) metrics and reads answer");
  }
  const withWriteLock = createLock();
  const app = new OpenAPIHono<Env>({
    defaultHook: (result) => {
      if (!result.success) {
        const first = result.error.issues[0];
        throw new ApiError(
          400,
          "BadRequest",
          first ? `${first.path.join(".")}: ${first.message}` : "bad request",
        );
      }
    },
  });

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    description: "A token whose sha256 is configured with the role read or admin",
  });

  app.onError((err, c) => {
    if (err instanceof ApiError) return errorResponse(c, err);
    log.error("request failed", { method: c.req.method, path: c.req.path, error: err });
    return errorResponse(c, new ApiError(500, "InternalError", "internal error; see the vipd log"));
  });
  app.notFound((c) => errorResponse(c, new ApiError(404, "NotFound", `no route ${c.req.path}`)));

  // The gate: route table → 404/405 → authentication → authorization → 406.
  app.use("*", async (c, next) => {
    const t0 = performance.now();
    const found = lookupRoute(c.req.method, c.req.path);
    const routeLabel = found.kind === "notFound" ? "unmatched" : c.req.path; // a known path: bounded
    const done = (status: number): void => {
      const seconds = (performance.now() - t0) / 1000;
      metrics.observeRequest(methodLabel(c.req.method), routeLabel, status, seconds);
      if (log.enabled("debug")) {
        log.debug("request", {
          method: c.req.method,
          path: c.req.path,
          status,
          ms: Math.round(seconds * 1e4) / 10,
        });
      }
    };
    try {
      if (found.kind === "notFound") throw new ApiError(404, "NotFound", `no route ${c.req.path}`);
      if (found.kind === "methodNotAllowed") {
        throw new ApiError(405, "MethodNotAllowed", `${c.req.method} is not allowed on ${c.req.path}`, {
          Allow: found.allow.join(", "),
        });
      }
      const rule = found.rule;
      const open =
        rule.access === "open" ||
        (rule.access === "metrics" && opts.metricsOpen) ||
        (rule.access === "read" && readOpen());
      c.set("role", null);
      c.set("principal", "anonymous");
      if (!open) {
        const auth = authenticate(c.req.header("authorization"), currentTokens());
        if (!auth.ok) {
          metrics.authFailure(auth.reason);
          log.warn("authentication failed", { reason: auth.reason, method: c.req.method, path: c.req.path });
          const challenge =
            auth.reason === "MissingToken"
              ? 'Bearer realm="vipd"'
              : 'Bearer realm="vipd", error="invalid_token"';
          throw new ApiError(401, "Unauthorized", "a valid bearer token is required", {
            "WWW-Authenticate": challenge,
          });
        }
        const need: Role = rule.access === "admin" ? "admin" : "read";
        if (!allows(auth.role, need)) {
          metrics.authFailure("InsufficientRole");
          log.warn("authorization failed", { token: auth.name, method: c.req.method, path: c.req.path });
          throw new ApiError(403, "Forbidden", `this needs the ${need} role; the token has ${auth.role}`);
        }
        c.set("role", auth.role);
        c.set("principal", auth.name);
      }
      if (rule.produces === "json" && acceptQuality(c.req.header("accept"), "application", "json") <= 0) {
        throw new ApiError(406, "NotAcceptable", "this route answers application/json only");
      }
    } catch (e) {
      // Rendered here, not by onError, so the status is known when the request is counted.
      if (!(e instanceof ApiError)) throw e;
      c.res = errorResponse(c, e);
      done(e.status);
      return;
    }
    try {
      await next();
    } finally {
      // Handler errors were already turned into c.res by onError.
      done(c.res.status);
    }
  });

  // Health.
  app.openapi(routes.livez, (c) => c.json({ status: "ok" as const }, 200, JSON_HEADERS));
  app.openapi(routes.healthz, (c) => c.json({ status: "ok" as const }, 200, JSON_HEADERS));
  app.openapi(routes.readyz, async (c) => {
    const st = await runtime.status();
    const reasons: string[] = [];
    if (!st.ready) reasons.push("configuration not loaded");
    for (const d of st.drivers) {
      if (!d.healthy) reasons.push(`driver ${d.name} unhealthy${d.detail ? `: ${d.detail}` : ""}`);
    }
    return reasons.length === 0
      ? c.json({ ready: true, reasons }, 200, JSON_HEADERS)
      : c.json({ ready: false, reasons }, 503, JSON_HEADERS);
  });
  app.openapi(routes.metrics, async (c) =>
    c.text(await metrics.render(runtime), 200, {
      "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
      "Cache-Control": "no-store",
    }),
  );

  // State.
  app.openapi(routes.status, async (c) => c.json(await runtime.status(), 200, JSON_HEADERS));
  app.openapi(routes.services, async (c) => c.json({ items: await runtime.services() }, 200, JSON_HEADERS));
  app.openapi(routes.pools, async (c) => c.json({ items: await runtime.pools() }, 200, JSON_HEADERS));
  app.openapi(routes.l2, async (c) => c.json({ items: await runtime.l2() }, 200, JSON_HEADERS));
  app.openapi(routes.l2Elections, async (c) =>
    c.json({ items: (await runtime.l2Elections?.()) ?? [] }, 200, JSON_HEADERS),
  );
  app.openapi(routes.clusterMembers, async (c) =>
    c.json({ items: (await runtime.clusterMembers?.()) ?? [] }, 200, JSON_HEADERS),
  );
  // Documented from the route (request schema included) but parsed here, so a wrong media type or
  // size is refused with this API's own errors before the body is read.
  app.openAPIRegistry.registerPath(routes.l2Failover);
  app.post(routes.l2Failover.path, async (c) => {
    const mt = parseMediaType(c.req.header("content-type") ?? "");
    if (!mt || `${mt.type}/${mt.subtype}` !== "application/json")
      throw new ApiError(415, "UnsupportedMediaType", "send application/json");
    const body = await readBodyLimited(c.req.raw, limit);
    if (!body.ok) throw new ApiError(413, "PayloadTooLarge", `the body exceeds the limit of ${limit} bytes`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body.bytes));
    } catch {
      throw new ApiError(400, "BadRequest", "the body is not UTF-8 JSON");
    }
    const req = FailoverRequest.safeParse(parsed);
    if (!req.success) {
      const first = req.error.issues[0];
      throw new ApiError(
        400,
        "BadRequest",
        first ? `${first.path.join(".") || "body"}: ${first.message}` : "bad request",
      );
    }
    if (runtime.l2Failover === undefined)
      throw new ApiError(409, "NoCluster", "this node has no layer-2 election to change");
    const principal = c.get("principal");
    const out = await withWriteLock(async () => runtime.l2Failover?.(req.data));
    if (out === undefined || !out.ok) {
      const r = out ?? { status: 409 as const, error: "NoCluster" as const, message: "no layer-2 election" };
      throw new ApiError(r.status, r.error, r.message);
    }
    const { ok: _ok, ...result } = out;
    log.info("forced failover", { token: principal, ...result });
    return c.json(result, 200, JSON_HEADERS);
  });
  app.openapi(routes.bgpPeers, async (c) => c.json({ items: await runtime.bgpPeers() }, 200, JSON_HEADERS));
  app.openapi(routes.bfdSessions, async (c) =>
    c.json({ items: await runtime.bfdSessions() }, 200, JSON_HEADERS),
  );
  app.openapi(routes.xdp, async (c) => c.json(await runtime.xdp(), 200, JSON_HEADERS));

  // Configuration.
  app.openapi(routes.getConfig, async (c) => {
    const type = negotiate(c.req.header("accept"), ["application/json", "application/yaml"]);
    if (type === null)
      throw new ApiError(406, "NotAcceptable", "this route answers application/json or application/yaml");
    const cfg = await runtime.config();
    const etag = quote(cfg.etag);
    const inm = c.req.header("if-none-match");
    const tags = inm === undefined ? null : parseEtagList(inm);
    const headers = { ...JSON_HEADERS, ETag: etag, Vary: "Accept" };
    if (tags === "*" || (Array.isArray(tags) && tags.some((t) => weakMatch(t, etag)))) {
      return c.body(null, 304, headers);
    }
    if (type === "application/yaml") {
      return c.body(cfg.yaml, 200, { ...headers, "Content-Type": "application/yaml; charset=utf-8" });
    }
    return c.json({ etag: cfg.etag, yaml: cfg.yaml }, 200, headers);
  });

  app.openapi(routes.putConfig, async (c) => {
    checkYamlContentType(c.req.header("content-type"));
    const ifMatch = c.req.header("if-match");
    if (ifMatch === undefined) {
      throw new ApiError(428, "PreconditionRequired", "send If-Match with the ETag from GET /api/v1/config");
    }
    const tags = parseEtagList(ifMatch);
    if (tags === null) throw new ApiError(400, "BadRequest", "If-Match is not a list of entity tags");
    const yaml = await readYaml(c.req.raw, limit);
    const principal = c.get("principal");
    const outcome = await withWriteLock(async () => {
      const current = quote((await runtime.config()).etag);
      if (tags !== "*" && !tags.some((t) => strongMatch(t, current))) {
        throw new ApiError(
          412,
          "PreconditionFailed",
          "the configuration changed since that ETag; GET it again",
          {
            ETag: current,
          },
        );
      }
      return runtime.applyConfig(yaml);
    });
    if (!outcome.ok) {
      log.info("configuration rejected", { token: principal, problems: outcome.problems.length });
      throw new ApiError(
        400,
        "InvalidConfig",
        `the manifest set has ${outcome.problems.length} problem(s)`,
        {},
        {
          problems: outcome.problems,
        },
      );
    }
    log.info("configuration applied", { token: principal, etag: outcome.etag });
    return c.json({ etag: outcome.etag }, 200, { ...JSON_HEADERS, ETag: quote(outcome.etag) });
  });

  app.openapi(routes.validateConfig, async (c) => {
    checkYamlContentType(c.req.header("content-type"));
    const yaml = await readYaml(c.req.raw, limit);
    const problems = await runtime.validateConfig(yaml);
    return c.json({ valid: problems.length === 0, problems }, 200, JSON_HEADERS);
  });

  // Documents and pages.
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "vipd API",
      version: "1",
      description:
        "State, health, metrics and configuration of one vipd node. Every refusal is JSON " +
        '`{ "error": "<Code>", "message": "..." }`: 400 BadRequest / InvalidConfig, 401 Unauthorized ' +
        "(with WWW-Authenticate), 403 Forbidden, 404 NotFound (any unknown path), 405 " +
        "MethodNotAllowed (with Allow), 406 NotAcceptable, 412 PreconditionFailed, 413 " +
        "PayloadTooLarge, 415 UnsupportedMediaType, 428 PreconditionRequired. A refused request " +
        "changes nothing. Open without a token: /livez, /readyz, /healthz, / and /docs; /metrics " +
        "as configured.",
    },
  });
  for (const page of [STATUS_PAGE, DOCS_PAGE]) {
    app.get(page.path, (c) =>
      c.html(page.html, 200, {
        "Content-Security-Policy": page.csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
      }),
    );
  }

  return app;
}
