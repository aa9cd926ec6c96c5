/**
 * The messages between the API (body-check.ts, main thread) and its body worker
 * (body-worker.ts), and the summary of a valid manifest set that the lockout checks read.
 */

import type { TextLimits } from "../config/budget.ts";
import type { Config, Problem } from "../config/index.ts";

export interface CheckJob {
  id: number;
  /** The text; empty when it comes as `bytes`. */
  text: string;
  /**
   * The text as UTF-8 bytes (checked to be UTF-8 by the sender), moved to the worker in the
   * message's transfer list and decoded there: the main thread then neither decodes the body to a
   * string nor copies it into the message (a 1 MiB body cost the main thread's heap ~2 MiB of
   * garbage per request that way).
   */
  bytes?: ArrayBuffer;
  /** Source name used in problems, e.g. `<request>`. */
  file: string;
  limits: TextLimits;
  maxProblems: number;
  /** Send the Config back (PUT); a dry run needs only the verdict. */
  wantConfig: boolean;
  /**
   * "siteText": answer with the site objects of the text (src/config/site-text.ts) instead of a
   * verdict — seconds of YAML re-printing for a large set, kept off the main thread.
   */
  op?: "check" | "siteText";
}

/** What the lockout checks need to know of a valid set. */
export interface ConfigSummary {
  /** Objects in the set (0: an empty body, whitespace, comments, `---`, `null`...). */
  objects: number;
  /** API tokens with the admin role in NodeSettings. */
  adminTokens: number;
}

export type CheckReply =
  | { id: number; kind: "ready" }
  | { id: number; kind: "refused"; reason: string; line: number; message: string }
  | { id: number; kind: "invalid"; problems: Problem[]; omitted: number }
  /**
   * `configJson`: the Config as JSON text (it is plain data). A string crosses to the main thread
   * as one copy and JSON.parse rebuilds it in 25–100 ms for a 1 MiB set, where a structured clone
   * of the object graph took 570–890 ms of the main thread's time (8,300 Services, loaded machine).
   */
  | { id: number; kind: "valid"; summary: ConfigSummary; configJson?: string }
  | { id: number; kind: "siteText"; text: string }
  | { id: number; kind: "error"; message: string };

export function summarize(c: Config): ConfigSummary {
  const objects =
    c.pools.length +
    c.l2Advertisements.length +
    c.bgpAdvertisements.length +
    c.peers.length +
    c.bfdProfiles.length +
    c.communities.length +
    c.services.length +
    c.namespaces.length +
    (c.nodeSettings === undefined ? 0 : 1);
  const adminTokens = c.nodeSettings?.spec.api.tokens.filter((t) => t.role === "admin").length ?? 0;
  return { objects, adminTokens };
}
