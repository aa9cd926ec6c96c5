/**
 * BGP and BFD on demand, for `vipd run` and `vipd k8s` alike: the speaker starts when the
 * configuration first declares a BGPPeer — at start or at any later reload or watch event — and
 * not before, so a layer-2-only node never listens on port 179, and a MetalLB user who adds their
 * first BGPPeer to a running node does not have to restart it. BFD sessions follow the planned
 * peers that name a BFDProfile; its sockets open only when a session needs them.
 */

import type { BgpPeerView, MetricFamily } from "../api/runtime.ts";
import { BgpSpeaker } from "../bgp/bgp-speaker.ts";
import type { NodePlan } from "../plan/resolve.ts";
import type { Logger } from "../util/log.ts";
import { BfdDriver, type BfdVerdictSink } from "./bfd.ts";
import { BgpDriver, defaultRouterId } from "./bgp.ts";
import type { Driver, DriverHealth } from "./driver.ts";

export interface OnDemandBgpOptions {
  log: Logger;
  /** The port the speaker listens on (179; VIPD_BGP_PORT in tests). */
  port: number;
  /** This process restarted with peers that may hold our routes (graceful restart, RFC 4724). */
  restarted: boolean;
  /** The restart time advertised to peers, seconds (NodeSettings.spec.bgp; default 120). */
  gracefulRestartSeconds?: number | undefined;
}

/** The BGP driver, started by the first plan whose configuration has a BGPPeer. */
export class OnDemandBgp implements Driver, BfdVerdictSink {
  readonly name = "bgp";
  private inner: BgpDriver | undefined;
  private startError: string | undefined;
  private applied = false;
  /** BFD verdicts that arrived before the speaker existed. */
  private readonly bfdDown = new Set<string>();

  constructor(private readonly opts: OnDemandBgpOptions) {}

  /** The running driver, once started. */
  get driver(): BgpDriver | undefined {
    return this.inner;
  }

  async apply(plan: NodePlan): Promise<void> {
    const first = !this.applied;
    this.applied = true;
    const want = plan.routing.speaker;
    if (this.inner === undefined && want !== undefined) await this.start(want.routerID, first);
    await this.inner?.apply(plan);
  }

  private async start(configured: string | undefined, first: boolean): Promise<void> {
    const routerId = configured ?? (await defaultRouterId());
    if (routerId === undefined) {
      this.startError = "no router ID: set routerID on a BGPPeer, or give this host an IPv4 address";
      throw new Error(this.startError);
    }
    const log = this.opts.log;
    try {
      // The next hop of a VIP of the other family than a session's comes from that session's
      // interface, read by the session itself when it is established (src/bgp/nexthop.ts).
      const speaker = new BgpSpeaker({
        routerId,
        listen: { host: "::", port: this.opts.port },
        // Only a speaker started with the process can be a restart that peers kept routes for.
        restarted: this.opts.restarted && first,
        log: (level, msg, fields) => log[level](msg, fields),
      });
      this.inner = new BgpDriver(speaker, log, this.opts.gracefulRestartSeconds);
      this.startError = undefined;
      log.info("BGP speaker started", { routerId, port: this.opts.port });
      for (const p of this.bfdDown) this.inner.setBfdUp(p, false);
    } catch (e) {
      this.startError = `cannot start the BGP speaker: ${(e as Error).message}`;
      throw new Error(this.startError);
    }
  }

  setBfdUp(peer: string, up: boolean): void {
    if (up) this.bfdDown.delete(peer);
    else this.bfdDown.add(peer);
    this.inner?.setBfdUp(peer, up);
  }

  health(): DriverHealth {
    if (this.inner) return this.inner.health();
    if (this.startError !== undefined) return { name: this.name, healthy: false, detail: this.startError };
    return { name: this.name, healthy: true, detail: "idle: no BGPPeer configured" };
  }

  bgpPeers(): BgpPeerView[] {
    return this.inner?.bgpPeers() ?? [];
  }

  metrics(): MetricFamily[] {
    return this.inner?.metrics() ?? [];
  }

  async close(): Promise<void> {
    await this.inner?.close();
  }
}

/** BGP and BFD for a node: the BFD driver holds a peer's BGP session down while BFD is down. */
export function routingDrivers(opts: OnDemandBgpOptions & { bfdLog: Logger }): [OnDemandBgp, BfdDriver] {
  const bgp = new OnDemandBgp(opts);
  return [bgp, new BfdDriver(bgp, opts.bfdLog)];
}
