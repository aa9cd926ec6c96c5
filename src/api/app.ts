/**
 * The vipd HTTP API as a Hono app, built against an injected `ApiRuntime` (no driver knowledge).
 *
 * Every request passes one gate, in this order, before any handler runs:
 *   413 declared body over the limit (any route; Connection: close) → 404 unknown path →
 *   405 wrong method (+ Allow) → 401 no/unknown token → 403 role too low → 406 Accept without
 *   JSON (JSON routes).
 * Manifest routes then check 415 (media type) → 428 (If-Match missing) → 413 (size, streamed) →
 * 400 (not UTF-8) → 412 (stale ETag, before any parsing) → the body worker (body-check.ts: 422
 * budget refusals with the line, 503 Busy, 400 invalid manifests with at most 200 problems) →
 * 412 again under the write lock →
 * 422 lockout guards (EmptyConfig, NoAdminToken; their `?allow...=true` flags) → apply (200, or
 * 202 with `pendingRestart`).
 * Every refusal is `{ "error", "message" }` JSON and changes nothing. Open without a token:
 * /livez, /readyz, /healthz, and the static shells / and /docs (they carry no data); /metrics
 * is open or not as configured; reads need a read or admin token; writes, and reading the
 * configuration (manifests may hold BGP passwords), need admin. `POST /config/validate` is a dry
 * run and needs only a read token: its work is bounded (pre-scan, worker, time, queue, output).
 *
 * @example
 * const app = createApp(runtime, { tokens: [{ role: "admin", hash: hashToken("t") }], metricsOpen: true });
 * const res = await app.request("/api/v1/status", { headers: { Authorization: "Bearer t" } });
 */

import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { Counter } from "prom-client";
import { BODY_LIMITS } from "../config/budget.ts";
import { createLogger, type Logger } from "../util/log.ts";
import {
  allows,
  authenticate,
  compileTokens,
  compileTokensLenient,
  type Role,
  type TokenConfig,
} from "./auth.ts";
import { BodyChecker, type BodyCheckerOptions, type CheckVerdict } from "./body-check.ts";
import type { ConfigSummary } from "./body-protocol.ts";
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
import type { ApiRuntime, Problem } from "./runtime.ts";
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
  /**
   * Budgets of the worker that parses and validates manifest bodies off the main thread (time,
   * queue, documents, depth, nodes; the size limit is `bodyLimit`); dry runs and PUTs get a worker
   * and queue each. Or one checker to share (tests).
   */
  bodyCheck?: BodyCheckerOptions | BodyChecker;
  log?: Logger;
}

type Env = { Variables: { role: Role | null; principal: string } };

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
/** Metric label for a method: clients choose it, so unknown ones share one value. */
const methodLabel = (m: string): string => (METHODS.has(m) ? m : "other");

const JSON_HEADERS = { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" };

/** `Connection: close` on a 413: the rest of an oversized body is not read, so the connection ends. */
const CLOSE = { Connection: "close" };

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
  if (!body.ok)
    throw new ApiError(413, "PayloadTooLarge", `the body exceeds the limit of ${limit} bytes`, CLOSE);
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body.bytes);
  } catch {
    throw new ApiError(400, "BadRequest", "the body is not valid UTF-8");
  }
}

/** Reads `?name=true|false` (absent: false); anything else is a 400. */
function flag(c: Context<Env>, name: string): boolean {
  const v = c.req.query(name);
  if (v === undefined || v === "false") return false;
  if (v === "true") return true;
  throw new ApiError(400, "BadRequest", `?${name} must be true or false`);
}

/**
 * The guards against a change that locks the operator out: an empty set (every Service released,
 * every token gone, reads open), or a set without an admin token when the running one has one.
 * Each needs its explicit flag. Returns the refusal, or null.
 */
function lockoutRefusal(
  summary: ConfigSummary,
  hadAdmin: boolean,
  flags: { allowEmpty: boolean; allowNoAdmin: boolean },
): ApiError | null {
  if (summary.objects === 0 && !flags.allowEmpty)
    return new ApiError(
      422,
      "EmptyConfig",
      "the manifest set is empty (no objects): it would release every Service and remove every API token; send ?allowEmpty=true if that is what you want",
    );
  if (hadAdmin && summary.adminTokens === 0 && !flags.allowNoAdmin)
    return new ApiError(
      422,
      "NoAdminToken",
      "the manifest set has no admin API token (NodeSettings.spec.api.tokens) while the running one has: nobody could change the configuration through the API afterwards; send ?allowNoAdmin=true if that is what you want",
    );
  return null;
}

/** A verdict of the body worker that is not "valid" or "invalid", as the refusal to send. */
function budgetRefusal(v: CheckVerdict, limit: number): ApiError | null {
  switch (v.kind) {
    case "refused": {
      const problems: Problem[] = [
        { file: "<request>", line: v.line, field: "-", message: v.message, pointer: "" },
      ];
      if (v.reason === "TooLarge")
        return new ApiError(413, "PayloadTooLarge", `the body exceeds the limit of ${limit} bytes`, CLOSE);
      return new ApiError(422, v.reason, `<request>:${v.line}: ${v.message}`, {}, { problems });
    }
    case "timeout":
      return new ApiError(
        422,
        "ValidationTimeout",
        `validating the body took longer than its budget of ${Math.round(v.ms / 100) / 10} s; nothing was changed`,
      );
    case "busy":
      return new ApiError(503, "Busy", `${v.waiting} validations are waiting already; retry later`, {
        "Retry-After": "1",
      });
    case "failed":
      return new ApiError(422, "ValidationFailed", `the body could not be validated: ${v.message}`);
    default:
      return null;
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
  let compiled = compileTokensLenient([]).tokens;
  /**
   * The compiled tokens, recompiled only when the configured list changes. A bad entry (which
   * validation refuses, so only a hand-built list can hold one) is left out and logged once,
   * never turned into a 500 on every request.
   */
  const currentTokens = () => {
    const list = tokenSource();
    const key = JSON.stringify(list);
    if (key !== tokenKey) {
      const c = compileTokensLenient(list);
      for (const problem of c.problems) log.error("API token ignored", { problem });
      compiled = c.tokens;
      tokenKey = key;
    }
    return compiled;
  };
  const readOpen = () => (typeof opts.readOpen === "function" ? opts.readOpen() : opts.readOpen === true);
  const limit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  if (!Number.isInteger(limit) || limit <= 0) throw new Error("bodyLimit: must be a positive integer");
  const log = opts.log ?? createLogger("api");
  // A fixed list is checked strictly, at creation; a live one (read from the configuration) leniently.
  if (Array.isArray(opts.tokens)) compileTokens(opts.tokens);
  const tokens = currentTokens();
  const metrics = createApiMetrics(log);
  const refusals = new Counter({
    name: "vipd_api_refusals_total",
    help: "Requests refused before any change: oversized bodies, budgets, lockout guards, bad requests, by reason",
    labelNames: ["reason"],
    registers: [metrics.registry],
  });
  // Two checkers, each with its own worker and queue: a flood of dry runs (read role) cannot
  // keep an admin's PUT waiting or refuse it as Busy.
  const newChecker = () =>
    opts.bodyCheck instanceof BodyChecker
      ? opts.bodyCheck
      : new BodyChecker({
          ...opts.bodyCheck,
          limits: { ...BODY_LIMITS, ...opts.bodyCheck?.limits, maxBytes: limit },
        });
  const checker = newChecker();
  const applyChecker = newChecker();
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

  /** Body refusals (4xx/5xx from the body checks and guards) are logged and counted by reason. */
  const refuse = (e: ApiError, c: Context<Env>): ApiError => {
    refusals.inc({ reason: e.code });
    log.warn("request refused", {
      method: c.req.method,
      path: c.req.path,
      status: e.status,
      error: e.code,
      message: e.message,
    });
    return e;
  };

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
      const declared = c.req.header("content-length");
      if (declared !== undefined && /^[0-9]+$/.test(declared.trim()) && Number(declared) > limit) {
        throw refuse(
          new ApiError(
            413,
            "PayloadTooLarge",
            `the body (${declared} bytes) exceeds the limit of ${limit} bytes`,
            CLOSE,
          ),
          c,
        );
      }
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
    if (!body.ok)
      throw new ApiError(413, "PayloadTooLarge", `the body exceeds the limit of ${limit} bytes`, CLOSE);
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body.bytes));
    } catch {
      throw new ApiError(400, "BadRequest", "the body is not UTF-8 JSON");
    }
    const req = FailoverRequest.safeParse(parsed);
    if (!req.success) {
      const first = req.error.issues[0];
      throw refuse(
        new ApiError(
          400,
          "BadRequest",
          first ? `${first.path.join(".") || "body"}: ${first.message}` : "bad request",
        ),
        c,
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
    const flags = { allowEmpty: flag(c, "allowEmpty"), allowNoAdmin: flag(c, "allowNoAdmin") };
    const yaml = await readYaml(c.req.raw, limit).catch((e) => {
      throw e instanceof ApiError ? refuse(e, c) : e;
    });
    const principal = c.get("principal");
    const checkEtag = async (): Promise<void> => {
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
    };
    // A stale ETag is refused before any parsing (and checked again under the write lock).
    await checkEtag();
    // Parsed and validated off the main thread, within the budgets.
    const verdict = await applyChecker.check(yaml, { wantConfig: true });
    const over = budgetRefusal(verdict, limit);
    if (over !== null) throw refuse(over, c);
    if (verdict.kind === "invalid") {
      log.info("configuration rejected", {
        token: principal,
        problems: verdict.problems.length + verdict.omitted,
      });
      const total = verdict.problems.length - (verdict.omitted > 0 ? 1 : 0) + verdict.omitted;
      throw new ApiError(
        400,
        "InvalidConfig",
        `the manifest set has ${total} problem(s)`,
        {},
        { problems: verdict.problems, ...(verdict.omitted > 0 ? { omitted: verdict.omitted } : {}) },
      );
    }
    if (verdict.kind !== "valid") throw new ApiError(500, "InternalError", "unexpected validation verdict");
    const checked = verdict;
    const outcome = await withWriteLock(async () => {
      await checkEtag();
      // Checked under the lock, against the tokens in force at this moment.
      const hadAdmin = (runtime.configAdminTokens?.() ?? 0) > 0;
      const locked = lockoutRefusal(checked.summary, hadAdmin, flags);
      if (locked !== null) throw refuse(locked, c);
      return checked.config !== undefined && runtime.applyChecked !== undefined
        ? runtime.applyChecked(yaml, checked.config)
        : runtime.applyConfig(yaml);
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
    const pending = outcome.pendingRestart ?? [];
    log.info("configuration applied", {
      token: principal,
      etag: outcome.etag,
      ...(pending.length > 0 ? { pendingRestart: pending } : {}),
    });
    const headers = { ...JSON_HEADERS, ETag: quote(outcome.etag) };
    // 202: applied as configuration, but part of it waits for a restart.
    if (pending.length > 0) return c.json({ etag: outcome.etag, pendingRestart: pending }, 202, headers);
    return c.json({ etag: outcome.etag }, 200, headers);
  });

  app.openapi(routes.validateConfig, async (c) => {
    checkYamlContentType(c.req.header("content-type"));
    const flags = { allowEmpty: flag(c, "allowEmpty"), allowNoAdmin: flag(c, "allowNoAdmin") };
    const yaml = await readYaml(c.req.raw, limit).catch((e) => {
      throw e instanceof ApiError ? refuse(e, c) : e;
    });
    // A read token may ask: the work is bounded (size, depth, documents, nodes, time, one at a
    // time with a short queue) and runs off the main thread.
    const verdict = await checker.check(yaml, { wantConfig: false });
    const over = budgetRefusal(verdict, limit);
    if (over !== null) throw refuse(over, c);
    if (verdict.kind === "invalid") {
      return c.json(
        {
          valid: false,
          problems: verdict.problems,
          ...(verdict.omitted > 0 ? { omitted: verdict.omitted } : {}),
        },
        200,
        JSON_HEADERS,
      );
    }
    if (verdict.kind !== "valid") throw new ApiError(500, "InternalError", "unexpected validation verdict");
    // The dry run predicts PUT, lockout guards included.
    const locked = lockoutRefusal(verdict.summary, (runtime.configAdminTokens?.() ?? 0) > 0, flags);
    if (locked !== null) {
      const problem: Problem = {
        file: "<request>",
        line: 0,
        field: "-",
        message: locked.message,
        pointer: "",
      };
      return c.json({ valid: false, problems: [problem] }, 200, JSON_HEADERS);
    }
    return c.json({ valid: true, problems: [] }, 200, JSON_HEADERS);
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
        "PayloadTooLarge (any route, declared or streamed; Connection: close), 415 " +
        "UnsupportedMediaType, 422 (budgets: TooDeep, TooManyDocuments, TooManyNodes, " +
        "ValidationTimeout; lockout guards: EmptyConfig, NoAdminToken), 428 PreconditionRequired, " +
        "503 Busy (with Retry-After). A refused request changes nothing, and is logged and counted " +
        "(vipd_api_refusals_total{reason}). Manifest bodies are parsed off the main thread, in a " +
        "worker, after a pre-scan (1 MiB, 20,000 documents, depth 64, 200,000 nodes), within 30 s, " +
        "one at a time. Open without a token: /livez, /readyz, /healthz, / and /docs; /metrics as " +
        "configured.",
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
