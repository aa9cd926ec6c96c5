/**
 * The Daemon (src/appliance/daemon.ts) in-process, without root: config → allocate → plan →
 * drivers, with real files in a temp directory and a real logger whose lines are collected.
 * The driver here only records the plans it is handed: the Daemon is what is under test, and
 * the contract it owes drivers is "the whole plan, after every change, in order".
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { ASSIGNMENTS_FILE, Daemon } from "../../src/appliance/daemon.ts";
import type { Driver, DriverHealth } from "../../src/drivers/driver.ts";
import type { Plan } from "../../src/plan/plan.ts";
import { createLogger } from "../../src/util/log.ts";

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), `vipd-daemon-${process.pid}-`));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const POOL = (addresses: string) => `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan }
spec:
  addresses: [${addresses}]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: lan-l2 }
`;
const SVC = (ns: string, name: string) => `---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${ns} }
spec:
  type: LoadBalancer
  ports: [{ port: 80 }]
`;

class RecordingDriver implements Driver {
  readonly plans: Plan[] = [];
  failNext: string | undefined;
  closed = false;
  constructor(readonly name = "recorder") {}
  async apply(plan: Plan): Promise<void> {
    if (this.failNext !== undefined) {
      const m = this.failNext;
      this.failNext = undefined;
      throw new Error(m);
    }
    this.plans.push(plan);
  }
  health(): DriverHealth {
    return { name: this.name, healthy: true };
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

function setup(
  files: Record<string, string>,
  opts: { nodeName?: string; stateDir?: string; paths?: string[] } = {},
) {
  const d = tempDir();
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(d, name, ".."), { recursive: true });
    writeFileSync(join(d, name), text);
  }
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("daemon", { level: "debug", sink: (l) => lines.push(JSON.parse(l)) });
  const daemon = new Daemon({
    configPaths: (opts.paths ?? Object.keys(files)).map((p) => join(d, p)),
    nodeName: opts.nodeName,
    version: "test",
    log,
    stateDir: opts.stateDir,
    now: () => 1_000_000,
  });
  const driver = new RecordingDriver();
  daemon.addDriver(driver);
  return { d, daemon, driver, lines };
}

const ipsOf = (d: Daemon) => Object.fromEntries(d.services().map((s) => [`${s.namespace}/${s.name}`, s.ips]));
const metric = (d: Daemon, name: string, labels: Record<string, string> = {}) =>
  d
    .metrics()
    .find((m) => m.name === name)
    ?.samples.find((s) => JSON.stringify(s.labels ?? {}) === JSON.stringify(labels))?.value;

describe("Daemon: reload", () => {
  test("the first reload applies generation 1 and hands the whole plan to every driver", async () => {
    const { daemon, driver, lines } = setup({ "c.yaml": POOL('"10.1.0.10-10.1.0.20"') + SVC("shop", "web") });
    expect(daemon.ready()).toEqual({ ready: false, reasons: ["no configuration loaded"] });
    expect(await daemon.reload("start")).toEqual({ ok: true, problems: [] });
    expect(daemon.status().configGeneration).toBe(1);
    expect(daemon.ready()).toEqual({ ready: true, reasons: [] });
    expect(ipsOf(daemon)).toEqual({ "shop/web": ["10.1.0.10"] });
    expect(driver.plans).toHaveLength(1);
    expect(driver.plans[0]?.l2.map((e) => e.ip)).toEqual(["10.1.0.10"]);
    expect(daemon.currentPlan).toBe(driver.plans[0] as Plan);
    const applied = lines.find((l) => l["message"] === "configuration applied");
    expect(applied).toMatchObject({ reason: "start", generation: 1, services: 1, assigned: 1, l2: 1 });
    expect(lines.find((l) => l["event"] === "IPAllocated")).toMatchObject({
      service: "shop/web",
      message: 'assigned 10.1.0.10 from pool "lan"',
    });
  });

  test("the same text again is no new generation and no new plan", async () => {
    const { daemon, driver } = setup({ "c.yaml": POOL('"10.1.0.10-10.1.0.20"') + SVC("shop", "web") });
    await daemon.reload("start");
    await daemon.reload("SIGHUP");
    await daemon.reload("file change");
    expect(daemon.status().configGeneration).toBe(1);
    expect(driver.plans).toHaveLength(1);
    expect(metric(daemon, "vipd_config_reloads_total", { result: "applied" })).toBe(1);
    expect(metric(daemon, "vipd_config_reloads_total", { result: "unchanged" })).toBe(2);
  });

  test("an invalid set is rejected with file:line problems, and nothing changes", async () => {
    const { d, daemon, driver, lines } = setup({
      "c.yaml": POOL('"10.1.0.10-10.1.0.20"') + SVC("shop", "web"),
    });
    await daemon.reload("start");
    const before = { gen: daemon.status().configGeneration, ips: ipsOf(daemon), cfg: daemon.config() };
    writeFileSync(
      join(d, "c.yaml"),
      POOL('"10.1.0.10-10.1.0.300"') + SVC("shop", "web") + SVC("shop", "api"),
    );
    const r = await daemon.reload("SIGHUP");
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => `${p.line} ${p.field}`)).toEqual(["5 spec.addresses[0]"]);
    expect(daemon.status().configGeneration).toBe(before.gen);
    expect(ipsOf(daemon)).toEqual(before.ips);
    expect(daemon.config()).toEqual(before.cfg);
    expect(driver.plans).toHaveLength(1);
    const rejected = lines.find((l) => l["message"] === "configuration rejected");
    expect(rejected).toMatchObject({ level: "error", reason: "SIGHUP", keptGeneration: 1 });
    expect(((rejected?.["problems"] ?? []) as string[])[0]).toStartWith(
      `${join(d, "c.yaml")}:5: IPAddressPool/lan: `,
    );
    expect(metric(daemon, "vipd_config_last_reload_successful")).toBe(0);
    expect(metric(daemon, "vipd_config_reloads_total", { result: "rejected" })).toBe(1);
    // Fixed: applied, and the gauge says so.
    writeFileSync(join(d, "c.yaml"), POOL('"10.1.0.10-10.1.0.20"') + SVC("shop", "web") + SVC("shop", "api"));
    expect((await daemon.reload("SIGHUP")).ok).toBe(true);
    expect(daemon.status().configGeneration).toBe(2);
    expect(metric(daemon, "vipd_config_last_reload_successful")).toBe(1);
  });

  test("a missing --config path rejects the set instead of dropping that file's Services", async () => {
    const { d, daemon } = setup({
      "pools.yaml": POOL('"10.1.0.10-10.1.0.20"'),
      "services.yaml": SVC("shop", "web"),
    });
    await daemon.reload("start");
    expect(ipsOf(daemon)).toEqual({ "shop/web": ["10.1.0.10"] });
    rmSync(join(d, "services.yaml"));
    const r = await daemon.reload("file change");
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      {
        file: join(d, "services.yaml"),
        line: 0,
        field: "-",
        message: "no such file or directory",
        pointer: "",
      },
    ]);
    expect(ipsOf(daemon)).toEqual({ "shop/web": ["10.1.0.10"] });
  });

  test("an empty directory: rejected with 'no manifest files found'", async () => {
    const d = tempDir();
    mkdirSync(join(d, "conf"));
    const daemon = new Daemon({
      configPaths: [join(d, "conf")],
      version: "test",
      log: createLogger("daemon", { sink: () => {} }),
    });
    const r = await daemon.reload("start");
    expect(r.problems.map((p) => p.message)).toEqual(["no manifest files found"]);
    expect(daemon.ready().ready).toBe(false);
  });

  test("concurrent triggers are serialised: each reads the files when its turn comes, so one new generation", async () => {
    const { d, daemon, driver } = setup({ "c.yaml": POOL('"10.1.0.10-10.1.0.20"') + SVC("a", "s0") });
    await daemon.reload("start");
    const all: Promise<{ ok: boolean }>[] = [];
    for (let i = 1; i <= 5; i++) {
      writeFileSync(
        join(d, "c.yaml"),
        POOL('"10.1.0.10-10.1.0.20"') + Array.from({ length: i + 1 }, (_, k) => SVC("a", `s${k}`)).join(""),
      );
      all.push(daemon.reload(`change ${i}`));
    }
    expect((await Promise.all(all)).map((r) => r.ok)).toEqual([true, true, true, true, true]);
    expect(daemon.services().map((s) => s.name)).toEqual(["s0", "s1", "s2", "s3", "s4", "s5"]);
    expect(daemon.status().configGeneration).toBe(2);
    expect(driver.plans.map((p) => p.l2.length)).toEqual([1, 6]);
  });

  test("a driver that throws is logged and does not stop the others; the next plan reaches it again", async () => {
    const { d, daemon, driver, lines } = setup({
      "c.yaml": POOL('"10.1.0.10-10.1.0.20"') + SVC("shop", "web"),
    });
    const second = new RecordingDriver("second");
    daemon.addDriver(second);
    driver.failNext = "netlink said no";
    await daemon.reload("start");
    expect(driver.plans).toHaveLength(0);
    expect(second.plans).toHaveLength(1);
    expect(lines.find((l) => l["message"] === "driver failed to apply the plan")).toMatchObject({
      level: "error",
      driver: "recorder",
      error: "netlink said no",
    });
    writeFileSync(join(d, "c.yaml"), POOL('"10.1.0.10-10.1.0.20"') + SVC("shop", "web") + SVC("shop", "api"));
    await daemon.reload("SIGHUP");
    expect(driver.plans.at(-1)?.l2.map((e) => e.ip)).toEqual(["10.1.0.10", "10.1.0.11"]);
    await daemon.close();
    expect([driver.closed, second.closed]).toEqual([true, true]);
  });

  test("an unhealthy driver makes the node not ready, naming it", async () => {
    const { daemon } = setup({ "c.yaml": POOL('"10.1.0.10-10.1.0.20"') });
    daemon.addDriver({
      name: "xdp",
      apply: async () => {},
      health: () => ({ name: "xdp", healthy: false, detail: "not attached" }),
      close: async () => {},
    });
    await daemon.reload("start");
    expect(daemon.ready()).toEqual({ ready: false, reasons: ["driver xdp: not attached"] });
    expect(daemon.status().drivers).toEqual([
      { name: "recorder", healthy: true },
      { name: "xdp", healthy: false, detail: "not attached" },
    ]);
  });
});

describe("Daemon: changes that need a restart", () => {
  test("a reload that changes start-only settings applies the rest and says what waits for a restart", async () => {
    const settings = (listen: string, cls = "") => `---
apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: x }
spec:
  labels: { rack: r1 }
  api: { listen: "${listen}" }
${cls}`;
    const peer = `---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: tor }
spec: { myASN: 64500, peerASN: 64501, peerAddress: 10.1.0.1, bfdProfile: fast }
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: { name: fast }
`;
    const base = POOL('"10.1.0.10-10.1.0.20"') + SVC("shop", "web");
    const { d, daemon, lines } = setup({ "c.yaml": base + settings("127.0.0.1:7473") });
    await daemon.reload("start");
    const warnings = () =>
      lines.filter((l) => l["message"] === "some changes take effect only after vipd restarts");
    // Services, labels: applied, nothing to warn about.
    writeFileSync(join(d, "c.yaml"), base + SVC("shop", "api") + settings("127.0.0.1:7473"));
    await daemon.reload("SIGHUP");
    expect(daemon.status().configGeneration).toBe(2);
    expect(warnings()).toEqual([]);
    // The API address and the allocator's class: applied as config, and listed as waiting for a
    // restart (the first BGP peer and BFD are not: the speaker starts with them).
    writeFileSync(
      join(d, "c.yaml"),
      base + SVC("shop", "api") + settings("127.0.0.1:9000", "  loadBalancerClass: vipd.io/lb\n") + peer,
    );
    await daemon.reload("SIGHUP");
    expect(daemon.status().configGeneration).toBe(3);
    expect(warnings().map((l) => [l["level"], l["generation"], l["changes"]])).toEqual([
      ["warn", 3, ["NodeSettings.spec.loadBalancerClass", "NodeSettings.spec.api.listen"]],
    ]);
  });
});

describe("Daemon: node identity", () => {
  test("--node-name wins over NodeSettings.spec.nodeName, which wins over the host name", async () => {
    const settings = `---
apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: x }
spec: { nodeName: from-settings, labels: { rack: r1 } }
`;
    const a = setup({ "c.yaml": POOL('"10.1.0.10"') + settings }, { nodeName: "from-flag" });
    await a.daemon.reload("start");
    expect(a.daemon.node).toEqual({ name: "from-flag", labels: { rack: "r1" } });
    const b = setup({ "c.yaml": POOL('"10.1.0.10"') + settings });
    await b.daemon.reload("start");
    expect(b.daemon.node.name).toBe("from-settings");
    const c = setup({ "c.yaml": POOL('"10.1.0.10"') });
    await c.daemon.reload("start");
    expect(c.daemon.node.name).toBe(process.env.HOSTNAME ?? hostname());
    expect(c.daemon.status().node).toBe(c.daemon.node.name);
  });
});

describe("Daemon: the state file", () => {
  test("assignments are written after each change and adopted by the next Daemon before anything new", async () => {
    const state = join(tempDir(), "state");
    const one = setup({ "c.yaml": POOL('"10.1.0.10-10.1.0.20"') + SVC("shop", "b") }, { stateDir: state });
    await one.daemon.reload("start");
    expect(JSON.parse(readFileSync(join(state, ASSIGNMENTS_FILE), "utf8"))).toEqual({
      "shop/b": { ips: ["10.1.0.10"], pool: "lan" },
    });
    await one.daemon.close();
    // A new process (a new Daemon) with a set where "a" sorts first.
    const two = setup(
      { "c.yaml": POOL('"10.1.0.10-10.1.0.20"') + SVC("shop", "a") + SVC("shop", "b") },
      {
        stateDir: state,
      },
    );
    await two.daemon.reload("start");
    expect(ipsOf(two.daemon)).toEqual({ "shop/a": ["10.1.0.11"], "shop/b": ["10.1.0.10"] });
    expect(JSON.parse(readFileSync(join(state, ASSIGNMENTS_FILE), "utf8"))).toEqual({
      "shop/a": { ips: ["10.1.0.11"], pool: "lan" },
      "shop/b": { ips: ["10.1.0.10"], pool: "lan" },
    });
  });

  test("a corrupt state file is ignored (fresh allocation), and replaced by a valid one", async () => {
    const state = tempDir();
    writeFileSync(join(state, ASSIGNMENTS_FILE), '{"shop/b": ["10.1.0.15"');
    const { daemon } = setup(
      { "c.yaml": POOL('"10.1.0.10-10.1.0.20"') + SVC("shop", "b") },
      { stateDir: state },
    );
    await daemon.reload("start");
    expect(ipsOf(daemon)).toEqual({ "shop/b": ["10.1.0.10"] });
    expect(JSON.parse(readFileSync(join(state, ASSIGNMENTS_FILE), "utf8"))).toEqual({
      "shop/b": { ips: ["10.1.0.10"], pool: "lan" },
    });
  });

  test("a state file with entries of the wrong shape keeps only the valid ones; the older list form is read", async () => {
    const state = tempDir();
    writeFileSync(
      join(state, ASSIGNMENTS_FILE),
      JSON.stringify({
        "shop/a": "10.1.0.15",
        "shop/b": ["10.1.0.16"],
        "shop/c": [7],
        "shop/d": { ips: ["10.1.0.17"], pool: "lan" },
        "shop/e": { pool: "lan" },
      }),
    );
    const { daemon } = setup(
      {
        "c.yaml":
          POOL('"10.1.0.10-10.1.0.20"') + ["a", "b", "c", "d", "e"].map((n) => SVC("shop", n)).join(""),
      },
      { stateDir: state },
    );
    await daemon.reload("start");
    expect(ipsOf(daemon)).toEqual({
      "shop/a": ["10.1.0.10"],
      "shop/b": ["10.1.0.16"],
      "shop/c": ["10.1.0.11"],
      "shop/d": ["10.1.0.17"],
      "shop/e": ["10.1.0.12"],
    });
  });

  // Changed from "kept, and reported as stranded": as MetalLB, an address no pool allows is not
  // adopted at a restart; the Service is re-addressed and the release is logged with the reason.
  test("an address the pools no longer have: re-addressed at the restart, the release logged with why", async () => {
    const state = tempDir();
    const one = setup({ "c.yaml": POOL('"10.1.0.10-10.1.0.20"') + SVC("shop", "a") }, { stateDir: state });
    await one.daemon.reload("start");
    await one.daemon.close();
    const two = setup({ "c.yaml": POOL('"10.1.0.11-10.1.0.20"') + SVC("shop", "a") }, { stateDir: state });
    await two.daemon.reload("start");
    const a = two.daemon.services()[0];
    expect(a?.ips).toEqual(["10.1.0.11"]);
    expect(a?.warnings).toEqual(["released 10.1.0.10: 10.1.0.10 is not in any pool"]);
    expect(two.lines.find((l) => l["event"] === "IPReleased")).toMatchObject({
      service: "shop/a",
      message: "released 10.1.0.10: 10.1.0.10 is not in any pool",
    });
    // Only the new address is announced.
    expect(two.daemon.currentPlan.l2.map((e) => e.ip)).toEqual(["10.1.0.11"]);
  });
});

describe("Daemon: the API's configuration calls", () => {
  test("config() is the file's text and a stable tag; applyConfig validates, writes atomically, applies", async () => {
    const text = POOL('"10.1.0.10-10.1.0.20"') + SVC("shop", "web");
    const { d, daemon, driver } = setup({ "c.yaml": text });
    await daemon.reload("start");
    const c1 = daemon.config();
    expect(c1.yaml).toBe(text);
    expect(c1.etag).toMatch(/^[0-9a-f]{32}$/);
    expect(daemon.config().etag).toBe(c1.etag);

    // Invalid: problems in the API's shape, nothing written or applied.
    const bad = await daemon.applyConfig(`${text}  bogus: 1\n`);
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.problems[0]).toMatchObject({ file: "<request>", field: "spec.bogus" });
    expect(readFileSync(join(d, "c.yaml"), "utf8")).toBe(text);
    expect(daemon.validateConfig(`${text}  bogus: 1\n`)).toHaveLength(1);
    expect(daemon.validateConfig(text)).toEqual([]);

    const next = text + SVC("shop", "api");
    const ok = await daemon.applyConfig(next);
    expect(ok.ok).toBe(true);
    expect(readFileSync(join(d, "c.yaml"), "utf8")).toBe(next);
    expect(daemon.config()).toEqual({ etag: ok.ok ? ok.etag : "", yaml: next });
    expect(daemon.config().etag).not.toBe(c1.etag);
    expect(daemon.status().configGeneration).toBe(2);
    expect(driver.plans).toHaveLength(2);
    // The file watcher's reload that follows finds nothing new.
    await daemon.reload("file change");
    expect(daemon.status().configGeneration).toBe(2);
  });

  test("applyConfig refuses when --config is a directory or several paths, and writes nothing", async () => {
    const text = POOL('"10.1.0.10-10.1.0.20"');
    const { d, daemon } = setup({ "conf/c.yaml": text }, { paths: ["conf"] });
    await daemon.reload("start");
    const r = await daemon.applyConfig(text + SVC("shop", "web"));
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.problems[0]?.message).toContain("is a directory; the API can replace only a single file");
    expect(readFileSync(join(d, "conf/c.yaml"), "utf8")).toBe(text);
    expect(daemon.status().configGeneration).toBe(1);
  });
});
