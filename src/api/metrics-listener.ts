/**
 * The metrics listener: a second socket for Prometheus (MetalLB's port is 7472) that serves only
 * `GET /metrics` and `GET /livez`, by handing those two requests to the API app. Everything else
 * gets a JSON 404, so binding it to the node's address (host network) exposes no state, no
 * configuration and no mutation, while the full API stays on loopback.
 *
 * @example
 * const m = serveApi(metricsOnly(app), { listen: "[10.0.0.5]:7472" });
 */

import type { FetchApp } from "./serve.ts";

export const METRICS_ONLY_PATHS = ["/metrics", "/livez"] as const;

export function metricsOnly(app: FetchApp): FetchApp {
  return {
    fetch(req: Request) {
      const path = new URL(req.url).pathname;
      if ((METRICS_ONLY_PATHS as readonly string[]).includes(path)) {
        if (req.method === "GET" || req.method === "HEAD") return app.fetch(req);
        return Response.json(
          { error: "MethodNotAllowed", message: `${req.method} ${path}: this listener answers GET only` },
          { status: 405, headers: { allow: "GET, HEAD" } },
        );
      }
      return Response.json(
        {
          error: "NotFound",
          message: `${path}: the metrics listener serves only ${METRICS_ONLY_PATHS.join(" and ")}; the API is on its own listener`,
        },
        { status: 404 },
      );
    },
  };
}
