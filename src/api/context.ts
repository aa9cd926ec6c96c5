/**
 * What the API's parts share: the Hono environment (who is calling), the context every route
 * module is mounted with (runtime, limits, log, the write lock, the event hub, the audit log),
 * the shape of a route module, and the JSON refusal rendering.
 *
 * A route module is `{ name, rules, mount(app, ctx) }`: `rules` are its rows of the access table
 * (src/api/routes.ts `RouteRule`: method, path, who may call it, what it answers with), which
 * the gate (src/api/gate.ts) reads before any handler runs; `mount` registers the handlers. A
 * path without a rule answers 404, whatever `mount` registered.
 */

import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { EventHub, JsonValue } from "../events/hub.ts";
import type { Logger } from "../util/log.ts";
import type { AuditLog } from "./audit.ts";
import type { Role } from "./auth.ts";
import type { BodyChecker } from "./body-check.ts";
import { ApiError } from "./http.ts";
import type { ApiMetrics } from "./metrics.ts";
import type { RouteRule } from "./routes.ts";
import type { ApiRuntime } from "./runtime.ts";
import type { Watchers } from "./watch.ts";

export type Env = {
  Variables: {
    role: Role | null;
    principal: string;
    /** What a change did, for the audit log (set by the handler; small). */
    auditDetail: { [key: string]: JsonValue };
    /** The error code of the refusal rendered for this request, for the audit log. */
    errorCode: string;
  };
};

export type ApiApp = OpenAPIHono<Env>;

export interface ApiContext {
  runtime: ApiRuntime;
  /** Largest request body in bytes. */
  limit: number;
  log: Logger;
  metrics: ApiMetrics;
  /** Logs and counts a refusal (vipd_api_refusals_total{reason}); returns it to throw. */
  refuse(e: ApiError, c: Context<Env>): ApiError;
  /** Runs changes one at a time (the ETag check and the apply it guards). */
  withWriteLock<T>(fn: () => Promise<T>): Promise<T>;
  /** Body workers: one for dry runs (read role), one for PUTs, so a flood of one never blocks the other. */
  checkers: { dryRun: BodyChecker; apply: BodyChecker };
  /** What changed on this node, for the watch stream. */
  events: EventHub;
  /** Every change made through the API. */
  audit: AuditLog;
  /** The watch streams over `events`. */
  watchers: Watchers;
}

export interface RouteModule {
  name: string;
  rules: readonly RouteRule[];
  mount(app: ApiApp, ctx: ApiContext): void;
}

export const JSON_HEADERS = { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" };

/** `Connection: close` on a 413: the rest of an oversized body is not read, so the connection ends. */
export const CLOSE = { Connection: "close" };

/** An entity tag as a quoted header value. */
export function quote(etag: string): string {
  return `"${etag.replace(/["\\]/g, "")}"`;
}

export function errorResponse(c: Context<Env>, e: ApiError): Response {
  c.set("errorCode", e.code);
  return c.json({ error: e.code, message: e.message, ...e.extra }, e.status, {
    ...JSON_HEADERS,
    ...e.headers,
  });
}

export { ApiError };
