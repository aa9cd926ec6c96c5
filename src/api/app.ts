/**
 * The vipd HTTP API as a Hono app, built against an injected `ApiRuntime` (no driver knowledge).
 *
 * `createApp` puts together: the gate every request passes before any handler runs (src/api/gate.ts:
 * 413 declared body over the limit → 404 → 405 + Allow → 401 → 403 → 406), then the route
 * modules (src/api/routes/index.ts: health, state, layer-2 actions, configuration, the watch
 * stream, the audit log, pages), each
 * mounted with one shared context (src/api/context.ts). The body-reading rules of the manifest
 * routes (415 → 428 → 413 → 400 → 412 → body worker → 412 under the lock → 422 guards → apply)
 * are in src/api/routes/config.ts.
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
import { Counter, Gauge } from "prom-client";
import { BODY_LIMITS } from "../config/budget.ts";
import { EventHub } from "../events/hub.ts";
import { createLogger, type Logger } from "../util/log.ts";
import { AuditLog } from "./audit.ts";
import type { TokenConfig } from "./auth.ts";
import { BodyChecker, type BodyCheckerOptions } from "./body-check.ts";
import { type ApiContext, type Env, errorResponse, type RouteModule } from "./context.ts";
import { createGate } from "./gate.ts";
import { ApiError } from "./http.ts";
import { createApiMetrics } from "./metrics.ts";
import { ROUTE_MODULES } from "./routes/index.ts";
import type { ApiRuntime } from "./runtime.ts";
import type { FrontEvent } from "./tls-front.ts";
import { Watchers, type WatchLimits } from "./watch.ts";

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
  /** What changed on this node, for the watch stream; default: a hub of this app's own. */
  events?: EventHub;
  /** The audit log of changes made through the API; default: one of this app's own (1000 entries). */
  audit?: AuditLog;
  /** Limits of the watch stream (heartbeat interval, watchers at once...); see src/api/watch.ts. */
  watch?: Partial<WatchLimits>;
  /** The route modules to mount; default ROUTE_MODULES (tests may add their own). */
  modules?: readonly RouteModule[];
  log?: Logger;
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

/** The context every route module is mounted with. */
function createContext(runtime: ApiRuntime, opts: AppOptions, log: Logger, limit: number): ApiContext {
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
  const events = opts.events ?? new EventHub();
  const watchers = new Watchers(events, opts.watch, log);
  new Gauge({
    name: "vipd_api_watchers",
    help: "Watch streams (GET /api/v1/events) open now",
    registers: [metrics.registry],
    collect() {
      this.set(watchers.stats().watchers);
    },
  });
  new Counter({
    name: "vipd_api_watchers_cut_off_total",
    help: "Watch streams closed because the watcher read too slowly (fell behind the event buffer)",
    registers: [metrics.registry],
    collect() {
      this.reset();
      this.inc(watchers.stats().cutOff);
    },
  });
  return {
    runtime,
    limit,
    log,
    metrics,
    refuse: (e: ApiError, c: Context<Env>): ApiError => {
      refusals.inc({ reason: e.code });
      const { method, path } = c.req;
      log.warn("request refused", { method, path, status: e.status, error: e.code, message: e.message });
      return e;
    },
    withWriteLock: createLock(),
    checkers: { dryRun: newChecker(), apply: newChecker() },
    events,
    audit: opts.audit ?? new AuditLog(),
    watchers,
  };
}

export function createApp(
  runtime: ApiRuntime,
  opts: AppOptions,
): OpenAPIHono<Env> & { frontEvent(e: FrontEvent): void } {
  const limit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  if (!Number.isInteger(limit) || limit <= 0) throw new Error("bodyLimit: must be a positive integer");
  const log = opts.log ?? createLogger("api");
  const modules = opts.modules ?? ROUTE_MODULES;
  const ctx = createContext(runtime, opts, log, limit);
  const gate = createGate(
    ctx,
    modules.flatMap((m) => m.rules),
    opts,
  );
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
  app.use("*", gate);
  for (const m of modules) m.mount(app, ctx);
  // What the TLS front (./tls-front.ts, mutual TLS) refused before a request reached the app.
  const frontEvent = (e: FrontEvent): void => {
    if (e.kind === "tlsRejected") {
      log.warn("client certificate refused", { peer: e.peer, reason: e.reason, detail: e.detail });
      ctx.metrics.tlsRejected(e.reason);
    } else if (e.kind === "unknownMethod") {
      log.warn("request refused", { peer: e.peer, method: e.method, status: 501, error: "NotImplemented" });
      ctx.metrics.observeRequest("other", "unmatched", 501, 0);
    } else if (e.kind === "badRequest") {
      log.warn("request refused", { peer: e.peer, status: e.status, detail: e.detail });
      ctx.metrics.observeRequest("other", "unmatched", e.status, 0);
    } else log.error("cannot pass a verified connection to the API", { peer: e.peer, error: e.detail });
  };
  return Object.assign(app, { frontEvent });
}
