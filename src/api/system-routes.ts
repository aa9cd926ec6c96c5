/**
 * System routes of the edge-node image (appliance mode only; src/system/service.ts does the work):
 *   GET  /api/v1/system          (read)  slots A/B, which is booted and which boots next, their
 *                                         boot status and bundle versions, the booted image's
 *                                         versions, the running update's progress, the last
 *                                         update's result and the last trial's outcome
 *   POST /api/v1/system/update   (admin) body: a RAUC bundle (application/octet-stream), streamed
 *                                         to the data partition up to a size limit, checked by
 *                                         RAUC (signature, compatible) before anything is written,
 *                                         then installed into the other slot; 200 when installed
 *   POST /api/v1/system/reboot   (admin) 202 at once; then hands this node's layer-2 VIPs to the
 *                                         other members (at most 3 s), then runs the reboot
 *                                         command (BGP closes gracefully when vipd stops)
 *   GET  /api/v1/system/seed     (read)  what vipd-seed did with the site's seed at this boot:
 *                                         applied / unchanged / rejected (with its file:line
 *                                         problems) / none, and the last seed applied
 * Update progress (receiving N of M bytes, verifying, installing with RAUC's percentages, done
 * with the result) is published on the watch stream (`GET /api/v1/events`, event type `update`).
 * Refusals are `{error, message}`: 413 PayloadTooLarge, 400 EmptyBody / IncompleteBody /
 * InvalidBundle (bad signature, truncated, not a bundle), 415, 422 IncompatibleBundle,
 * 409 UpdateInProgress; after a refusal the slots are as they were.
 */

import type { EventHub, JsonValue } from "../events/hub.ts";
import type { SeedState } from "../system/seed-state.ts";
import type { DrainReport, SystemUpdates } from "../system/service.ts";
import { SystemError, systemUpdatesIfPresent } from "../system/service.ts";
import type { Logger } from "../util/log.ts";
import type { RouteModule } from "./context.ts";
import { ApiError, CLOSE, JSON_HEADERS } from "./context.ts";
import { parseMediaType } from "./http.ts";
import type { RouteRule } from "./routes.ts";

export const SYSTEM_PATH = "/api/v1/system";
export const UPDATE_PATH = "/api/v1/system/update";
export const REBOOT_PATH = "/api/v1/system/reboot";
export const SEED_PATH = "/api/v1/system/seed";
const BUNDLE_TYPES = ["application/octet-stream", "application/vnd.rauc.bundle"];

function apiError(e: unknown): unknown {
  if (!(e instanceof SystemError)) return e;
  return new ApiError(e.status, e.code, e.message, e.status === 413 ? CLOSE : {});
}

/** `GET /api/v1/system/seed`: what vipd-seed did at this boot (read once at start). */
export function seedRoutes(seed: SeedState): RouteModule {
  return {
    name: "system-seed",
    rules: [{ method: "GET", path: SEED_PATH, access: "read", produces: "json" }],
    mount(app) {
      app.get(SEED_PATH, (c) => c.json(seed, 200, JSON_HEADERS));
    },
  };
}

/** The system routes over `system`; mounted by appliance mode on the image (createApp `modules`). */
export function systemRoutes(system: SystemUpdates, seed: SeedState | null = null): RouteModule {
  const rules: RouteRule[] = [
    { method: "GET", path: SYSTEM_PATH, access: "read", produces: "json" },
    {
      method: "POST",
      path: UPDATE_PATH,
      access: "admin",
      produces: "json",
      contract: false,
      maxBody: system.maxBundleBytes,
    },
    { method: "POST", path: REBOOT_PATH, access: "admin", produces: "json", contract: false },
  ];
  return {
    name: "system",
    rules,
    mount(app, ctx) {
      app.get(SYSTEM_PATH, async (c) => c.json({ ...(await system.view()), seed }, 200, JSON_HEADERS));

      app.post(UPDATE_PATH, async (c) => {
        const mt = parseMediaType(c.req.header("content-type") ?? "");
        if (!mt || !BUNDLE_TYPES.includes(`${mt.type}/${mt.subtype}`))
          throw ctx.refuse(
            new ApiError(415, "UnsupportedMediaType", `send the bundle as ${BUNDLE_TYPES.join(" or ")}`),
            c,
          );
        const declaredText = c.req.header("content-length");
        const declared =
          declaredText !== undefined && /^[0-9]+$/.test(declaredText.trim()) ? Number(declaredText) : null;
        const by = c.get("principal");
        try {
          const r = await system.update(c.req.raw.body, declared, by);
          c.set("auditDetail", { result: r.result, version: r.bundleVersion ?? "", slot: r.slot ?? "" });
          return c.json(r, 200, JSON_HEADERS);
        } catch (e) {
          const err = apiError(e);
          if (err instanceof ApiError && err.status < 500) throw ctx.refuse(err, c);
          throw err;
        }
      });

      app.post(REBOOT_PATH, async (c) => {
        try {
          system.reboot(c.get("principal"));
        } catch (e) {
          throw apiError(e);
        }
        ctx.log.info("reboot requested through the API", { token: c.get("principal") });
        return c.json({ rebooting: true, inMs: 1000, drainsFirst: true }, 202, JSON_HEADERS);
      });
    },
  };
}

/**
 * The system update route module when this node can update itself (RAUC is configured: the edge
 * image); none otherwise (Kubernetes mode, a plain host). For createApp's `modules`.
 */
export function systemModulesIfPresent(
  log: Logger,
  opts: {
    /** Update progress goes to the watch stream. */
    events?: EventHub;
    /** What vipd-seed left (the edge image); GET /api/v1/system/seed shows it. */
    seed?: SeedState | null;
    /** Hands this node's traffic over before a reboot. */
    drain?: () => Promise<DrainReport>;
  } = {},
): RouteModule[] {
  const { events, seed = null, drain } = opts;
  const system = systemUpdatesIfPresent(log, {
    ...(events !== undefined
      ? { onEvent: (e) => events.publish("update", e as unknown as { [key: string]: JsonValue }) }
      : {}),
    ...(drain !== undefined ? { drain } : {}),
  });
  const modules: RouteModule[] = system === undefined ? [] : [systemRoutes(system, seed)];
  if (seed !== null) modules.push(seedRoutes(seed));
  return modules;
}
