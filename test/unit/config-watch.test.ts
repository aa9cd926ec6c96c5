/**
 * Reload on file change without a fixed debounce (src/appliance/watch.ts), with a real Daemon
 * reading real files: each writer pattern below is driven by hand, with a change event (`kick`)
 * at the worst moment (right after the truncate, between the halves). Whatever the timing, no
 * configuration that was only half written is ever applied, a torn file that does not parse is
 * not reported as rejected, a file replaced by rename is applied without waiting, and events
 * during a reload coalesce. Every applied configuration is recorded (the daemon's "config" event,
 * with the Services it then lists).
 */
import { afterAll, describe, expect, test } from "bun:test";
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Daemon } from "../../src/appliance/daemon.ts";
import { ConfigWatch, manifestName } from "../../src/appliance/watch.ts";
import type { NodeEvent } from "../../src/node/applier.ts";
import { createLogger } from "../../src/util/log.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const POOL = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan }
spec:
  addresses: ["10.9.0.0/24"]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: lan-l2 }
`;
const SVC = (name: string) => `---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: shop }
spec:
  type: LoadBalancer
  ports: [{ port: 80 }]
`;
const svcs = (n: number, from = 0) => Array.from({ length: n }, (_, i) => SVC(`s${from + i}`)).join("");

async function setup(services: string) {
  const d = mkdtempSync(join(tmpdir(), `vipd-watch-${process.pid}-`));
  dirs.push(d);
  const conf = join(d, "conf");
  mkdirSync(conf);
  writeFileSync(join(conf, "pools.yaml"), POOL);
  writeFileSync(join(conf, "services.yaml"), services);
  /** The Services listed at each applied configuration. */
  const applied: number[] = [];
  const logs: string[] = [];
  const daemon: Daemon = new Daemon({
    configPaths: [conf],
    nodeName: "n1",
    version: "test",
    stateDir: undefined,
    log: createLogger("test", { sink: (l) => logs.push(l) }),
    onEvent: (e: NodeEvent) => {
      if (e.type === "config") applied.push(daemon.services().length);
    },
  });
  // As `vipd run` does: the start's reads are the last reads the watcher knows of.
  const watch = new ConfigWatch({ reload: (r, g) => daemon.reload(r, g), settleMs: 100 });
  const first = await daemon.reload("start", (stamps) => {
    watch.record(stamps);
    return {};
  });
  expect(first.ok).toBe(true);
  const metric = (result: string) =>
    daemon
      .metrics()
      .find((m) => m.name === "vipd_config_reloads_total")
      ?.samples.find((s) => s.labels?.result === result)?.value;
  return {
    daemon,
    watch,
    applied,
    logs,
    file: join(conf, "services.yaml"),
    conf,
    metric,
    close: async () => {
      watch.close();
      await daemon.close();
    },
  };
}

describe("file reloads without a debounce", () => {
  test("manifest names start a reload at once; editors' temp and swap names do not", () => {
    expect(manifestName("services.yaml")).toBe(true);
    expect(manifestName("team-b/svc.yml")).toBe(true);
    expect(manifestName("x.json")).toBe(true);
    expect(manifestName("team-b")).toBe(true);
    expect(manifestName(null)).toBe(true);
    expect(manifestName("services.yaml.tmp")).toBe(false);
    expect(manifestName(".services.yaml.swp")).toBe(false);
    expect(manifestName("services.yaml~")).toBe(false);
    expect(manifestName("README.md")).toBe(false);
  });

  test("truncate, then write after a pause: the empty file is never applied", async () => {
    const t = await setup(svcs(5));
    try {
      expect(t.applied).toEqual([5]);
      truncateSync(t.file, 0);
      t.watch.kick("file change", "services.yaml");
      await Bun.sleep(40);
      writeFileSync(t.file, svcs(6));
      t.watch.kick("file change", "services.yaml");
      await t.watch.idle();
      expect(t.applied).toEqual([5, 6]);
      expect(t.metric("rejected")).toBe(0);
    } finally {
      await t.close();
    }
  });

  test("half written in place (a valid prefix), the rest after a pause: the half is never applied", async () => {
    const t = await setup(svcs(4));
    try {
      // The first half is a complete, valid set on its own (it ends at a document boundary).
      writeFileSync(t.file, svcs(2));
      t.watch.kick("file change", "services.yaml");
      await Bun.sleep(40);
      appendFileSync(t.file, svcs(4, 2));
      t.watch.kick("file change", "services.yaml");
      await t.watch.idle();
      expect(t.applied).toEqual([4, 6]);
    } finally {
      await t.close();
    }
  });

  test("a torn file that does not parse is read again, not reported as rejected", async () => {
    const t = await setup(svcs(3));
    try {
      const full = svcs(4);
      const cut = full.length - 30;
      writeFileSync(t.file, full.slice(0, cut));
      t.watch.kick("file change", "services.yaml");
      await Bun.sleep(30);
      appendFileSync(t.file, full.slice(cut));
      t.watch.kick("file change", "services.yaml");
      await t.watch.idle();
      expect(t.applied).toEqual([3, 4]);
      expect(t.metric("rejected")).toBe(0);
      expect(t.logs.some((l) => l.includes("configuration rejected"))).toBe(false);
    } finally {
      await t.close();
    }
  });

  test("an invalid file that stays invalid is reported once it has settled", async () => {
    const t = await setup(svcs(3));
    try {
      writeFileSync(t.file, `${svcs(3)}  ports: [ {\n`);
      t.watch.kick("file change", "services.yaml");
      await t.watch.idle();
      expect(t.metric("rejected")).toBe(1);
      expect(t.applied).toEqual([3]);
    } finally {
      await t.close();
    }
  });

  test("replaced by rename: applied at once, without waiting for a settle time", async () => {
    const t = await setup(svcs(3));
    try {
      const tmp = join(t.conf, ".services.yaml.swp");
      writeFileSync(tmp, svcs(5));
      t.watch.kick("file change", ".services.yaml.swp");
      renameSync(tmp, t.file);
      t.watch.kick("file change", "services.yaml");
      await t.watch.idle();
      expect(t.applied).toEqual([3, 5]);
      // The rename's reload applied what it read: no read was put off for the settle time.
      expect(t.watch.counts.retries).toBe(0);
    } finally {
      await t.close();
    }
  });

  test("a file written in place twice in a row (inode kept) is applied only after it settled", async () => {
    const t = await setup(svcs(2));
    try {
      writeFileSync(t.file, svcs(3));
      t.watch.kick("file change", "services.yaml");
      await t.watch.idle();
      expect(t.applied).toEqual([2, 3]);
      // The read right after the write was put off at least once (the file was young, in place).
      expect(t.watch.counts.retries).toBeGreaterThan(0);
    } finally {
      await t.close();
    }
  });

  test("events during a reload coalesce into one follow-up reload", async () => {
    const t = await setup(svcs(3));
    try {
      for (let k = 0; k < 5; k++) {
        const tmp = join(t.conf, `.w${k}`);
        writeFileSync(tmp, svcs(4 + k));
        renameSync(tmp, t.file);
        for (let e = 0; e < 4; e++) t.watch.kick("file change", "services.yaml");
      }
      await t.watch.idle();
      // 20 events: at most one reload running and one follow-up at a time.
      expect(t.watch.counts.runs).toBeLessThan(20);
      expect(t.applied.at(-1)).toBe(8);
      expect(t.applied[0]).toBe(3);
    } finally {
      await t.close();
    }
  });
});
