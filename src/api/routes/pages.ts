/**
 * Documents and pages: `/openapi.json` (read role; the OpenAPI 3.1 document of every route
 * registered with the app), and the static shells `/` (status page) and `/docs` (API reference),
 * open: they carry no data, every byte of state comes from the JSON API with the reader's token.
 */

import type { RouteModule } from "../context.ts";
import { DOCS_PAGE, STATUS_PAGE } from "../pages.ts";

const DESCRIPTION =
  "State, health, metrics and configuration of one vipd node. Every refusal is JSON " +
  '`{ "error": "<Code>", "message": "..." }`: 400 BadRequest / InvalidConfig, 401 Unauthorized ' +
  "(with WWW-Authenticate), 403 Forbidden, 404 NotFound (any unknown path), 405 " +
  "MethodNotAllowed (with Allow), 406 NotAcceptable, 412 PreconditionFailed, 413 " +
  "PayloadTooLarge (any route, declared or streamed; Connection: close), 415 " +
  "UnsupportedMediaType, 422 (budgets: TooDeep, TooManyDocuments, TooManyNodes, " +
  "ValidationTimeout; lockout guards: EmptyConfig, NoAdminToken), 428 PreconditionRequired, " +
  "503 Busy (with Retry-After). A refused request changes nothing, and is logged and counted " +
  "(vipd_api_refusals_total{reason}). Manifest bodies are parsed off the main thread, in a " +
  "worker, after a pre-scan (1 MiB, 20,000 documents, depth 64, 200,000 nodes), within 30 s, " +
  "one at a time. Open without a token: /livez, /readyz, /healthz, / and /docs; /metrics as " +
  "configured.";

export const pageRoutes: RouteModule = {
  name: "pages",
  rules: [
    // Static pages: shells with no data in them; every byte of state comes from the JSON API.
    { method: "GET", path: "/", access: "open", produces: "html" },
    { method: "GET", path: "/docs", access: "open", produces: "html" },
    { method: "GET", path: "/openapi.json", access: "read", produces: "json" },
  ],
  mount(app) {
    app.doc31("/openapi.json", {
      openapi: "3.1.0",
      info: { title: "vipd API", version: "1", description: DESCRIPTION },
    });
    for (const page of [STATUS_PAGE, DOCS_PAGE]) {
      app.get(page.path, (c) =>
        c.html(page.html, 200, {
          "Content-Security-Policy": page.csp,
          "X-Content-Type-Options": "nosniff",
          "X-Frame-Options": "DENY",
          "Referrer-Policy": "no-referrer",
          "Cache-Control": "no-cache",
        }),
      );
    }
  },
};
