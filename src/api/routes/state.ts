/**
 * State routes (read role): the status summary, and the lists — Services, pools, layer-2
 * announcements and elections, cluster members, BGP peers, BFD sessions — and the XDP view.
 * Every byte comes from the runtime; a list a driver has not filled in yet is empty.
 */

import type { RouteModule } from "../context.ts";
import { JSON_HEADERS } from "../context.ts";
import { routes, rule } from "../routes.ts";

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
    app.openapi(routes.bgpPeers, async (c) => c.json({ items: await runtime.bgpPeers() }, 200, JSON_HEADERS));
    app.openapi(routes.bfdSessions, async (c) =>
      c.json({ items: await runtime.bfdSessions() }, 200, JSON_HEADERS),
    );
    app.openapi(routes.xdp, async (c) => c.json(await runtime.xdp(), 200, JSON_HEADERS));
  },
};
