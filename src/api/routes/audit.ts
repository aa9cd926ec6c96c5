/**
 * The audit log over the API (admin): `GET /api/v1/audit`, every change attempted through the
 * API by an authenticated caller — token name and role, method and path, time, status, result,
 * what it did — oldest first, paged like the other lists (`?limit`, `?continue`). Admin only: it
 * names the tokens and who changed what, as the configuration (admin) does. The log is in
 * memory and bounded (src/api/audit.ts): `dropped` says how many older entries are gone.
 */

import { createRoute, z } from "@hono/zod-openapi";
import type { RouteModule } from "../context.ts";
import { ApiError, JSON_HEADERS } from "../context.ts";
import { encodeContinue, parsePage } from "../paging.ts";
import { API_PREFIX, pageQuery, rule } from "../routes.ts";
import { ErrorBody, ListMeta } from "../schemas.ts";

const AuditEntry = z
  .object({
    seq: z.number().int().positive(),
    time: z.string().openapi({ description: "ISO 8601, UTC" }),
    token: z.string().openapi({ description: "The token's name" }),
    role: z.string(),
    method: z.string(),
    path: z.string(),
    status: z.number().int(),
    result: z.enum(["ok", "refused", "failed"]),
    error: z.string().optional().openapi({ description: "The refusal's error code" }),
    detail: z.record(z.string(), z.unknown()).optional().openapi({ description: "What the change did" }),
  })
  .openapi("AuditEntry");

const AuditList = z
  .object({
    items: z.array(AuditEntry),
    dropped: z.number().int().nonnegative().openapi({ description: "Older entries no longer kept" }),
    metadata: ListMeta.optional(),
  })
  .openapi("AuditList");

const err = (description: string) => ({
  description,
  content: { "application/json": { schema: ErrorBody } },
});

export const auditRoute = createRoute({
  method: "get",
  path: `${API_PREFIX}/audit`,
  summary: "Audit log: every change attempted through the API (admin)",
  description:
    "Who (token name, role), what (method, path, detail), when, and the result, oldest first. Changes " +
    "refused for a missing or unknown token (401) are not recorded (they are counted in " +
    "vipd_api_auth_failures_total); dry runs are not changes. Kept in memory, the last 1000.",
  tags: ["state"],
  security: [{ bearerAuth: [] }],
  request: { query: pageQuery },
  responses: {
    200: { description: "The audit log", content: { "application/json": { schema: AuditList } } },
    400: err("limit or continue is invalid"),
    401: err("Missing or unknown bearer token"),
    403: err("The token's role is not admin"),
    406: err("The Accept header excludes application/json"),
  },
});

export const auditRoutes: RouteModule = {
  name: "audit",
  rules: [rule(auditRoute, "admin", "json")],
  mount(app, { audit }) {
    app.openAPIRegistry.registerPath(auditRoute);
    app.get(auditRoute.path, (c) => {
      const q = parsePage("audit", c.req.query("limit"), c.req.query("continue"));
      if (q.after !== null && !/^[0-9]{1,15}$/.test(q.after))
        throw new ApiError(400, "BadRequest", "?continue is not a continue token of this list (audit)");
      const afterSeq = q.after === null ? 0 : Number(q.after);
      const items = audit.list({ afterSeq, limit: q.limit });
      const remaining = audit.remainingAfter(afterSeq) - items.length;
      const last = items[items.length - 1];
      const metadata =
        remaining > 0 && last !== undefined
          ? {
              metadata: {
                continue: encodeContinue("audit", String(last.seq)),
                remainingItemCount: remaining,
              },
            }
          : {};
      return c.json({ items, dropped: audit.stats().dropped, ...metadata }, 200, JSON_HEADERS);
    });
  },
};
