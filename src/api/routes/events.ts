/**
 * The watch stream (read role): `GET /api/v1/events`, Server-Sent Events of what changes on this
 * node — `assignment`, `ownership`, `bgp-session`, `bfd-session`, `config`, `update` (the types
 * of src/events/hub.ts) — with ids to resume from (`Last-Event-ID`), heartbeats, and bounded
 * memory per watcher (src/api/watch.ts). `?types=ownership,config` keeps only those types.
 * 406 when Accept excludes text/event-stream; 503 Busy when the watchers are all taken; 400 for
 * an unknown type. Its tests: test/unit/api-events.test.ts.
 */

import { createRoute, z } from "@hono/zod-openapi";
import { EVENT_TYPES, type EventType } from "../../events/hub.ts";
import type { RouteModule } from "../context.ts";
import { ApiError } from "../context.ts";
import { acceptQuality } from "../http.ts";
import { API_PREFIX, rule } from "../routes.ts";
import { ErrorBody } from "../schemas.ts";

const err = (description: string) => ({
  description,
  content: { "application/json": { schema: ErrorBody } },
});

export const eventsRoute = createRoute({
  method: "get",
  path: `${API_PREFIX}/events`,
  summary: "Watch stream: what changes on this node, as Server-Sent Events",
  description:
    'Frames `id: <epoch>-<seq>`, `event: <type>`, `data: {"time", "data"}`; types: ' +
    `${EVENT_TYPES.join(", ")}. The stream opens with \`hello\` (its id is the resume point). ` +
    "Reconnect with `Last-Event-ID` to get what was missed; when that is no longer buffered (or " +
    "the node restarted) the stream opens with `reset` instead: re-read the state, then follow. " +
    "A comment line (`: heartbeat`) every 5 s. A watcher that stops reading is cut off once the " +
    "buffer moves past it (its connection closes).",
  tags: ["state"],
  security: [{ bearerAuth: [] }],
  request: {
    query: z.object({
      types: z
        .string()
        .optional()
        .openapi({
          description: `Comma-separated event types to keep (default all): ${EVENT_TYPES.join(", ")}`,
        }),
    }),
    headers: z.object({
      "last-event-id": z.string().optional().openapi({ description: "The id of the last event received" }),
    }),
  },
  responses: {
    200: { description: "The event stream", content: { "text/event-stream": { schema: z.string() } } },
    400: err("An unknown event type in ?types"),
    401: err("Missing or unknown bearer token"),
    406: err("The Accept header excludes text/event-stream"),
    503: err("Too many watchers (Busy, with Retry-After)"),
  },
});

function parseTypes(q: string | undefined): ReadonlySet<EventType> | null {
  if (q === undefined) return null;
  const out = new Set<EventType>();
  for (const t of q.split(",")) {
    if (!(EVENT_TYPES as readonly string[]).includes(t))
      throw new ApiError(
        400,
        "BadRequest",
        `?types: ${JSON.stringify(t)} is not one of ${EVENT_TYPES.join(", ")}`,
      );
    out.add(t as EventType);
  }
  return out;
}

export const eventRoutes: RouteModule = {
  name: "events",
  rules: [rule(eventsRoute, "read", "event-stream", { contract: false })],
  mount(app, ctx) {
    app.openAPIRegistry.registerPath(eventsRoute);
    app.get(eventsRoute.path, (c) => {
      if (acceptQuality(c.req.header("accept"), "text", "event-stream") <= 0)
        throw new ApiError(406, "NotAcceptable", "this route answers text/event-stream only");
      const types = parseTypes(c.req.query("types"));
      const stream = ctx.watchers.open(c.req.header("last-event-id"), types);
      if (stream === null) {
        const n = ctx.watchers.limits.maxWatchers;
        throw new ApiError(503, "Busy", `${n} watchers are connected already; retry later`, {
          "Retry-After": "5",
        });
      }
      return new Response(stream, {
        status: 200,
        headers: {
          "Content-Type": "text/event-stream; charset=utf-8",
          "Cache-Control": "no-store",
          "X-Content-Type-Options": "nosniff",
          "X-Accel-Buffering": "no",
        },
      });
    });
  },
};
