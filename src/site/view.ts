/**
 * What a member shows of its site (`GET /api/v1/site`, the metrics): each member's version and
 * digest, taken from the fresher of its site status and its heartbeats, who allocates, and
 * whether the site is consistent. Pure, over the state of src/site/state.ts.
 */

import { allocatorOf, isAlive, isConsistent, others } from "./state.ts";
import type { HealReport, PeerView, SiteOptions, SiteState } from "./state-types.ts";
import { configDigest, tableDigest, type Version } from "./table.ts";

/** A peer's site snapshot as its membership heartbeat said it (heartbeat version 3). */
export interface HeartbeatSiteInfo {
  generation: number;
  allocator: string;
  digest: string;
  /** The sender's clock (µs of wall clock) of that heartbeat. */
  sent: bigint;
}

/**
 * The state with each peer's version and digest taken from the fresher of its two reports: the
 * last site message that told them, or its last version-3 heartbeat (`beats`), whichever the
 * peer sent later (both are stamped with its wall clock). Liveness and readiness stay the site
 * channel's. Pure: for the view, the consistency check and the metrics.
 */
export function withHeartbeats(s: SiteState, beats: ReadonlyMap<string, HeartbeatSiteInfo>): SiteState {
  if (beats.size === 0) return s;
  let peers: Map<string, PeerView> | undefined;
  for (const [name, hb] of beats) {
    const p = s.peers.get(name);
    if (p === undefined || hb.sent <= (p.versionSent ?? -1n)) continue;
    peers ??= new Map(s.peers);
    peers.set(name, {
      ...p,
      version: hb.generation > 0 ? { generation: hb.generation, allocator: hb.allocator } : undefined,
      digest: hb.digest,
      versionSent: hb.sent,
      versionVia: "heartbeat",
    });
  }
  return peers === undefined ? s : { ...s, peers };
}

export interface SiteMemberView {
  name: string;
  self: boolean;
  alive: boolean;
  ready: boolean;
  generation: number;
  allocator: string;
  digest: string;
  /** Where this member's generation and digest come from: its site status or its heartbeat (null: self, or never told). */
  via: "site" | "heartbeat" | null;
}

export interface SiteView {
  self: string;
  phase: "starting" | "ready";
  allocator: string | null;
  generation: number;
  /**
   * The generation this node's data path runs (handed to the Daemon and installed; only a ready
   * member is handed one); 0: none yet.
   */
  applied: number;
  /** The member that made the snapshot this member holds. */
  madeBy: string | null;
  digest: string;
  configDigest: string;
  consistent: boolean;
  /** This member's own file holds other site objects than the site (the site's win). */
  localConfigDiffers: boolean;
  members: SiteMemberView[];
  lastHeal: (Omit<HealReport, "at"> & { msAgo: number }) | null;
  counters: SiteState["counters"];
}

/** What GET /api/v1/site shows; `applied`: the version this node's data path runs. */
export function siteView(s: SiteState, o: SiteOptions, applied?: Version): SiteView {
  const snap = s.snapshot;
  const digest = snap ? tableDigest(snap.table) : "";
  const members: SiteMemberView[] = [
    {
      name: o.self,
      self: true,
      alive: true,
      ready: s.phase === "ready",
      generation: snap?.generation ?? 0,
      allocator: snap?.allocator ?? "",
      digest,
      via: null,
    },
    ...others(o).map((name) => {
      const p = s.peers.get(name);
      return {
        name,
        self: false,
        alive: p !== undefined && isAlive(p, s.now, o),
        ready: p?.ready ?? false,
        generation: p?.version?.generation ?? 0,
        allocator: p?.version?.allocator ?? "",
        digest: p?.digest ?? "",
        via: p?.versionVia ?? null,
      };
    }),
  ];
  return {
    self: o.self,
    phase: s.phase,
    allocator: allocatorOf(s, o) ?? null,
    generation: snap?.generation ?? 0,
    applied: applied?.generation ?? 0,
    madeBy: snap?.allocator ?? null,
    digest,
    configDigest: snap ? configDigest(snap.config) : "",
    consistent: isConsistent(s, o),
    localConfigDiffers: snap !== undefined && s.local !== snap.config,
    members,
    lastHeal: s.lastHeal
      ? {
          from: s.lastHeal.from,
          to: s.lastHeal.to,
          changes: s.lastHeal.changes,
          msAgo: s.now - s.lastHeal.at,
        }
      : null,
    counters: s.counters,
  };
}
