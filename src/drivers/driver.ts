/**
 * The one small interface every driver implements. A driver receives the whole desired plan
 * and applies the difference from what it applied last (or found in the kernel at start), so a
 * restart re-derives the plan and converges without churn. Drivers never decide policy.
 */

import type { BfdSessionView, BgpPeerView, L2View, MetricFamily, XdpView } from "../api/runtime.ts";
import type { NodePlan } from "../plan/resolve.ts";

export interface DriverHealth {
  name: string;
  healthy: boolean;
  detail?: string | undefined;
}

/** What a driver can show through the API; each driver fills in only what it knows. */
export interface DriverViews {
  l2?(): L2View[];
  bgpPeers?(): BgpPeerView[];
  bfdSessions?(): BfdSessionView[];
  xdp?(): XdpView;
  metrics?(): MetricFamily[];
}

export interface Driver extends DriverViews {
  readonly name: string;
  /**
   * Applies the difference between the last applied plan and `plan`. May throw: the plan applier
   * (src/node/applier.ts) logs it and hands the plan again later, with backoff.
   */
  apply(plan: NodePlan): Promise<void>;
  health(): DriverHealth;
  /**
   * Announces again every VIP this node owns (gratuitous ARP / unsolicited NA on the takeover
   * schedule): a member that could not be heard is audible again, so frames sent meanwhile may
   * have been lost. Layer-2 drivers only.
   */
  reannounce?(reason: string): void;
  /** Stops timers and sockets. Leaves kernel state that must survive a restart in place. */
  close(): Promise<void>;
}

/** A driver that could not start: applies nothing, and says why through health (so /readyz fails). */
export function failedDriver(name: string, error: string): Driver {
  return {
    name,
    apply: async () => {},
    health: () => ({ name, healthy: false, detail: `failed to start: ${error}` }),
    close: async () => {},
  };
}
