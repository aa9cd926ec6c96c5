/**
 * The API's routes as data: OpenAPI route definitions (from the zod schemas) of the core routes,
 * and the shape of the access table (who may call what, and what it produces) that the gate
 * (src/api/gate.ts) reads. Each route module (src/api/routes/*.ts) lists its rows; one table
 * serves 404, 405 + Allow, authentication, authorization and 406, so a route cannot be added
 * without saying who may use it.
 */

import { createRoute, z } from "@hono/zod-openapi";
import type { Role } from "./auth.ts";
import {
  ApplyResult,
  BfdSessionList,
  BgpPeerList,
  ClusterMemberList,
  ConfigView,
  ErrorBody,
  FailoverRequest,
  FailoverResult,
  InvalidConfigBody,
  L2ElectionList,
  L2List,
  Liveness,
  PoolList,
  Readiness,
  ServiceList,
  StatusSummary,
  ValidateResult,
  XdpView,
} from "./schemas.ts";

export const API_PREFIX = "/api/v1";

/** The media types a manifest set may be sent as. */
export const YAML_TYPES = ["application/yaml", "text/yaml", "application/x-yaml"] as const;

const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: ErrorBody } },
});
const readErrors = {
  401: errorResponse("Missing or unknown bearer token"),
  406: errorResponse("The Accept header excludes application/json"),
};
const adminErrors = { ...readErrors, 403: errorResponse("The token's role is not admin") };
const bodyErrors = {
  400: errorResponse("The body is not UTF-8 text"),
  413: errorResponse("The body exceeds the size limit"),
  415: errorResponse("Content-Type is not application/yaml, text/yaml or application/x-yaml (UTF-8)"),
};
const budgetErrors = {
  422: {
    description:
      "Refused before or while parsing, nothing changed: nesting too deep (TooDeep), too many documents " +
      "(TooManyDocuments) or nodes (TooManyNodes) — checked before the YAML parser runs, with the line — or " +
      "the time budget ran out (ValidationTimeout)",
    content: { "application/json": { schema: InvalidConfigBody } },
  },
  503: errorResponse("Validations are queued already (Busy, with Retry-After); retry later"),
};
const guardQuery = z.object({
  allowEmpty: z.enum(["true", "false"]).optional().openapi({
    description:
      "Accept an empty manifest set (no objects: an empty body, whitespace, comments, `---`, `null`). Without it such a set is refused with 422 EmptyConfig: it would release every Service and remove every API token.",
  }),
  allowNoAdmin: z.enum(["true", "false"]).optional().openapi({
    description:
      "Accept a set without an admin API token while the running one has one. Without it such a set is refused with 422 NoAdminToken: nobody could change the configuration through the API afterwards.",
  }),
});
const security = [{ bearerAuth: [] }];
const etagHeader = {
  ETag: {
    description: "Strong entity tag of the manifest set, for If-Match",
    schema: { type: "string" as const },
  },
};
const jsonOk = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const yamlBody = {
  required: true,
  description: "The whole manifest set: multi-document YAML (MetalLB resources, Services, node settings)",
  content: Object.fromEntries(YAML_TYPES.map((t) => [t, { schema: z.string() }])),
};

/** `limit` and `continue` of a paged list (checked by src/api/paging.ts, 400 when invalid). */
export const pageQuery = z.object({
  limit: z.string().optional().openapi({
    description: "Items per page: 1 to 10000, default 1000",
    example: "500",
  }),
  continue: z.string().optional().openapi({
    description: "The previous page's metadata.continue (opaque); absent for the first page",
  }),
});

function listRoute<T extends z.ZodType>(path: string, schema: T, summary: string) {
  return createRoute({
    method: "get",
    path: `${API_PREFIX}${path}`,
    summary,
    description:
      "Paged: `?limit=` (default 1000, at most 10000) and `?continue=` (the previous page's " +
      "`metadata.continue`); the last page has no `metadata`. Items are ordered by their name.",
    tags: ["state"],
    security,
    request: { query: pageQuery },
    responses: {
      200: jsonOk(schema, summary),
      ...readErrors,
      400: errorResponse("limit or continue is invalid"),
    },
  });
}

export const routes = {
  livez: createRoute({
    method: "get",
    path: "/livez",
    summary: "Liveness: the process is serving requests",
    tags: ["health"],
    responses: { 200: jsonOk(Liveness, "Alive") },
  }),
  healthz: createRoute({
    method: "get",
    path: "/healthz",
    summary: "Alias of /livez",
    tags: ["health"],
    responses: { 200: jsonOk(Liveness, "Alive") },
  }),
  readyz: createRoute({
    method: "get",
    path: "/readyz",
    summary: "Readiness: configuration loaded and every driver healthy",
    tags: ["health"],
    responses: { 200: jsonOk(Readiness, "Ready"), 503: jsonOk(Readiness, "Not ready, with the reasons") },
  }),
  metrics: createRoute({
    method: "get",
    path: "/metrics",
    summary: "Prometheus text exposition (open or bearer-protected, as configured)",
    tags: ["health"],
    responses: {
      200: { description: "Metrics", content: { "text/plain": { schema: z.string() } } },
      401: errorResponse("Missing or unknown bearer token (when metrics are protected)"),
    },
  }),
  status: createRoute({
    method: "get",
    path: `${API_PREFIX}/status`,
    summary: "Node, version, uptime, configuration generation and driver health",
    tags: ["state"],
    security,
    responses: { 200: jsonOk(StatusSummary, "Status summary"), ...readErrors },
  }),
  services: listRoute("/services", ServiceList, "Services with their addresses, or why they have none"),
  pools: listRoute("/pools", PoolList, "Address pools with their usage per family"),
  l2: listRoute("/l2/announcements", L2List, "Layer-2 announcements: VIP, owner node, interface, MAC"),
  l2Elections: listRoute(
    "/l2/elections",
    L2ElectionList,
    "Layer-2 elections: per VIP the owner, the candidates in order, and why each other node is not the owner",
  ),
  clusterMembers: listRoute(
    "/cluster/members",
    ClusterMemberList,
    "Live membership: each vipd node of the site with its state, readiness, flaps and declines",
  ),
  l2Failover: createRoute({
    method: "post",
    path: `${API_PREFIX}/l2/failover`,
    summary: "Forced failover: this node (the VIP's owner) declines it, so another eligible node takes it",
    description:
      "Send to the VIP's current owner. Without `node` the next candidate takes the VIP; with it, that " +
      "eligible node does. The decline travels with this node's authenticated heartbeats, so all " +
      "nodes agree; it lasts until withdrawn (`cancel: true`) or this process restarts, and never " +
      "leaves a VIP unanswered (ignored when no other node is eligible). A dual-stack Service moves whole.",
    tags: ["l2"],
    security,
    request: {
      body: { required: true, content: { "application/json": { schema: FailoverRequest } } },
    },
    responses: {
      200: jsonOk(FailoverResult, "Declined (or the decline withdrawn)"),
      ...adminErrors,
      400: errorResponse("The body is not a JSON FailoverRequest"),
      404: errorResponse("The address is not a layer-2 VIP on this node (UnknownVip)"),
      409: errorResponse(
        "This node does not own the VIP (NotOwner), no other node could take it (NoCandidate), or membership is off (NoCluster)",
      ),
      413: errorResponse("The body exceeds the size limit"),
      415: errorResponse("Content-Type is not application/json"),
      422: errorResponse("The named node is not an eligible candidate (NotEligible)"),
    },
  }),
  bgpPeers: listRoute("/bgp/peers", BgpPeerList, "BGP peers: state, uptime, prefixes, last error"),
  bfdSessions: listRoute("/bfd/sessions", BfdSessionList, "BFD sessions"),
  xdp: createRoute({
    method: "get",
    path: `${API_PREFIX}/xdp`,
    summary: "XDP attachment mode and counters per interface",
    tags: ["state"],
    security,
    responses: { 200: jsonOk(XdpView, "XDP state"), ...readErrors },
  }),
  getConfig: createRoute({
    method: "get",
    path: `${API_PREFIX}/config`,
    summary: "The applied manifest set (admin: manifests may hold BGP passwords)",
    description:
      "JSON by default; the raw YAML when Accept prefers application/yaml. The ETag header " +
      "carries the entity tag to send back in If-Match. If-None-Match gives 304.",
    tags: ["config"],
    security,
    responses: {
      200: {
        description: "The manifest set",
        headers: etagHeader,
        content: { "application/json": { schema: ConfigView }, "application/yaml": { schema: z.string() } },
      },
      304: { description: "Not modified (If-None-Match matched)" },
      ...adminErrors,
    },
  }),
  putConfig: createRoute({
    method: "put",
    path: `${API_PREFIX}/config`,
    summary: "Replace the whole manifest set, atomically",
    description:
      "Validated first (off the main thread, within size, depth, document, node and time budgets); " +
      "applied whole or not at all. If-Match with the current ETag is required (428 without it, 412 " +
      "when stale). An empty set, or one without an admin token while the running one has one, needs " +
      "its explicit flag (422 otherwise). 202 instead of 200 when a setting applied waits for a restart " +
      "(`pendingRestart`, also in GET /api/v1/status).",
    tags: ["config"],
    security,
    request: {
      query: guardQuery,
      headers: z.object({
        "if-match": z
          .string()
          .optional()
          .openapi({ description: "Required: the ETag from GET (428 without)" }),
      }),
      body: yamlBody,
    },
    responses: {
      200: { ...jsonOk(ApplyResult, "Applied; the new ETag"), headers: etagHeader },
      202: {
        ...jsonOk(
          ApplyResult,
          "Applied and persisted, but settings listed in pendingRestart take effect only after vipd restarts",
        ),
        headers: etagHeader,
      },
      ...adminErrors,
      ...bodyErrors,
      ...budgetErrors,
      422: {
        description:
          "Refused, nothing changed: a budget (TooDeep, TooManyDocuments, TooManyNodes, ValidationTimeout) or a " +
          "lockout guard (EmptyConfig without ?allowEmpty=true, NoAdminToken without ?allowNoAdmin=true)",
        content: { "application/json": { schema: InvalidConfigBody } },
      },
      400: {
        description: "Invalid manifests (or not UTF-8)",
        content: { "application/json": { schema: InvalidConfigBody } },
      },
      412: { ...errorResponse("If-Match does not match the current ETag"), headers: etagHeader },
      428: errorResponse("If-Match is missing"),
    },
  }),
  validateConfig: createRoute({
    method: "post",
    path: `${API_PREFIX}/config/validate`,
    summary: "Dry run: the problems a manifest set would be rejected for",
    description:
      "200 whether or not the set is valid; `valid` and `problems` (at most 200, then one saying how " +
      "many more) say which. Changes nothing. It predicts PUT, the lockout guards and their flags " +
      "included. Needs only a read token: the work is bounded — the body is parsed in a worker, off the " +
      "main thread, after a pre-scan for size, nesting depth (64), documents and nodes, with a time " +
      "budget and one validation at a time (a short queue, then 503).",
    tags: ["config"],
    security,
    request: { query: guardQuery, body: yamlBody },
    responses: {
      200: jsonOk(ValidateResult, "Validation result"),
      ...readErrors,
      ...bodyErrors,
      ...budgetErrors,
    },
  }),
} as const;

/** Who may call a route: nobody in particular, a token of a role, or as `/metrics` is set up. */
export type Access = "open" | Role | "metrics";
/** What a route answers with; only "json" routes refuse an Accept header without JSON (406). */
export type Produces = "json" | "json-or-yaml" | "html" | "text" | "event-stream";

export interface RouteRule {
  method: "GET" | "PUT" | "POST" | "DELETE";
  path: string;
  access: Access;
  produces: Produces;
  /** false: a non-GET route that changes nothing (a dry run), left out of the audit log. */
  audit?: false;
  /**
   * false: left out of the generic contract tests (test/unit/api-contract.test.ts, which call
   * every route with every role and a manifest body): action routes that take their own JSON
   * body, streams that never end, routes that act on the machine. Their tests live with them.
   */
  contract?: false;
  /** Largest request body for this route when it is not the API's limit (a system update bundle). */
  maxBody?: number;
}

/** A rule for a route definition (its method and path). */
export const rule = (
  r: { method: string; path: string },
  access: Access,
  produces: Produces,
  extra: Pick<RouteRule, "audit" | "contract" | "maxBody"> = {},
): RouteRule => ({
  method: r.method.toUpperCase() as RouteRule["method"],
  path: r.path,
  access,
  produces,
  ...extra,
});

export type Lookup =
  | { kind: "found"; rule: RouteRule }
  | { kind: "notFound" }
  | { kind: "methodNotAllowed"; allow: string[] };

/**
 * The lookup over a set of rules: HEAD is served as GET, OPTIONS only lists what is allowed.
 * Two rules for one method and path are a programming error (thrown here, at creation).
 */
export function routeTable(rules: readonly RouteRule[]): (method: string, path: string) => Lookup {
  const byPath = new Map<string, RouteRule[]>();
  for (const r of rules) {
    const list = byPath.get(r.path) ?? [];
    if (list.some((x) => x.method === r.method)) throw new Error(`two API routes for ${r.method} ${r.path}`);
    byPath.set(r.path, [...list, r]);
  }
  return (method, path) => {
    const found = byPath.get(path);
    if (found === undefined) return { kind: "notFound" };
    const m = method === "HEAD" ? "GET" : method;
    const hit = found.find((r) => r.method === m);
    if (hit) return { kind: "found", rule: hit };
    const allow = found.flatMap((r) => (r.method === "GET" ? ["GET", "HEAD"] : [r.method]));
    return { kind: "methodNotAllowed", allow };
  };
}
