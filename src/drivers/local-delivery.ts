/**
 * Local delivery: each VIP this node owns is installed as a `local` route (table local, protocol
 * number 201 = vipd), so services on the appliance receive its traffic. The kernel's own table is
 * the state: at start the driver reads the routes it installed earlier and applies the diff.
 */

import type { Plan } from "../plan/plan.ts";
import { sh } from "../util/exec.ts";
import type { Driver, DriverHealth } from "./driver.ts";

export const VIPD_ROUTE_PROTO = "201";

async function installed(family: "-4" | "-6"): Promise<Set<string>> {
  const r = await sh(["ip", "-j", family, "route", "show", "table", "local", "proto", VIPD_ROUTE_PROTO], {
    allowFail: true,
  });
  if (r.code !== 0 || r.stdout.trim() === "") return new Set();
  const routes = JSON.parse(r.stdout) as { dst: string }[];
  return new Set(routes.map((x) => x.dst.replace(/\/(32|128)$/, "")));
}

export class LocalDeliveryDriver implements Driver {
  readonly name = "local-delivery";
  private lastError: string | undefined;
  private count = 0;

  async apply(plan: Plan): Promise<void> {
    // During a start hold the previous run's layer-2 state keeps answering, so traffic for those
    // VIPs still arrives here: keep delivering it until the node owns (or gives up) them for real.
    if (plan.holdL2) return;
    // VIPs being handed over (make before break) keep their route: traffic still arrives here.
    const want = new Set([...plan.l2, ...(plan.l2Handover ?? [])].map((e) => e.ip));
    for (const fam of ["-4", "-6"] as const) {
      const have = await installed(fam);
      const mine = (ip: string) => ip.includes(":") === (fam === "-6");
      for (const ip of want) {
        if (!mine(ip) || have.has(ip)) continue;
        await this.ip([
          fam,
          "route",
          "replace",
          "local",
          ip,
          "dev",
          "lo",
          "table",
          "local",
          "proto",
          VIPD_ROUTE_PROTO,
        ]);
      }
      for (const ip of have) {
        if (want.has(ip)) continue;
        await this.ip([
          fam,
          "route",
          "del",
          "local",
          ip,
          "dev",
          "lo",
          "table",
          "local",
          "proto",
          VIPD_ROUTE_PROTO,
        ]);
      }
    }
    this.count = want.size;
  }

  private async ip(args: string[]): Promise<void> {
    const r = await sh(["ip", ...args], { allowFail: true });
    if (r.code !== 0) {
      this.lastError = `ip ${args.join(" ")}: ${r.stderr.trim()}`;
      throw new Error(this.lastError);
    }
    this.lastError = undefined;
  }

  health(): DriverHealth {
    return {
      name: this.name,
      healthy: this.lastError === undefined,
      detail: this.lastError ?? `${this.count} local route(s)`,
    };
  }

  async close(): Promise<void> {}

  /** Removes every route this driver installed (for `vipd detach`). */
  static async removeAll(): Promise<void> {
    for (const fam of ["-4", "-6"] as const) {
      for (const ip of await installed(fam)) {
        await sh(["ip", fam, "route", "del", "local", ip, "table", "local", "proto", VIPD_ROUTE_PROTO], {
          allowFail: true,
        });
      }
    }
  }
}
