/**
 * `GET /api/v1/site` (read role): the site as this member sees it — each member's generation
 * and table digest, who allocates, whether the site is consistent, the last partition heal with
 * every Service it re-addressed, and the site's counters. A route module (src/api/context.ts);
 * a node that is not part of a site answers 404.
 */

import { createRoute, z } from "@hono/zod-openapi";
import type { RouteModule } from "../api/context.ts";
import { ApiError, JSON_HEADERS } from "../api/context.ts";
import { API_PREFIX, rule } from "../api/routes.ts";
import type { ApiRuntime } from "../api/runtime.ts";
import { ErrorBody } from "../api/schemas.ts";
import type { SiteView } from "./view.ts";

/** The runtime of a node that may be part of a site (the appliance Daemon). */
export type SiteAwareRuntime = ApiRuntime & { site?: () => SiteView | undefined };

const AddressChange = z.object({
  service: z.string(),
  from: z.array(z.string()),
  to: z.array(z.string()),
});

export const SiteViewSchema = z
  .object({
    self: z.string(),
    phase: z
      .enum(["starting", "ready"])
      .openapi({ description: "ready: holds the site's table and may announce" }),
    allocator: z.string().nullable().openapi({ description: "The member that allocates for the site now" }),
    generation: z.number().int(),
    applied: z.number().int().openapi({
      description:
        "The generation this node's data path runs (applied after it was persisted, and only once the node is ready; 0 before); it follows `generation` shortly",
    }),
    madeBy: z
      .string()
      .nullable()
      .openapi({ description: "The member that made the snapshot this one holds" }),
    digest: z.string().openapi({ description: "Digest of the assignment table (16 hex digits)" }),
    configDigest: z.string(),
    consistent: z.boolean().openapi({
      description: "Every alive member holds the same generation and table digest as this one",
    }),
    localConfigDiffers: z.boolean().openapi({
      description: "This node's own file holds other site objects than the site (the site's win)",
    }),
    members: z.array(
      z.object({
        name: z.string(),
        self: z.boolean(),
        alive: z.boolean(),
        ready: z.boolean(),
        generation: z.number().int(),
        allocator: z.string(),
        digest: z.string(),
        via: z.enum(["site", "heartbeat"]).nullable().openapi({
          description:
            "Where this member's generation and digest come from: whichever it sent last of its site status and its membership heartbeat (null: this member, or not told yet)",
        }),
      }),
    ),
    lastHeal: z
      .object({ from: z.string(), to: z.string(), changes: z.array(AddressChange), msAgo: z.number() })
      .nullable()
      .openapi({
        description: "The last partition heal this member's snapshot lost, and what it re-addressed",
      }),
    counters: z.object({
      adopted: z.number().int(),
      heals: z.number().int(),
      readdressed: z.number().int(),
      committed: z.number().int(),
      stale: z.number().int(),
      refused: z.number().int(),
      noQuorum: z.number().int().openapi({
        description: "Writes refused because this member did not see a majority of the site alive",
      }),
    }),
  })
  .openapi("SiteView");

export const siteRoute = createRoute({
  method: "get",
  path: `${API_PREFIX}/site`,
  summary: "The site: each member's generation and table digest, who allocates, consistency, the last heal",
  tags: ["site"],
  security: [{ bearerAuth: [] }],
  responses: {
    200: {
      description: "The site as this member sees it",
      content: { "application/json": { schema: SiteViewSchema } },
    },
    401: {
      description: "Missing or unknown bearer token",
      content: { "application/json": { schema: ErrorBody } },
    },
    404: {
      description: "This node is not part of a site (NoSite)",
      content: { "application/json": { schema: ErrorBody } },
    },
    406: {
      description: "The Accept header excludes application/json",
      content: { "application/json": { schema: ErrorBody } },
    },
  },
});

export const siteRoutes: RouteModule = {
  name: "site",
  // Left out of the generic contract matrix: its 404 without a site is its own answer.
  rules: [rule(siteRoute, "read", "json", { contract: false })],
  mount(app, { runtime }) {
    app.openAPIRegistry.registerPath(siteRoute);
    app.get(siteRoute.path, (c) => {
      const view = (runtime as SiteAwareRuntime).site?.();
      if (view === undefined)
        throw new ApiError(
          404,
          "NotFound",
          "this node is not part of a site (a site needs cluster.keyFile, --state-dir and other members)",
        );
      return c.json(view, 200, JSON_HEADERS);
    });
  },
};
