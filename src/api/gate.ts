/**
 * The gate every request passes before any handler runs, in this order:
 *   413 declared body over the limit (any route; the route's `maxBody` or the app's `bodyLimit`;
 *   Connection: close) → 404 unknown path →
 *   405 wrong method (+ Allow) → 401 no/unknown token → 403 role too low → 406 Accept without
 *   JSON (JSON routes).
 * It reads one table of route rules (each route module's `rules`), so a route cannot be served
 * without saying who may use it. It also counts and times every request (vipd_api_requests_*),
 * and records every change attempted by an authenticated caller in the audit log (src/api/audit.ts).
 *
 * Tokens come from a list or a function read on every request (a reload rotates them without a
 * restart); they are recompiled only when the list changes, and a malformed entry is left out
 * and logged once, never turned into a 500 on every request.
 * Requests without a Host header are made whole before they reach the app (src/api/serve.ts).
 */

import type { Context, Next } from "hono";
import {
  allows,
  authenticate,
  compileTokens,
  compileTokensLenient,
  type Role,
  type TokenConfig,
} from "./auth.ts";
import { type ApiContext, CLOSE, type Env, errorResponse } from "./context.ts";
import { ApiError, acceptQuality } from "./http.ts";
import { type RouteRule, routeTable } from "./routes.ts";

export interface GateOptions {
  tokens: TokenConfig[] | (() => TokenConfig[]);
  metricsOpen: boolean;
  readOpen?: boolean | (() => boolean) | undefined;
}

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
/** Metric label for a method: clients choose it, so unknown ones share one value. */
const methodLabel = (m: string): string => (METHODS.has(m) ? m : "other");

/**
 * The compiled tokens, read through `current()`. A fixed list is checked strictly, at creation
 * (it throws on a malformed entry); a live one (read from the configuration) leniently.
 */
export function tokenSource(tokens: GateOptions["tokens"], log: ApiContext["log"]) {
  const read = typeof tokens === "function" ? tokens : () => tokens;
  if (Array.isArray(tokens)) compileTokens(tokens);
  let key = "";
  let compiled = compileTokensLenient([]).tokens;
  return {
    current() {
      const list = read();
      const k = JSON.stringify(list);
      if (k !== key) {
        const c = compileTokensLenient(list);
        for (const problem of c.problems) log.error("API token ignored", { problem });
        compiled = c.tokens;
        key = k;
      }
      return compiled;
    },
  };
}

/** Authenticates and authorizes a request for `rule`: sets role and principal, or throws 401/403. */
function admit(
  c: Context<Env>,
  rule: RouteRule,
  ctx: ApiContext,
  tokens: ReturnType<typeof tokenSource>,
  opts: GateOptions,
): void {
  const readOpen = typeof opts.readOpen === "function" ? opts.readOpen() : opts.readOpen === true;
  const open =
    rule.access === "open" ||
    (rule.access === "metrics" && opts.metricsOpen) ||
    (rule.access === "read" && readOpen);
  c.set("role", null);
  c.set("principal", "anonymous");
  if (open) return;
  const auth = authenticate(c.req.header("authorization"), tokens.current());
  if (!auth.ok) {
    ctx.metrics.authFailure(auth.reason);
    ctx.log.warn("authentication failed", { reason: auth.reason, method: c.req.method, path: c.req.path });
    const challenge =
      auth.reason === "MissingToken" ? 'Bearer realm="vipd"' : 'Bearer realm="vipd", error="invalid_token"';
    throw new ApiError(401, "Unauthorized", "a valid bearer token is required", {
      "WWW-Authenticate": challenge,
    });
  }
  c.set("principal", auth.name);
  c.set("role", auth.role);
  const need: Role = rule.access === "admin" ? "admin" : "read";
  if (!allows(auth.role, need)) {
    ctx.metrics.authFailure("InsufficientRole");
    ctx.log.warn("authorization failed", { token: auth.name, method: c.req.method, path: c.req.path });
    throw new ApiError(403, "Forbidden", `this needs the ${need} role; the token has ${auth.role}`);
  }
}

/** Records a change attempted by an authenticated caller (see src/api/audit.ts for which). */
function audit(c: Context<Env>, rule: RouteRule | undefined, ctx: ApiContext, status: number): void {
  if (rule === undefined || rule.method === "GET" || rule.audit === false) return;
  const role = c.get("role");
  if (role === null || role === undefined) return;
  ctx.audit.record({
    token: c.get("principal"),
    role,
    method: rule.method,
    path: rule.path,
    status,
    error: c.get("errorCode"),
    detail: c.get("auditDetail"),
  });
}

/** The gate as a Hono middleware over the rules of every mounted route module. */
export function createGate(ctx: ApiContext, rules: readonly RouteRule[], opts: GateOptions) {
  const lookup = routeTable(rules);
  const tokens = tokenSource(opts.tokens, ctx.log);
  if (tokens.current().length === 0) {
    ctx.log.warn(
      "no API tokens configured: only the probes, the pages and (if open) metrics and reads answer",
    );
  }
  return async (c: Context<Env>, next: Next): Promise<void> => {
    const t0 = performance.now();
    const found = lookup(c.req.method, c.req.path);
    const routeLabel = found.kind === "notFound" ? "unmatched" : c.req.path; // a known path: bounded
    const rule = found.kind === "found" ? found.rule : undefined;
    const done = (status: number): void => {
      const seconds = (performance.now() - t0) / 1000;
      ctx.metrics.observeRequest(methodLabel(c.req.method), routeLabel, status, seconds);
      audit(c, rule, ctx, status);
      if (ctx.log.enabled("debug")) {
        const ms = Math.round(seconds * 1e4) / 10;
        ctx.log.debug("request", { method: c.req.method, path: c.req.path, status, ms });
      }
    };
    try {
      const declared = c.req.header("content-length");
      const max = rule?.maxBody ?? ctx.limit;
      if (declared !== undefined && /^[0-9]+$/.test(declared.trim()) && Number(declared) > max) {
        const msg = `the body (${declared} bytes) exceeds the limit of ${max} bytes`;
        throw ctx.refuse(new ApiError(413, "PayloadTooLarge", msg, CLOSE), c);
      }
      if (found.kind === "notFound") throw new ApiError(404, "NotFound", `no route ${c.req.path}`);
      if (found.kind === "methodNotAllowed") {
        throw new ApiError(405, "MethodNotAllowed", `${c.req.method} is not allowed on ${c.req.path}`, {
          Allow: found.allow.join(", "),
        });
      }
      admit(c, found.rule, ctx, tokens, opts);
      if (
        found.rule.produces === "json" &&
        acceptQuality(c.req.header("accept"), "application", "json") <= 0
      ) {
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
  };
}
