/**
 * The layer-2 driver of `vipd run` (and of `vipd k8s`'s speaker): turns the plan's owned VIPs
 * into (interface, VIP) entries for the XDP responder (src/xdp/driver.ts), which answers ARP/NDP
 * for them and announces takeovers with gratuitous ARP / unsolicited NA. Also shows entries,
 * attachments and counters through the API and /metrics.
 *
 * Every gain of ownership is announced: a VIP the plan owns that it did not own at the last
 * apply is announced even when its entry was already in the map (kept through a hand-over hold
 * and regained, e.g. a forced failover cancelled at once). The plan's `l2Handover` VIPs (lost
 * to another live node a moment ago: make before break, src/plan/handover.ts) stay in the
 * map, answering, and are not announced; the API lists them with `handingOver: true`.
 * `reannounce()` (a member audible again) announces every owned VIP once more; the responder
 * itself announces every VIP on a link whose carrier comes back.
 */

import type { L2View, MetricFamily, XdpView } from "../api/runtime.ts";
import type { Plan } from "../plan/plan.ts";
import { formatIp, parseIp } from "../util/ip.ts";
import { type DesiredEntry, XdpDriver, type XdpDriverOptions } from "../xdp/driver.ts";
import { xdpMetricFamilies } from "../xdp/metrics.ts";
import type { Driver, DriverHealth } from "./driver.ts";

/** The text form the responder reports (formatIp of the parsed address). */
function canonical(ip: string): string {
  const p = parseIp(ip);
  return p === null ? ip : formatIp(p);
}

export class XdpL2Driver implements Driver {
  readonly name = "xdp";
  private lastError: string | undefined;
  private node = "";
  /** The VIPs owned (not held) at the last apply, and those held for a hand-over. */
  private owned = new Set<string>();
  private held = new Set<string>();

  private constructor(
    private readonly responder: XdpDriver,
    private readonly defaultInterfaces: readonly string[],
  ) {
    // A link that comes back announces only what this node owns (not what it is handing over).
    responder.carrierFilter = (ip) => this.owned.has(ip);
  }

  static async open(interfaces: readonly string[], opts: XdpDriverOptions = {}): Promise<XdpL2Driver> {
    return new XdpL2Driver(await XdpDriver.open(opts), interfaces);
  }

  /** The entries the plan asks for: each owned VIP on its advertisement's interfaces (or all of ours). */
  desired(plan: Plan): DesiredEntry[] {
    const out: DesiredEntry[] = [];
    for (const e of [...plan.l2, ...(plan.l2Handover ?? [])]) {
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
      const owned = new Set(plan.l2.map((e) => canonical(e.ip)));
      const gained = [...owned].filter((ip) => !this.owned.has(ip));
      const r = await this.responder.apply(this.desired(plan));
      this.owned = owned;
      this.held = new Set((plan.l2Handover ?? []).map((e) => canonical(e.ip)));
      // Gained VIPs whose entry was already there (not added or changed, so not announced yet).
      const announced = new Set([...r.added, ...r.changed].map((e) => e.ip));
      const quiet = gained.filter((ip) => !announced.has(ip));
      if (quiet.length > 0) await this.responder.reannounce(quiet);
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

  /** Announces every owned VIP again (a member that could not be heard is audible again). */
  reannounce(_reason: string): void {
    if (this.owned.size > 0) void this.responder.reannounce([...this.owned]).catch(() => {});
  }

  l2(): L2View[] {
    return this.responder.entries().map((e) => ({
      ip: e.ip,
      node: this.node,
      interface: e.ifname ?? `ifindex ${e.ifindex}`,
      mac: e.mac,
      ...(this.held.has(e.ip) ? { handingOver: true } : {}),
    }));
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
