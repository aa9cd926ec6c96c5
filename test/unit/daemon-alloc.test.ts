/**
 * Allocation on change in the appliance (src/plan/allocate.ts through the Daemon): a reload
 * that makes an address invalid re-addresses the Service or leaves it without one, as MetalLB
 * does, and says so — an IPReleased log line with the reason, then IPAllocated or
 * AllocationFailed, counted in vipd_allocation_events_total — and the plan follows. Nothing
 * still valid moves, across reloads and restarts. Each story names the MetalLB case it follows.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Daemon } from "../../src/appliance/daemon.ts";
import { configFromText } from "../../src/config/index.ts";
import type { Driver, DriverHealth } from "../../src/drivers/driver.ts";
import { allocate, emptyAllocation, logAllocation } from "../../src/plan/allocate.ts";
import type { Plan } from "../../src/plan/plan.ts";
import { createLogger } from "../../src/util/log.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const POOL = (name: string, addresses: string, extra = "") => `---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: ${name} }
spec:
  addresses: [${addresses}]
${extra}`;
const L2 = `---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: l2 }
`;
const SVC = (name: string, o: { ann?: Record<string, string>; port?: number; ip?: string } = {}) => `---
apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: shop
  annotations: ${JSON.stringify(o.ann ?? {})}
spec:
  type: LoadBalancer
  ports: [{ port: ${o.port ?? 80} }]
${o.ip === undefined ? "" : `  loadBalancerIP: ${o.ip}\n`}`;

class RecordingDriver implements Driver {
  readonly name = "recorder";
  readonly plans: Plan[] = [];
  async apply(plan: Plan): Promise<void> {
    this.plans.push(plan);
  }
  health(): DriverHealth {
    return { name: this.name, healthy: true };
  }
  async close(): Promise<void> {}
}

function vipd(stateDir?: string) {
  const d = mkdtempSync(join(tmpdir(), `vipd-alloc-${process.pid}-`));
  dirs.push(d);
  const file = join(d, "c.yaml");
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("daemon", { level: "debug", sink: (l) => lines.push(JSON.parse(l)) });
  const daemon = new Daemon({ configPaths: [file], version: "test", log, stateDir, now: () => 1_000_000 });
  const driver = new RecordingDriver();
  daemon.addDriver(driver);
  /** Writes the config, reloads, and returns the allocation log lines of that reload. */
  const apply = async (text: string) => {
    writeFileSync(file, text);
    const mark = lines.length;
    const r = await daemon.reload("file change");
    expect(r.problems).toEqual([]);
    return lines
      .slice(mark)
      .filter((l) => ["IPAllocated", "IPReleased", "AllocationFailed"].includes(l["event"] as string))
      .map((l) => `${l["event"]} ${l["service"]}: ${l["message"]}`);
  };
  const reload = async (text: string) => {
    writeFileSync(file, text);
    return daemon.reload("file change");
  };
  const ips = () => Object.fromEntries(daemon.services().map((s) => [s.name, s.ips]));
  const announced = () => (driver.plans.at(-1)?.l2 ?? []).map((e) => e.ip).sort();
  const count = (reason: string) =>
    daemon
      .metrics()
      .find((m) => m.name === "vipd_allocation_events_total")
      ?.samples.find((s) => s.labels?.["reason"] === reason)?.value;
  return { daemon, apply, reload, ips, announced, count };
}

describe("appliance: allocation on change", () => {
  test("MetalLB TestConfigReload 'can't shrink further': the pool shrinks on reload, the Service outside is re-addressed, logged and counted", async () => {
    const v = vipd();
    expect(await v.apply(POOL("lan", '"10.1.0.10-10.1.0.20"') + L2 + SVC("a") + SVC("b"))).toEqual([
      'IPAllocated shop/a: assigned 10.1.0.10 from pool "lan"',
      'IPAllocated shop/b: assigned 10.1.0.11 from pool "lan"',
    ]);
    expect(await v.apply(POOL("lan", '"10.1.0.11-10.1.0.20"') + L2 + SVC("a") + SVC("b"))).toEqual([
      "IPReleased shop/a: released 10.1.0.10: 10.1.0.10 is not in any pool",
      'IPAllocated shop/a: assigned 10.1.0.12 from pool "lan"',
    ]);
    expect(v.ips()).toEqual({ a: ["10.1.0.12"], b: ["10.1.0.11"] });
    expect(v.announced()).toEqual(["10.1.0.11", "10.1.0.12"]);
    expect([v.count("IPAllocated"), v.count("IPReleased"), v.count("AllocationFailed")]).toEqual([3, 1, 0]);
    // The same configuration again (a touch of the file with a comment): nothing moves, nothing said.
    expect(
      await v.apply(`# touched\n${POOL("lan", '"10.1.0.11-10.1.0.20"')}${L2}${SVC("a")}${SVC("b")}`),
    ).toEqual([]);
  });

  test("a pool deleted: its Service moves to what is left; while a Service still pins it the reload is refused and nothing changes", async () => {
    const v = vipd();
    const pin = { "metallb.io/address-pool": "edge" };
    await v.apply(
      POOL("lan", '"10.1.0.10-10.1.0.20"') + POOL("edge", '"10.2.0.1/32"') + L2 + SVC("a", { ann: pin }),
    );
    expect(v.announced()).toEqual(["10.2.0.1"]);
    // The appliance validates manifests as a set: a Service naming a pool that does not exist is
    // a file:line problem, and the running configuration stays (vipd's "bad input changes nothing").
    const refused = await v.reload(POOL("lan", '"10.1.0.10-10.1.0.20"') + L2 + SVC("a", { ann: pin }));
    expect(refused.problems.map((p) => p.message)).toEqual(['IPAddressPool "edge" does not exist']);
    expect(v.ips()).toEqual({ a: ["10.2.0.1"] });
    expect(await v.apply(POOL("lan", '"10.1.0.10-10.1.0.20"') + L2 + SVC("a"))).toEqual([
      "IPReleased shop/a: released 10.2.0.1: 10.2.0.1 is not in any pool",
      'IPAllocated shop/a: assigned 10.1.0.10 from pool "lan"',
    ]);
    expect(v.announced()).toEqual(["10.1.0.10"]);
  });

  test("all pools deleted: every Service is left without an address, AllocationFailed with the reason, nothing announced", async () => {
    const v = vipd();
    await v.apply(POOL("lan", '"10.1.0.10-10.1.0.20"') + L2 + SVC("a"));
    expect(await v.apply(L2 + SVC("a"))).toEqual([
      "IPReleased shop/a: released 10.1.0.10: 10.1.0.10 is not in any pool",
      "AllocationFailed shop/a: no address pools are configured",
    ]);
    expect(v.ips()).toEqual({ a: [] });
    expect(v.announced()).toEqual([]);
    expect(v.count("AllocationFailed")).toBe(1);
  });

  test("MetalLB 'enable buggy IPs not allowed': avoidBuggyIPs turned on re-addresses the .0 holder only", async () => {
    const v = vipd();
    await v.apply(POOL("lan", '"10.1.0.0/24"') + L2 + SVC("a") + SVC("b"));
    expect(v.ips()).toEqual({ a: ["10.1.0.0"], b: ["10.1.0.1"] });
    expect(
      await v.apply(POOL("lan", '"10.1.0.0/24"', "  avoidBuggyIPs: true\n") + L2 + SVC("a") + SVC("b")),
    ).toEqual([
      'IPReleased shop/a: released 10.1.0.0: 10.1.0.0 is skipped by pool "lan" (avoidBuggyIPs)',
      'IPAllocated shop/a: assigned 10.1.0.2 from pool "lan"',
    ]);
    expect(v.ips()).toEqual({ a: ["10.1.0.2"], b: ["10.1.0.1"] });
  });

  test("MetalLB TestAssignment 's3 can't change its sharing key while keeping the same IP': the changed sharer moves", async () => {
    const v = vipd();
    const k = { "metallb.io/allow-shared-ip": "k" };
    await v.apply(
      POOL("lan", '"10.1.0.10-10.1.0.20"') + L2 + SVC("dns", { ann: k, port: 53 }) + SVC("web", { ann: k }),
    );
    expect(v.ips()).toEqual({ dns: ["10.1.0.10"], web: ["10.1.0.10"] });
    const other = { "metallb.io/allow-shared-ip": "other" };
    expect(
      await v.apply(
        POOL("lan", '"10.1.0.10-10.1.0.20"') +
          L2 +
          SVC("dns", { ann: k, port: 53 }) +
          SVC("web", { ann: other }),
      ),
    ).toEqual([
      'IPReleased shop/web: released 10.1.0.10: 10.1.0.10 is used by shop/dns and cannot be shared: sharing key "other" differs from "k"',
      'IPAllocated shop/web: assigned 10.1.0.11 from pool "lan"',
    ]);
    expect(v.ips()).toEqual({ dns: ["10.1.0.10"], web: ["10.1.0.11"] });
  });

  test("MetalLB 'request infeasible IP': a new requested address in no pool releases the old one", async () => {
    const v = vipd();
    await v.apply(POOL("lan", '"10.1.0.10-10.1.0.20"') + L2 + SVC("a", { ip: "10.1.0.15" }));
    expect(await v.apply(POOL("lan", '"10.1.0.10-10.1.0.20"') + L2 + SVC("a", { ip: "10.9.9.9" }))).toEqual([
      "IPReleased shop/a: released 10.1.0.15: the Service requests other IPs",
      "AllocationFailed shop/a: 10.9.9.9 is not in any pool",
    ]);
    expect(v.announced()).toEqual([]);
  });

  test("stability: a restart with the state file keeps every valid address although a fresh run would pick others", async () => {
    const state = mkdtempSync(join(tmpdir(), `vipd-alloc-state-${process.pid}-`));
    dirs.push(state);
    const one = vipd(state);
    await one.apply(POOL("lan", '"10.1.0.10-10.1.0.20"') + L2 + SVC("b") + SVC("c"));
    await one.apply(POOL("lan", '"10.1.0.10-10.1.0.20"') + L2 + SVC("c"));
    expect(one.ips()).toEqual({ c: ["10.1.0.11"] });
    await one.daemon.close();
    // A new pool that sorts first: a fresh allocation would take 10.0.0.1 for c.
    const two = vipd(state);
    const said = await two.apply(
      POOL("a-first", '"10.0.0.1/32"') + POOL("lan", '"10.1.0.10-10.1.0.20"') + L2 + SVC("c") + SVC("d"),
    );
    expect(two.ips()).toEqual({ c: ["10.1.0.11"], d: ["10.0.0.1"] });
    expect(said.filter((l) => l.startsWith("IPReleased"))).toEqual([]);
  });
});

describe("the allocation log at scale (logAllocation)", () => {
  const run = (services: number, level: "info" | "debug") => {
    const r = configFromText(
      POOL("a", "10.0.0.0/28") +
        POOL("b", "10.0.1.0/24") +
        L2 +
        Array.from({ length: services }, (_, i) => SVC(`s${i}`)).join(""),
      "log.yaml",
    );
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const lines: Record<string, unknown>[] = [];
    const log = createLogger("daemon", { level, sink: (l) => lines.push(JSON.parse(l)) });
    logAllocation(log, allocate(r.config, emptyAllocation()));
    return lines;
  };

  test("a few events: one line per Service at info, as before", () => {
    const lines = run(3, "info");
    expect(lines.map((l) => [l["message"], l["service"], l["event"]])).toEqual([
      ['assigned 10.0.0.0 from pool "a"', "shop/s0", "IPAllocated"],
      ['assigned 10.0.0.1 from pool "a"', "shop/s1", "IPAllocated"],
      ['assigned 10.0.0.2 from pool "a"', "shop/s2", "IPAllocated"],
    ]);
  });

  test("many: one summary line per pool with counts at info; per-Service lines only at debug", () => {
    const info = run(300, "info");
    expect(info.map((l) => [l["message"], l["pool"], l["allocated"], l["failed"], l["released"]])).toEqual([
      ["allocation summary", null, 0, 28, 0],
      ["allocation summary", "a", 16, 0, 0],
      ["allocation summary", "b", 256, 0, 0],
    ]);
    const debug = run(300, "debug");
    expect(debug.filter((l) => l["level"] === "debug")).toHaveLength(300);
    expect(debug.filter((l) => l["message"] === "allocation summary")).toHaveLength(3);
  });
});
