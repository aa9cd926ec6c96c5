/**
 * State routes (read role): the status summary, and the lists — Services, pools, layer-2
 * announcements and elections, cluster members, BGP peers, BFD sessions — and the XDP view.
 * Every byte comes from the runtime; a list a driver has not filled in yet is empty. Lists are
 * paged (`?limit`, `?continue`: src/api/paging.ts), ordered by the key given here.
 */

import type { Context } from "hono";
import type { Env, RouteModule } from "../context.ts";
import { JSON_HEADERS } from "../context.ts";
import { type Page, paginate, parsePage } from "../paging.ts";
import { routes, rule } from "../routes.ts";

/** One page of a list, from the request's `limit` and `continue`. */
function page<T>(c: Context<Env>, list: string, items: readonly T[], key: (t: T) => string): Page<T> {
  const q = parsePage(list, c.req.query("limit"), c.req.query("continue"));
  return paginate(list, items, key, q);
}

export const stateRoutes: RouteModule = {
  name: "state",
  rules: [
    rule(routes.status, "read", "json"),
    rule(routes.services, "read", "json"),
    rule(routes.pools, "read", "json"),
    rule(routes.l2, "read", "json"),
    rule(routes.l2Elections, "read", "json"),
    rule(routes.clusterMembers, "read", "json"),
    rule(routes.bgpPeers, "read", "json"),
    rule(routes.bfdSessions, "read", "json"),
    rule(routes.xdp, "read", "json"),
  ],
  mount(app, { runtime }) {
    const ok = JSON_HEADERS;
    app.openapi(routes.status, async (c) => c.json(await runtime.status(), 200, ok));
    app.openapi(routes.services, async (c) =>
      c.json(
        page(c, "services", await runtime.services(), (s) => `${s.namespace}/${s.name}`),
        200,
        ok,
      ),
    );
    app.openapi(routes.pools, async (c) =>
      c.json(
        page(c, "pools", await runtime.pools(), (p) => p.name),
        200,
        ok,
      ),
    );
    app.openapi(routes.l2, async (c) =>
      c.json(
        page(c, "l2", await runtime.l2(), (a) => `${a.ip} ${a.interface} ${a.node}`),
        200,
        ok,
      ),
    );
    app.openapi(routes.l2Elections, async (c) =>
      c.json(
        page(c, "l2elections", (await runtime.l2Elections?.()) ?? [], (e) => e.ip),
        200,
        ok,
      ),
    );
    app.openapi(routes.clusterMembers, async (c) =>
      c.json(
        page(c, "members", (await runtime.clusterMembers?.()) ?? [], (m) => m.name),
        200,
        ok,
      ),
    );
    app.openapi(routes.bgpPeers, async (c) =>
      c.json(
        page(c, "bgppeers", await runtime.bgpPeers(), (p) => `${p.address} ${p.name ?? ""}`),
        200,
        ok,
      ),
    );
    app.openapi(routes.bfdSessions, async (c) => {
      const key = (s: { peer: string; local?: string | undefined; interface?: string | undefined }) =>
        `${s.peer} ${s.local ?? ""} ${s.interface ?? ""}`;
      return c.json(page(c, "bfdsessions", await runtime.bfdSessions(), key), 200, ok);
    });
    app.openapi(routes.xdp, async (c) => c.json(await runtime.xdp(), 200, ok));
  },
};
