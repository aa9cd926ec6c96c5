/**
 * The BFD driver (both modes): one BFD session per planned BGP peer that names a BFDProfile
 * (single-hop RFC 5881, or multihop RFC 5883 for ebgpMultiHop peers), run by the in-process
 * manager (src/bfd/manager.ts). When a session goes down the peer's BGP session is brought down
 * at once, and it may come back only once BFD is Up again.
 */

import type { BfdSessionView, MetricFamily } from "../api/runtime.ts";
import { bfdSessionsFor } from "../bfd/desired.ts";
import { BfdManager, type DesiredSession } from "../bfd/manager.ts";
import { bfdMetricFamilies } from "../bfd/metrics.ts";
import type { NodePlan } from "../plan/resolve.ts";
import type { Logger } from "../util/log.ts";
import type { Driver, DriverHealth } from "./driver.ts";

export interface BfdVerdictSink {
  setBfdUp(peer: string, up: boolean): void;
}

/** The sessions the plan asks for: the planned peers that name a BFDProfile. */
export function desiredBfd(plan: NodePlan): DesiredSession[] {
  return bfdSessionsFor(plan.routing.peers, plan.routing.bfdProfiles).sessions;
}

export class BfdDriver implements Driver {
  readonly name = "bfd";
  readonly manager: BfdManager;
  private lastError: string | undefined;

  constructor(sink: BfdVerdictSink | undefined, log: Logger) {
    this.manager = new BfdManager({ log: (msg, fields) => log.info(msg, fields) });
    this.manager.on("down", (key, diag) => {
      log.warn("BFD session down: holding the BGP session down", { peer: key, diagnostic: diag });
      sink?.setBfdUp(key, false);
    });
    this.manager.on("up", (key) => {
      log.info("BFD session up: the BGP session may come back", { peer: key });
      sink?.setBfdUp(key, true);
    });
  }

  async apply(plan: NodePlan): Promise<void> {
    try {
      await this.manager.setSessions(desiredBfd(plan));
      this.lastError = undefined;
    } catch (e) {
      this.lastError = (e as Error).message;
      throw e;
    }
  }

  health(): DriverHealth {
    const s = this.manager.status().sessions;
    return {
      name: this.name,
      healthy: this.lastError === undefined,
      detail: this.lastError ?? `${s.filter((x) => x.state === "Up").length}/${s.length} session(s) up`,
    };
  }

  bfdSessions(): BfdSessionView[] {
    return this.manager.status().sessions.map((s) => ({
      peer: s.key,
      ...(s.local !== null ? { local: s.local } : {}),
      state: s.state,
      diagnostic: s.lastDiag,
      detectTimeMs: s.detectionTimeMs,
      ...(s.upSince !== undefined
        ? { uptimeSeconds: Math.max(0, (Date.now() - Date.parse(s.upSince)) / 1000) }
        : {}),
    }));
  }

  metrics(): MetricFamily[] {
    return bfdMetricFamilies(this.manager.status());
  }

  async close(): Promise<void> {
    await this.manager.close();
  }
}
