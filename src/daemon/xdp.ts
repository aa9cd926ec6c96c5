/**
 * The layer-2 driver of `vipd run`: turns the plan's owned VIPs into (interface, VIP) entries
 * for the XDP responder (src/xdp/driver.ts), which answers ARP/NDP for them and announces
 * takeovers with gratuitous ARP / unsolicited NA. Also shows entries, attachments and counters
 * through the API and /metrics.
 */

import type { L2View, MetricFamily, XdpView } from "../api/runtime.ts";
import { type DesiredEntry, XdpDriver, type XdpDriverOptions } from "../xdp/driver.ts";
import { xdpMetricFamilies } from "../xdp/metrics.ts";
import type { Driver, DriverHealth } from "./driver.ts";
import type { Plan } from "./plan.ts";

export class XdpL2Driver implements Driver {
  readonly name = "xdp";
  private lastError: string | undefined;
  private node = "";

  private constructor(
    private readonly responder: XdpDriver,
    private readonly defaultInterfaces: readonly string[],
  ) {}

  static async open(interfaces: readonly string[], opts: XdpDriverOptions = {}): Promise<XdpL2Driver> {
    return new XdpL2Driver(await XdpDriver.open(opts), interfaces);
  }

  /** The entries the plan asks for: each owned VIP on its advertisement's interfaces (or all of ours). */
  desired(plan: Plan): DesiredEntry[] {
    const out: DesiredEntry[] = [];
    for (const e of plan.l2) {
      const ifs =
        e.interfaces.length > 0
          ? e.interfaces.filter((i) => this.defaultInterfaces.includes(i))
          : this.defaultInterfaces;
      for (const ifname of ifs) out.push({ ifname, ip: e.ip });
    }
    return out;
  }

  async apply(plan: Plan): Promise<void> {
    this.node = plan.node;
    if (plan.holdL2) return;
    try {
      const r = await this.responder.apply(this.desired(plan));
      this.lastError =
        r.errors.length > 0 ? r.errors.map((e) => `${e.ifname}: ${e.error}`).join("; ") : undefined;
    } catch (e) {
      this.lastError = (e as Error).message;
      throw e;
    }
  }

  health(): DriverHealth {
    const s = this.responder.status();
    return {
      name: this.name,
      healthy: this.lastError === undefined,
      detail:
        this.lastError ??
        `${s.entries} entr${s.entries === 1 ? "y" : "ies"} on ${s.attachments.map((a) => `${a.ifname} (${a.mode})`).join(", ") || "no interface"}`,
    };
  }

  l2(): L2View[] {
    return this.responder
      .entries()
      .map((e) => ({ ip: e.ip, node: this.node, interface: e.ifname ?? `ifindex ${e.ifindex}`, mac: e.mac }));
  }

  xdp(): XdpView {
    const s = this.responder.status();
    const counters = Object.fromEntries(Object.entries(s.counters).map(([k, v]) => [k, v.toString()]));
    return {
      interfaces: s.attachments.map((a) => ({
        name: a.ifname,
        mode: a.error !== undefined ? "none" : a.mode,
        ...(s.programId > 0 ? { programId: s.programId } : {}),
        counters,
      })),
    };
  }

  metrics(): MetricFamily[] {
    return xdpMetricFamilies(this.responder.status());
  }

  async close(): Promise<void> {
    await this.responder.close();
  }
}
