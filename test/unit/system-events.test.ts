/**
 * System update progress on the watch stream (issue #19): the phases of an update — receiving N
 * of M bytes, verifying the bundle, installing with RAUC's own percentages, done with the result —
 * published as `update` events, and the last result in GET /api/v1/system. RAUC cannot run on
 * this host (no rauc, no D-Bus system bus), so the edge is a stand-in executable that prints what
 * `rauc` 1.8 prints: `status`/`info` as JSON, and `install`'s progress lines ("%3d%% message",
 * rauc's print_progress_callback) ending in "Installing `FILE` succeeded". Also the drain before a
 * reboot (src/system/drain.ts) against a stand-in node.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { hashToken } from "../../src/api/auth.ts";
import { ROUTE_MODULES } from "../../src/api/routes/index.ts";
import { systemRoutes } from "../../src/api/system-routes.ts";
import { EventHub } from "../../src/events/hub.ts";
import { drainL2 } from "../../src/system/drain.ts";
import { RaucSystemUpdates, rebootCommandFromEnv } from "../../src/system/service.ts";
import type { UpdateEvent } from "../../src/system/update-state.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeRuntime } from "./api-runtime-fake.ts";

const dir = mkdtempSync(join(tmpdir(), `vipd-sysev-${process.pid}-`));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const STATUS = JSON.stringify({
  compatible: "vipd-edge-x86_64",
  booted: "A",
  boot_primary: "rootfs.1",
  slots: [
    { "rootfs.0": { bootname: "A", state: "booted", boot_status: "good", device: "/dev/vda2" } },
    { "rootfs.1": { bootname: "B", state: "inactive", boot_status: "good", device: "/dev/vda3" } },
  ],
});

// rauc 1.8's install client: progress as "%3d%% %s" per step, then the result line.
const INSTALL_LINES = [
  "  0% Installing",
  "  0% Determining slot states",
  " 20% Determining slot states done.",
  " 20% Checking bundle",
  " 20% Verifying signature",
  " 40% Verifying signature done.",
  " 40% Checking bundle done.",
  " 40% Checking manifest contents",
  " 40% Checking manifest contents done.",
  " 40% Determining target install group",
  " 60% Determining target install group done.",
  " 60% Updating slots",
  " 60% Checking slot rootfs.1",
  " 70% Checking slot rootfs.1 done.",
  " 70% Copying image to rootfs.1",
  " 99% Copying image to rootfs.1 done.",
  " 99% Updating slots done.",
  "100% Installing done.",
];

function fakeRauc(name: string, infoOk: boolean): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    `#!/bin/sh
case "$1" in
  status) echo '${STATUS}' ;;
  info)
    ${
      infoOk
        ? `echo '{"compatible":"vipd-edge-x86_64","version":"test-v2","hash":"00"}'`
        : `echo "signature verification failed: Verify error:self-signed certificate" >&2; exit 1`
    } ;;
  install)
    printf '%s\\n' ${INSTALL_LINES.map((l) => `'${l}'`).join(" ")}
    echo "Installing \\\`$2\\\` succeeded" ;;
  *) echo "unknown" >&2; exit 1 ;;
esac
`,
  );
  chmodSync(path, 0o755);
  return path;
}

function body(chunks: number, size: number): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i++ < chunks) c.enqueue(new Uint8Array(size).fill(i));
      else c.close();
    },
  });
}

function setup(infoOk: boolean) {
  const hub = new EventHub();
  const seen: UpdateEvent[] = [];
  hub.subscribe((e) => {
    expect(e.type).toBe("update");
    seen.push(e.data as unknown as UpdateEvent);
  });
  const sys = new RaucSystemUpdates({
    dir: join(dir, `upd-${infoOk}`),
    log: createLogger("system", { level: "error", sink: () => {} }),
    rauc: fakeRauc(`rauc-${infoOk}`, infoOk),
    transientCheck: false,
    buildInfo: join(dir, "none.json"),
    onEvent: (e) => hub.publish("update", e as never),
  });
  return { hub, seen, sys };
}

describe("update events", () => {
  test("receiving N of M bytes, verifying, installing with RAUC's percentages, done", async () => {
    const { seen, sys } = setup(true);
    const r = await sys.update(body(10, 1000), 10_000, "ops");
    expect(r.result).toBe("installed");
    const phases = seen.map((e) => e.phase);
    // In order, each phase once as a block.
    expect([...new Set(phases)]).toEqual(["receiving", "checking", "installing", "done"]);
    const receiving = seen.filter((e) => e.phase === "receiving");
    expect(receiving[0]).toMatchObject({ bytes: 0, totalBytes: 10_000, by: "ops" });
    expect(receiving.at(-1)).toMatchObject({ bytes: 10_000, totalBytes: 10_000, percent: 100 });
    expect(receiving.at(-1)?.message).toBe("received 10000 of 10000 bytes");
    expect(seen.find((e) => e.phase === "checking")?.message).toContain("verifying the bundle's signature");
    const installing = seen.filter((e) => e.phase === "installing");
    expect(installing.map((e) => e.message)).toContain("Verifying signature");
    expect(installing.map((e) => e.message)).toContain("Copying image to rootfs.1");
    expect(installing.at(-1)).toMatchObject({ percent: 100, message: "Installing done." });
    // Percentages never go back.
    for (let i = 1; i < installing.length; i++)
      expect(installing[i]!.percent).toBeGreaterThanOrEqual(installing[i - 1]!.percent);
    expect(seen.at(-1)).toMatchObject({
      phase: "done",
      result: "installed",
      bundleVersion: "test-v2",
      slot: "B",
      percent: 100,
    });
    // The last result is in GET /api/v1/system's view.
    const v = await sys.view();
    expect(v.update.last).toMatchObject({ result: "installed", bundleVersion: "test-v2" });
    expect(v.update.running).toBeNull();
  });

  test("a refused bundle ends with done/refused and RAUC's reason", async () => {
    const { seen, sys } = setup(false);
    await expect(sys.update(body(2, 100), 200, "ops")).rejects.toThrow("signature verification failed");
    expect(seen.at(-1)).toMatchObject({ phase: "done", result: "refused", error: "InvalidBundle" });
    expect(seen.at(-1)?.message).toContain("Verify error:self-signed certificate");
    expect(seen.some((e) => e.phase === "installing")).toBe(false);
    expect((await sys.view()).update.last).toMatchObject({ result: "refused", error: "InvalidBundle" });
  });

  test("without a declared size, receiving reports every 4 MiB, not every chunk", async () => {
    const { seen, sys } = setup(true);
    await sys.update(body(64, 256 * 1024), null, "ops"); // 16 MiB in 64 chunks
    const receiving = seen.filter((e) => e.phase === "receiving");
    expect(receiving.length).toBeLessThanOrEqual(6);
    expect(receiving.at(-1)?.bytes).toBe(16 * 1024 * 1024);
  });
});

describe("reboot", () => {
  test("the reboot command is $VIPD_REBOOT_COMMAND, else systemctl reboot", () => {
    expect(rebootCommandFromEnv({})).toEqual(["systemctl", "reboot"]);
    expect(rebootCommandFromEnv({ VIPD_REBOOT_COMMAND: "/usr/bin/true  --now" })).toEqual([
      "/usr/bin/true",
      "--now",
    ]);
  });

  test("drains first, then runs the command; a second request is refused", async () => {
    const order: string[] = [];
    const flag = join(dir, "rebooted");
    const script = join(dir, "reboot.sh");
    writeFileSync(script, `#!/bin/sh\necho rebooted > ${flag}\n`);
    chmodSync(script, 0o755);
    const sys = new RaucSystemUpdates({
      dir: join(dir, "upd-reboot"),
      log: createLogger("system", { level: "error", sink: () => {} }),
      rebootCommand: [script],
      drain: async () => {
        order.push("drain");
        return { handedOver: ["10.0.0.1"], left: [], refused: [], ms: 1 };
      },
    });
    sys.reboot("ops", 0);
    expect(() => sys.reboot("ops", 0)).toThrow("rebooting already");
    const until = Date.now() + 10_000;
    while (!(await Bun.file(flag).exists()) && Date.now() < until) await Bun.sleep(20);
    expect(await Bun.file(flag).text()).toBe("rebooted\n");
    expect(order).toEqual(["drain"]);
  });
});

describe("drain", () => {
  /** A stand-in node: n1 owns VIPs of two Services; a failover moves a Service's VIPs at once, answering stops later. */
  function node(opts: { refuse?: string; release?: number } = {}) {
    const owner = new Map([
      ["10.0.0.1", "n1"],
      ["10.0.0.2", "n1"], // same Service as .1
      ["10.0.0.3", "n1"],
      ["10.0.0.9", "n2"],
    ]);
    const service = new Map([
      ["10.0.0.1", "a"],
      ["10.0.0.2", "a"],
      ["10.0.0.3", "b"],
      ["10.0.0.9", "c"],
    ]);
    const answering = new Set(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    const calls: string[] = [];
    let polls = 0;
    return {
      calls,
      target: {
        self: () => "n1",
        elections: async () => [...owner].map(([ip, o]) => ({ ip, owner: o })),
        answering: async () => {
          // The hand-over hold ends after a few polls (the new owner's settled heartbeat).
          if (++polls >= (opts.release ?? 3))
            for (const ip of answering) if (owner.get(ip) !== "n1") answering.delete(ip);
          return [...answering];
        },
        failover: async (ip: string) => {
          calls.push(ip);
          if (ip === opts.refuse)
            return { ok: false as const, error: "NoCandidate", message: "no other eligible node" };
          for (const [v, s] of service) if (s === service.get(ip)) owner.set(v, "n2");
          return { ok: true as const };
        },
      },
    };
  }

  test("one failover per Service, then it waits until this node answers for none", async () => {
    const n = node();
    const r = await drainL2(n.target, { sleep: async () => {} });
    expect(n.calls).toEqual(["10.0.0.1", "10.0.0.3"]);
    expect(r.handedOver.sort()).toEqual(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    expect(r.left).toEqual([]);
    expect(r.refused).toEqual([]);
  });

  test("bounded: what could not move is reported, and the drain ends", async () => {
    const n = node({ refuse: "10.0.0.3" });
    let t = 0;
    const r = await drainL2(n.target, {
      timeoutMs: 3000,
      now: () => t,
      sleep: async (ms) => {
        t += ms;
      },
    });
    expect(r.refused).toEqual([{ ip: "10.0.0.3", error: "NoCandidate", message: "no other eligible node" }]);
    expect(r.left).toEqual(["10.0.0.3"]);
    expect(r.handedOver.sort()).toEqual(["10.0.0.1", "10.0.0.2"]);
    expect(r.ms).toBeGreaterThanOrEqual(3000);
    expect(r.ms).toBeLessThan(3100);
  });
});

describe("through the API", () => {
  test("a watcher of GET /api/v1/events?types=update sees the update POSTed to /api/v1/system/update, and GET /api/v1/system its result", async () => {
    const { hub, sys } = setup(true);
    const ADMIN = "system-events-admin";
    const app = createApp(new FakeRuntime(), {
      tokens: [{ name: "ops", role: "admin", hash: hashToken(ADMIN) }],
      metricsOpen: true,
      events: hub,
      log: createLogger("api", { level: "error", sink: () => {} }),
      modules: [...ROUTE_MODULES, systemRoutes(sys)],
    });
    const auth = { authorization: `Bearer ${ADMIN}` };
    const watch = await app.request("/api/v1/events?types=update", { headers: auth });
    expect(watch.status).toBe(200);
    const post = await app.request("/api/v1/system/update", {
      method: "POST",
      headers: { ...auth, "content-type": "application/octet-stream", "content-length": "3000" },
      body: new Uint8Array(3000),
    });
    expect(post.status).toBe(200);
    // Read the stream until the update's end (bounded by the frames an update makes).
    const reader = (watch.body as ReadableStream<Uint8Array>).getReader();
    const dec = new TextDecoder();
    let text = "";
    for (let i = 0; i < 200 && !text.includes('"phase":"done"'); i++) {
      const r = await Promise.race([reader.read(), Bun.sleep(2000).then(() => null)]);
      if (r === null || r.done) break;
      text += dec.decode(r.value, { stream: true });
    }
    await reader.cancel();
    const updates = [...text.matchAll(/^event: (\S+)\ndata: (.*)$/gm)].filter((m) => m[1] === "update");
    const data = updates.map((m) => (JSON.parse(m[2] as string) as { data: UpdateEvent }).data);
    expect(data[0]).toMatchObject({ phase: "receiving", bytes: 0, totalBytes: 3000, by: "ops" });
    expect(data.some((d) => d.phase === "installing" && d.message === "Copying image to rootfs.1")).toBe(
      true,
    );
    expect(data.at(-1)).toMatchObject({ phase: "done", result: "installed", bundleVersion: "test-v2" });
    const view = (await (await app.request("/api/v1/system", { headers: auth })).json()) as {
      update: { last: { result: string } };
      seed: unknown;
    };
    expect(view.update.last.result).toBe("installed");
    expect(view.seed).toBeNull();
  });
});
