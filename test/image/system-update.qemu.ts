/**
 * Signed A/B system updates of the edge-node image over the API (RAUC, systemd-boot boot
 * counting), in one QEMU VM (TCG) that reboots by itself — four boots in all:
 *
 * 1. `image/build.sh` builds v1 (trial: 1 try, vipd must be ready within READY_DEADLINE s) with its
 *    bundle; `image/bundle.sh` makes, from the same root filesystem and without rebuilding, a v2
 *    (another version string) and a "broken" v3 whose XDP object is garbage (vipd runs but never
 *    becomes ready); a v2 re-signed with a key the node does not trust; a truncated v2.
 * 2. Boot 1 (v1 on slot A): GET /api/v1/system shows A booted, primary and good, B bad. Refused,
 *    each with JSON {error, message} and nothing changed (same slots, B still not bootable): a
 *    declared size over the limit (413, before any byte is read), a truncated bundle, a bundle
 *    signed by an unknown key, a body that is no bundle.
 * 3. v2 through POST /api/v1/system/update (progress seen on GET while it installs): installed
 *    into B, B primary. POST /api/v1/system/reboot: boot 2 comes up on slot B with version v2,
 *    and vipd-boot-check marks B good once vipd is ready. Printed: bundle size, upload + install
 *    time, downtime (API unreachable from the reboot request to /readyz 200).
 * 4. The broken v3 is installed into A and the node rebooted: boot 3 tries A, vipd never becomes
 *    ready, vipd-boot-check reboots after its deadline, and systemd-boot — A's one try used up —
 *    boots B again (boot 4): v2, the rollback reported by GET /api/v1/system. The test only waits.
 *
 * Needs root, qemu-system-x86, ovmf, mtools, rauc, squashfs-tools (scripts/setup.sh). Everything
 * lives under one temporary directory, removed at the end; the VM is killed by PID.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { boot, freePort, get, stopAll, stopAllAndWait, until, type Vm, waitConsole } from "./qemu.ts";

const REPO = join(import.meta.dir, "..", "..");
const BOOT_MS = 600_000;
/** The trial deadline of the test image (s): vipd must answer /readyz 200 this long after it starts. */
const READY_DEADLINE = 240;

const dir = mkdtempSync(join("/var/tmp", `vipd-system-test-${process.pid}-`));
const out = join(dir, "out");
const disk = join(out, "vipd-edge.img");
const token = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
const tokenHash = new Bun.CryptoHasher("sha256").update(token).digest("hex");
const apiPort = freePort();
const api = `http://127.0.0.1:${apiPort}`;
let vm: Vm | undefined;
const bundles: Record<string, string> = {};

afterAll(async () => {
  await stopAllAndWait();
  stopAll();
  if (!process.env.VIPD_IMAGE_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
});

function sh(cmd: string[], timeoutMs: number, env: Record<string, string> = {}) {
  const r = Bun.spawnSync(cmd, {
    cwd: REPO,
    timeout: timeoutMs,
    stderr: "pipe",
    stdout: "pipe",
    env: { ...process.env, ...env },
  });
  return { code: r.exitCode ?? -1, out: `${r.stdout.toString()}${r.stderr.toString()}` };
}

async function shAsync(cmd: string[], timeoutMs: number): Promise<{ code: number; out: string }> {
  const p = Bun.spawn(cmd, { cwd: REPO, stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const [o, e, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  clearTimeout(timer);
  return { code, out: o + e };
}

interface SystemView {
  compatible: string;
  booted: string | null;
  primary: string | null;
  image: Record<string, string>;
  slots: {
    bootname: string;
    bootStatus: string;
    booted: boolean;
    primary: boolean;
    bundleVersion: string | null;
  }[];
  update: {
    running: { phase: string; percent: number } | null;
    last: { result: string; error?: string; message: string; bundleVersion?: string; slot?: string } | null;
    lastTrial: { outcome: string; slot: string; message: string } | null;
  };
  maxBundleBytes: number;
}

async function system(): Promise<SystemView> {
  const r = await get(`${api}/api/v1/system`, token);
  if (r?.status !== 200) throw new Error(`GET /api/v1/system: ${r?.status} ${r?.body}`);
  return JSON.parse(r.body) as SystemView;
}

/** The slots as a short comparable summary: "A:good:booted:primary B:bad". */
function slotsLine(v: SystemView): string {
  return v.slots
    .map((s) =>
      [s.bootname, s.bootStatus, s.booted ? "booted" : "", s.primary ? "primary" : ""]
        .filter(Boolean)
        .join(":"),
    )
    .join(" ");
}

async function postBundle(file: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${api}/api/v1/system/update`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" },
    body: Bun.file(file),
    signal: AbortSignal.timeout(1_200_000),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

async function ready(v: Vm, what: string): Promise<void> {
  await until(v, what, BOOT_MS, async () => {
    const r = await get(`${api}/readyz`);
    return r?.status === 200 ? true : undefined;
  });
}

/** A raw HTTP request declaring a body far over the limit, sending none: the answer's status and body. */
async function declareHuge(bytes: number): Promise<{ status: number; body: string }> {
  return await new Promise((resolve, reject) => {
    const s = connect(apiPort, "127.0.0.1");
    let data = "";
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error("no answer to the oversized request"));
    }, 60_000);
    s.on("data", (d: Buffer) => {
      data += d.toString();
    });
    s.on("close", () => {
      clearTimeout(t);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf("\r\n\r\n") + 4) });
    });
    s.on("error", reject);
    s.write(
      `POST /api/v1/system/update HTTP/1.1\r\nHost: vipd\r\nAuthorization: Bearer ${token}\r\n` +
        `Content-Type: application/octet-stream\r\nContent-Length: ${bytes}\r\n\r\n`,
    );
  });
}

describe("signed A/B system updates over the API", () => {
  test("build v1 and its bundle; make v2, a broken v3, a re-signed and a truncated bundle", async () => {
    const t0 = Date.now();
    // For development only: VIPD_SYSTEM_TEST_REUSE=DIR takes the build output of an earlier run
    // with these settings (its pristine vipd-edge.img.zst) instead of building again.
    const reuse = process.env.VIPD_SYSTEM_TEST_REUSE;
    const b = reuse
      ? sh(
          [
            "bash",
            "-c",
            `mkdir -p ${out} && cp ${reuse}/vipd-rootfs.ext4 ${reuse}/vipd-edge.raucb ${out}/ && zstd -q -d ${reuse}/vipd-edge.img.zst -o ${disk}`,
          ],
          300_000,
        )
      : sh(["timeout", "900", "bash", "image/build.sh", out], 920_000, {
          VIPD_IMAGE_VERSION: "test-v1",
          VIPD_IMAGE_BOOT_TRIES: "1",
          VIPD_IMAGE_READY_DEADLINE: String(READY_DEADLINE),
        });
    console.log(`image build: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    if (b.code !== 0) throw new Error(`image/build.sh failed (${b.code}):\n${b.out.slice(-4000)}`);
    const site = join(dir, "site");
    mkdirSync(site);
    cpSync(join(import.meta.dir, "site", "pools.yaml"), join(site, "pools.yaml"));
    writeFileSync(
      join(site, "node.yaml"),
      `apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: edge1 }
spec:
  nodeName: edge1
  interfaces: [eth0]
  localDelivery: true
  api:
    listen: 0.0.0.0:7473
    metricsOpen: false
    tokens:
      - { name: fleet, role: admin, hash: "sha256:${tokenHash}" }
`,
    );
    const s = sh(["bash", "image/seed.sh", disk, site], 60_000);
    if (s.code !== 0) throw new Error(`image/seed.sh failed:\n${s.out}`);
    expect(Bun.file(join(out, "vipd-edge.raucb")).size).toBeGreaterThan(1 << 20);
  }, 960_000);

  test("boot 1 (v1, slot A); bad bundles are refused and change nothing", async () => {
    await stopAllAndWait();
    vm = boot(dir, disk, "system", [{ hostPort: apiPort, guestAddr: "", guestPort: 7473 }], {
      reboots: true,
    });
    const v = vm;
    // The variants are made while the VM boots (they only read the v1 root filesystem image).
    const rootfs = join(out, "vipd-rootfs.ext4");
    const garbage = join(dir, "not-an-elf.o");
    writeFileSync(garbage, "this is not an XDP object\n");
    const made = Promise.all([
      shAsync(["bash", "image/bundle.sh", rootfs, join(dir, "v2.raucb"), "--version", "test-v2"], 600_000),
      shAsync(
        [
          "bash",
          "image/bundle.sh",
          rootfs,
          join(dir, "v3-broken.raucb"),
          "--version",
          "test-v3-broken",
          "--file",
          `/usr/lib/vipd/xdp/arp_responder.o=${garbage}`,
        ],
        600_000,
      ),
    ]);
    await ready(v, "boot 1: /readyz answers 200");
    console.log(`boot 1: /readyz after ${((Date.now() - v.startedAt) / 1000).toFixed(0)} s`);
    for (const r of await made) if (r.code !== 0) throw new Error(`image/bundle.sh failed:\n${r.out}`);
    bundles["v2"] = join(dir, "v2.raucb");
    bundles["v3"] = join(dir, "v3-broken.raucb");
    // Signed by a key the node does not trust (same content as v2).
    const other = join(dir, "other");
    mkdirSync(other);
    const k = sh(
      [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "30",
        "-subj",
        "/CN=not the fleet",
        "-keyout",
        join(other, "key.pem"),
        "-out",
        join(other, "cert.pem"),
      ],
      60_000,
    );
    if (k.code !== 0) throw new Error(`openssl: ${k.out}`);
    const rs = sh(
      [
        "rauc",
        "resign",
        "--no-verify",
        `--cert=${join(other, "cert.pem")}`,
        `--key=${join(other, "key.pem")}`,
        bundles["v2"],
        join(dir, "untrusted.raucb"),
      ],
      300_000,
    );
    if (rs.code !== 0) throw new Error(`rauc resign: ${rs.out}`);
    bundles["untrusted"] = join(dir, "untrusted.raucb");
    // The first half of v2.
    const v2bytes = await Bun.file(bundles["v2"]).arrayBuffer();
    await Bun.write(join(dir, "truncated.raucb"), v2bytes.slice(0, Math.floor(v2bytes.byteLength / 2)));
    bundles["truncated"] = join(dir, "truncated.raucb");
    await Bun.write(join(dir, "junk.raucb"), crypto.getRandomValues(new Uint8Array(65536)));
    bundles["junk"] = join(dir, "junk.raucb");

    const before = await system();
    expect(before).toMatchObject({ compatible: "vipd-edge-x86_64", booted: "A", primary: "A" });
    expect(before.image["image"]).toBe("test-v1");
    expect(slotsLine(before)).toBe("A:good:booted:primary B:bad");
    await waitConsole(v, /vipd-boot-check: slot A is marked good/, 120_000);

    // Declared over the limit: refused before any byte is read.
    const huge = await declareHuge(before.maxBundleBytes + 1);
    expect(huge.status).toBe(413);
    expect(JSON.parse(huge.body)).toMatchObject({ error: "PayloadTooLarge" });

    const refusals: [string, number, string, RegExp][] = [
      ["truncated", 400, "InvalidBundle", /refused/],
      ["untrusted", 400, "InvalidBundle", /refused/],
      ["junk", 400, "InvalidBundle", /refused/],
    ];
    for (const [name, status, error, msg] of refusals) {
      const r = await postBundle(bundles[name] as string);
      console.log(`${name} bundle: ${r.status} ${JSON.stringify(r.body)}`);
      expect(r.status).toBe(status);
      expect(r.body["error"]).toBe(error);
      expect(String(r.body["message"])).toMatch(msg);
      const after = await system();
      expect(slotsLine(after)).toBe("A:good:booted:primary B:bad");
      expect(after.update.last).toMatchObject({ result: "refused", error });
    }
    // Not signed by the fleet: RAUC says why.
    const untrusted = await postBundle(bundles["untrusted"] as string);
    expect(String(untrusted.body["message"])).toMatch(/signature|certificate|verif/i);
  }, 1_200_000);

  test("v2 through the API: installed into slot B, the reboot comes up on B with v2, marked good", async () => {
    const v = vm as Vm;
    const size = Bun.file(bundles["v2"] as string).size;
    let maxPercent = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const r = await get(`${api}/api/v1/system`, token);
        if (r?.status === 200) {
          const s = JSON.parse(r.body) as SystemView;
          if (s.update.running) maxPercent = Math.max(maxPercent, s.update.running.percent);
        }
        await Bun.sleep(2_000);
      }
    })();
    const t0 = Date.now();
    const r = await postBundle(bundles["v2"] as string);
    const installS = (Date.now() - t0) / 1000;
    polling = false;
    await poller;
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ result: "installed", bundleVersion: "test-v2", slot: "B" });
    expect(maxPercent).toBeGreaterThan(0);
    const installed = await system();
    expect(installed.primary).toBe("B");
    expect(installed.booted).toBe("A");

    const rebootAt = Date.now();
    const rb = await fetch(`${api}/api/v1/system/reboot`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    });
    expect(rb.status).toBe(202);
    // Down first (the reboot really happens), then up again.
    await until(v, "the API goes away for the reboot", 180_000, async () =>
      (await get(`${api}/readyz`)) === null ? true : undefined,
    );
    await ready(v, "boot 2: /readyz answers 200");
    const downtimeS = (Date.now() - rebootAt) / 1000;
    const after = await system();
    expect(after.booted).toBe("B");
    expect(after.image["image"]).toBe("test-v2");
    await until(v, "vipd-boot-check marks slot B good", 300_000, async () => {
      const s = await system();
      return s.update.lastTrial?.outcome === "good" && s.update.lastTrial.slot === "B" ? s : undefined;
    });
    const good = await system();
    expect(slotsLine(good)).toBe("A:good B:good:booted:primary");
    console.log(
      `update v1 → v2: bundle ${(size / 2 ** 20).toFixed(0)} MiB; upload + check + install ${installS.toFixed(0)} s ` +
        `(progress seen up to ${maxPercent}%); API unreachable from the reboot request until /readyz 200: ` +
        `${downtimeS.toFixed(0)} s`,
    );
  }, 1_500_000);

  test("a v3 whose vipd never becomes ready is rolled back to v2 by the node itself", async () => {
    const v = vm as Vm;
    const r = await postBundle(bundles["v3"] as string);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ result: "installed", bundleVersion: "test-v3-broken", slot: "A" });
    const mark = v.serial().length;
    const t0 = Date.now();
    const rb = await fetch(`${api}/api/v1/system/reboot`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    });
    expect(rb.status).toBe(202);
    // Boot 3 tries A: vipd runs but is not ready; the check gives up after its deadline.
    await waitConsole(v, /vipd-boot-check: slot A is on trial/, BOOT_MS, mark);
    await waitConsole(
      v,
      /vipd-boot-check: not marked good: vipd was not ready within/,
      BOOT_MS + READY_DEADLINE * 1000,
      mark,
    );
    // Boot 4: systemd-boot falls back to B by itself.
    await waitConsole(
      v,
      /vipd-boot-check: slot A used up its tries without becoming ready: rolled back to slot B/,
      BOOT_MS,
      mark,
    );
    await ready(v, "boot 4: /readyz answers 200");
    const s = await system();
    console.log(
      `rollback: reboot request → back on v2 and ready in ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    );
    expect(s.booted).toBe("B");
    expect(s.image["image"]).toBe("test-v2");
    expect(s.update.lastTrial).toMatchObject({ outcome: "rolledBack", slot: "A" });
    expect(slotsLine(s)).toBe("A:bad B:good:booted:primary");
  }, 1_800_000);
});
