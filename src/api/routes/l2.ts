/**
 * Layer-2 action route (admin): `POST /api/v1/l2/failover`, a forced failover — this node
 * declines a VIP it owns so another eligible node takes it, or withdraws that decline. The body
 * is a small JSON FailoverRequest, documented from the route but parsed here so a wrong media
 * type or size is refused with this API's own errors before the body is read. Its tests:
 * test/unit/cluster-api.test.ts.
 */

import type { RouteModule } from "../context.ts";
import { ApiError, JSON_HEADERS } from "../context.ts";
import { readJson } from "../request-body.ts";
import { routes, rule } from "../routes.ts";
import { FailoverRequest } from "../schemas.ts";

export const l2Routes: RouteModule = {
  name: "l2",
  rules: [rule(routes.l2Failover, "admin", "json", { contract: false })],
  mount(app, ctx) {
    const { runtime, log } = ctx;
    app.openAPIRegistry.registerPath(routes.l2Failover);
    app.post(routes.l2Failover.path, async (c) => {
      const parsed = await readJson(c.req.raw, ctx.limit);
      const req = FailoverRequest.safeParse(parsed);
      if (!req.success) {
        const first = req.error.issues[0];
        const msg = first ? `${first.path.join(".") || "body"}: ${first.message}` : "bad request";
        throw ctx.refuse(new ApiError(400, "BadRequest", msg), c);
      }
      c.set("auditDetail", { ...req.data });
      if (runtime.l2Failover === undefined)
        throw new ApiError(409, "NoCluster", "this node has no layer-2 election to change");
      const principal = c.get("principal");
      const out = await ctx.withWriteLock(async () => runtime.l2Failover?.(req.data));
      if (out === undefined || !out.ok) {
        const r = out ?? {
          status: 409 as const,
          error: "NoCluster" as const,
          message: "no layer-2 election",
        };
        throw new ApiError(r.status, r.error, r.message);
      }
      const { ok: _ok, ...result } = out;
      log.info("forced failover", { token: principal, ...result });
      c.set("auditDetail", { ...result });
      return c.json(result, 200, JSON_HEADERS);
    });
  },
};
