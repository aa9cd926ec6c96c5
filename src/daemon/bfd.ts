/**
 * The BFD driver of `vipd run`: one BFD session per planned BGP peer that names a BFDProfile
 * (single-hop RFC 5881, or multihop RFC 5883 for ebgpMultiHop peers), run by the in-process
 * manager (src/bfd/manager.ts). When a session goes down the peer's BGP session is brought down
 * at once, and it may come back only once BFD is Up again.
 */

import type { BfdSessionView, MetricFamily } from "../api/runtime.ts";
import { BfdManager, type DesiredSession } from "../bfd/manager.ts";
import type { Config } from "../config/index.ts";
import type { Logger } from "../util/log.ts";
import type { Driver, DriverHealth } from "./driver.ts";
import type { Plan } from "./plan.ts";

export interface BfdVerdictSink {
  setBfdUp(peer: string, up: boolean): void;
}

/** The sessions the plan asks for: planned peers with a bfdProfile. */
export function desiredBfd(plan: Plan, config: Config | undefined): DesiredSession[] {
  const profiles = new Map((config?.bfdProfiles ?? []).map((p) => [p.metadata.name, p.spec]));
  const out: DesiredSession[] = [];
  for (const p of config?.peers ?? []) {
    if (!plan.peers.includes(p.metadata.name) || p.spec.bfdProfile === undefined) continue;
    const prof = profiles.get(p.spec.bfdProfile);
    if (prof === undefined || p.spec.peerAddress === undefined) continue;
    out.push({
      key: p.metadata.name,
      peer: p.spec.peerAddress,
      ...(p.spec.sourceAddress !== undefined ? { local: p.spec.sourceAddress } : {}),
      multihop: p.spec.ebgpMultiHop === true,
      profile: {
        receiveInterval: prof.receiveInterval,
        transmitInterval: prof.transmitInterval,
        detectMultiplier: prof.detectMultiplier,
        echoMode: prof.echoMode,
        echoInterval: prof.echoInterval,
        passiveMode: prof.passiveMode,
        minimumTtl: prof.minimumTtl,
      },
    });
  }
  return out;
}

export class BfdDriver implements Driver {
  readonly name = "bfd";
  readonly manager: BfdManager;
  private lastError: string | undefined;

  constructor(
    private readonly config: () => Config | undefined,
    sink: BfdVerdictSink | undefined,
    log: Logger,
  ) {
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

  async apply(plan: Plan): Promise<void> {
    try {
      await this.manager.setSessions(desiredBfd(plan, this.config()));
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
    const s = this.manager.status().sessions;
    const per = (f: (x: (typeof s)[number]) => number) =>
      s.map((x) => ({ labels: { peer: x.key }, value: f(x) }));
    return [
      {
        name: "vipd_bfd_session_up",
        help: "1 when the BFD session is Up",
        type: "gauge",
        samples: per((x) => (x.state === "Up" ? 1 : 0)),
      },
      {
        name: "vipd_bfd_session_flaps_total",
        help: "Times the session left Up",
        type: "counter",
        samples: per((x) => x.flaps),
      },
      {
        name: "vipd_bfd_detection_time_seconds",
        help: "Negotiated detection time",
        type: "gauge",
        samples: per((x) => x.detectionTimeMs / 1000),
      },
    ];
  }

  async close(): Promise<void> {
    await this.manager.close();
  }
}
