/**
 * Health routes: `/livez` and `/healthz` (the process serves requests), `/readyz` (configuration
 * loaded and every driver healthy, else 503 with the reasons), and `/metrics` (Prometheus text,
 * open or bearer-protected as configured).
 */

import type { RouteModule } from "../context.ts";
import { JSON_HEADERS } from "../context.ts";
import { routes, rule } from "../routes.ts";

export const healthRoutes: RouteModule = {
  name: "health",
  rules: [
    rule(routes.livez, "open", "json"),
    rule(routes.healthz, "open", "json"),
    rule(routes.readyz, "open", "json"),
    rule(routes.metrics, "metrics", "text"),
  ],
  mount(app, { runtime, metrics }) {
    app.openapi(routes.livez, (c) => c.json({ status: "ok" as const }, 200, JSON_HEADERS));
    app.openapi(routes.healthz, (c) => c.json({ status: "ok" as const }, 200, JSON_HEADERS));
    app.openapi(routes.readyz, async (c) => {
      const st = await runtime.status();
      const reasons: string[] = [...((await runtime.waitingFor?.()) ?? [])];
      if (!st.ready) reasons.push("configuration not loaded");
      for (const d of st.drivers) {
        if (!d.healthy) reasons.push(`driver ${d.name} unhealthy${d.detail ? `: ${d.detail}` : ""}`);
      }
      return reasons.length === 0
        ? c.json({ ready: true, reasons }, 200, JSON_HEADERS)
        : c.json({ ready: false, reasons }, 503, JSON_HEADERS);
    });
    app.openapi(routes.metrics, async (c) =>
      c.text(await metrics.render(runtime), 200, {
        "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
        "Cache-Control": "no-store",
      }),
    );
  },
};
