/**
 * The API's route modules, in mounting order. Each module (`RouteModule`, src/api/context.ts)
 * brings its rows of the access table (`rules`) and its handlers (`mount(app, ctx)`); the gate
 * reads the rules of every module listed here, so a route cannot be served without saying who
 * may call it.
 *
 * A module of a part above the API (the appliance's site routes, src/site/routes.ts; the system
 * update routes) is passed by its entry point in createApp's `modules` (src/appliance/run.ts),
 * so the API imports nothing above it. Mounting a new module of the API's own is one line in
 * ROUTE_MODULES (plus its import), e.g.
 *   import { systemRoutes } from "../system-routes.ts";
 *   ... ROUTE_MODULES = [healthRoutes, ..., systemRoutes, pageRoutes]
 * A rule with `contract: false` (actions with their own JSON body, streams, routes acting on the
 * machine) is left out of the generic contract tests' auth matrix (test/unit/api-contract.test.ts),
 * which calls every other route with every role and a manifest body; test such routes with the
 * module (app.request, as test/unit/api-routes.test.ts does).
 */

import type { RouteModule } from "../context.ts";
import type { RouteRule } from "../routes.ts";
import { auditRoutes } from "./audit.ts";
import { configRoutes } from "./config.ts";
import { eventRoutes } from "./events.ts";
import { healthRoutes } from "./health.ts";
import { l2Routes } from "./l2.ts";
import { pageRoutes } from "./pages.ts";
import { stateRoutes } from "./state.ts";

export const ROUTE_MODULES: readonly RouteModule[] = [
  healthRoutes,
  stateRoutes,
  l2Routes,
  configRoutes,
  eventRoutes,
  auditRoutes,
  pageRoutes,
];

/** Every rule of the modules above. */
export const ALL_RULES: readonly RouteRule[] = ROUTE_MODULES.flatMap((m) => m.rules);

/** The rules the generic contract tests call with every role and a manifest body. */
export const RULES: readonly RouteRule[] = ALL_RULES.filter((r) => r.contract !== false);
