/**
 * Configuration routes: `GET /api/v1/config` (admin: manifests may hold BGP passwords; JSON or
 * YAML by Accept, ETag, 304 on If-None-Match), `PUT /api/v1/config` (admin: replace the whole
 * manifest set atomically) and `POST /api/v1/config/validate` (read: a dry run).
 *
 * PUT and the dry run check, in this order: 415 (media type) → 428 (If-Match missing, PUT) →
 * 413 (size, streamed) → 400 (not UTF-8) → 412 (stale ETag, before any parsing, PUT) → the body
 * worker (src/api/body-check.ts: 422 budget refusals with the line, 503 Busy, 400 invalid
 * manifests with at most 200 problems) → 412 again under the write lock → 422 lockout guards
 * (EmptyConfig, NoAdminToken; their `?allow...=true` flags) → apply (200, or 202 with
 * `pendingRestart`). The dry run predicts PUT, guards included, and answers 200 either way.
 */

import type { CheckVerdict } from "../body-check.ts";
import type { ConfigSummary } from "../body-protocol.ts";
import type { ApiContext, RouteModule } from "../context.ts";
import { ApiError, CLOSE, JSON_HEADERS, quote } from "../context.ts";
import { negotiate, parseEtagList, strongMatch, weakMatch } from "../http.ts";
import { checkYamlContentType, flag, readYaml, readYamlBytes } from "../request-body.ts";
import { routes, rule } from "../routes.ts";
import type { Problem } from "../runtime.ts";

/**
 * The guards against a change that locks the operator out: an empty set (every Service released,
 * every token gone, reads open), or a set without an admin token when the running one has one.
 * Each needs its explicit flag. Returns the refusal, or null.
 */
export function lockoutRefusal(
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
export function budgetRefusal(v: CheckVerdict, limit: number): ApiError | null {
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

function invalidConfig(problems: Problem[], omitted = 0): ApiError {
  const total = problems.length - (omitted > 0 ? 1 : 0) + omitted;
  return new ApiError(
    400,
    "InvalidConfig",
    `the manifest set has ${total} problem(s)`,
    {},
    { problems, ...(omitted > 0 ? { omitted } : {}) },
  );
}

function mountGet(app: Parameters<RouteModule["mount"]>[0], { runtime }: ApiContext): void {
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
}

function mountPut(app: Parameters<RouteModule["mount"]>[0], ctx: ApiContext): void {
  const { runtime, log, limit } = ctx;
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
      throw e instanceof ApiError ? ctx.refuse(e, c) : e;
    });
    const principal = c.get("principal");
    const checkEtag = async (): Promise<void> => {
      const current = quote((await runtime.config()).etag);
      if (tags !== "*" && !tags.some((t) => strongMatch(t, current))) {
        const msg = "the configuration changed since that ETag; GET it again";
        throw new ApiError(412, "PreconditionFailed", msg, { ETag: current });
      }
    };
    // A stale ETag is refused before any parsing (and checked again under the write lock).
    await checkEtag();
    // Parsed and validated off the main thread, within the budgets.
    const verdict = await ctx.checkers.apply.check(yaml, { wantConfig: true });
    const over = budgetRefusal(verdict, limit);
    if (over !== null) throw ctx.refuse(over, c);
    if (verdict.kind === "invalid") {
      log.info("configuration rejected", {
        token: principal,
        problems: verdict.problems.length + verdict.omitted,
      });
      throw invalidConfig(verdict.problems, verdict.omitted);
    }
    if (verdict.kind !== "valid") throw new ApiError(500, "InternalError", "unexpected validation verdict");
    const checked = verdict;
    const outcome = await ctx.withWriteLock(async () => {
      await checkEtag();
      // Checked under the lock, against the tokens in force at this moment.
      const hadAdmin = (runtime.configAdminTokens?.() ?? 0) > 0;
      const locked = lockoutRefusal(checked.summary, hadAdmin, flags);
      if (locked !== null) throw ctx.refuse(locked, c);
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
        { problems: outcome.problems },
      );
    }
    const pending = outcome.pendingRestart ?? [];
    log.info("configuration applied", {
      token: principal,
      etag: outcome.etag,
      ...(pending.length > 0 ? { pendingRestart: pending } : {}),
    });
    c.set("auditDetail", { etag: outcome.etag, ...(pending.length > 0 ? { pendingRestart: pending } : {}) });
    const headers = { ...JSON_HEADERS, ETag: quote(outcome.etag) };
    // 202: applied as configuration, but part of it waits for a restart.
    if (pending.length > 0) return c.json({ etag: outcome.etag, pendingRestart: pending }, 202, headers);
    return c.json({ etag: outcome.etag }, 200, headers);
  });
}

function mountValidate(app: Parameters<RouteModule["mount"]>[0], ctx: ApiContext): void {
  const { runtime, limit } = ctx;
  app.openapi(routes.validateConfig, async (c) => {
    checkYamlContentType(c.req.header("content-type"));
    const flags = { allowEmpty: flag(c, "allowEmpty"), allowNoAdmin: flag(c, "allowNoAdmin") };
    // The bytes go to the worker as they are (moved, not copied) and are decoded there.
    const body = await readYamlBytes(c.req.raw, limit).catch((e) => {
      throw e instanceof ApiError ? ctx.refuse(e, c) : e;
    });
    // A read token may ask: the work is bounded (size, depth, documents, nodes, time, one at a
    // time with a short queue) and runs off the main thread.
    const verdict = await ctx.checkers.dryRun.check(body, { wantConfig: false });
    const over = budgetRefusal(verdict, limit);
    if (over !== null) throw ctx.refuse(over, c);
    if (verdict.kind === "invalid") {
      const omitted = verdict.omitted > 0 ? { omitted: verdict.omitted } : {};
      return c.json({ valid: false, problems: verdict.problems, ...omitted }, 200, JSON_HEADERS);
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
}

export const configRoutes: RouteModule = {
  name: "config",
  rules: [
    rule(routes.getConfig, "admin", "json-or-yaml"),
    rule(routes.putConfig, "admin", "json"),
    rule(routes.validateConfig, "read", "json", { audit: false }),
  ],
  mount(app, ctx) {
    mountGet(app, ctx);
    mountPut(app, ctx);
    mountValidate(app, ctx);
  },
};
