/**
 * The RAUC driver of system updates (src/system/service.ts) around its `rauc` calls: concurrent
 * GET /api/v1/system views share one `rauc status` (single flight), and a bundle left
 * half-received by a power cut is removed when vipd starts. `rauc` is a small shell script here
 * that logs each call and answers RAUC 1.8's JSON after a pause; the driver itself is real.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RaucSystemUpdates } from "../../src/system/service.ts";
import { createLogger } from "../../src/util/log.ts";

const dir = mkdtempSync(join(tmpdir(), "vipd-rauc-service-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const STATUS = JSON.stringify({
  compatible: "vipd-edge-x86_64",
  booted: "A",
  boot_primary: "rootfs.0",
  slots: [
    { "rootfs.0": { bootname: "A", state: "booted", boot_status: "good", device: "/dev/vda2" } },
    { "rootfs.1": { bootname: "B", state: "inactive", boot_status: "bad", device: "/dev/vda5" } },
  ],
});

/** A stand-in `rauc` that appends its arguments to `calls` and answers `status` after 300 ms. */
function fakeRauc(name: string): { bin: string; calls: () => string[] } {
  const bin = join(dir, `${name}-rauc`);
  const calls = join(dir, `${name}-calls`);
  const answer = join(dir, `${name}-status.json`);
  writeFileSync(answer, STATUS);
  writeFileSync(bin, `#!/bin/sh\necho "$*" >> '${calls}'\nsleep 0.3\ncat '${answer}'\n`, { mode: 0o755 });
  return {
    bin,
    calls: () => (existsSync(calls) ? readFileSync(calls, "utf8").trim().split("\n") : []),
  };
}

const lines: string[] = [];
const log = createLogger("system", { level: "debug", sink: (l) => lines.push(l) });

describe("the RAUC driver", () => {
  test("concurrent views share one rauc status; a later view asks again", async () => {
    const rauc = fakeRauc("flight");
    const updates = new RaucSystemUpdates({ dir: join(dir, "flight"), rauc: rauc.bin, log });
    const views = await Promise.all(Array.from({ length: 5 }, () => updates.view()));
    expect(rauc.calls()).toEqual(["status --detailed --output-format=json"]);
    for (const v of views) {
      expect(v.error).toBeUndefined();
      expect(v).toMatchObject({ compatible: "vipd-edge-x86_64", booted: "A", primary: "A" });
      expect(v.slots.map((s) => `${s.bootname}:${s.bootStatus}`)).toEqual(["A:good", "B:bad"]);
    }
    const again = await updates.view();
    expect(again.booted).toBe("A");
    expect(rauc.calls()).toHaveLength(2);
  });

  test("a failing rauc status fails every view that shared it, and the next view asks again", async () => {
    const bin = join(dir, "failing-rauc");
    const calls = join(dir, "failing-calls");
    writeFileSync(
      bin,
      `#!/bin/sh\necho "$*" >> '${calls}'\nsleep 0.3\necho 'rauc-Error: D-Bus down' >&2\nexit 1\n`,
      {
        mode: 0o755,
      },
    );
    const updates = new RaucSystemUpdates({ dir: join(dir, "failing"), rauc: bin, log });
    const views = await Promise.all([updates.view(), updates.view(), updates.view()]);
    for (const v of views) {
      expect(v.slots).toEqual([]);
      expect(v.error).toBe("rauc status: D-Bus down");
    }
    expect(readFileSync(calls, "utf8").trim().split("\n")).toHaveLength(1);
    await updates.view();
    expect(readFileSync(calls, "utf8").trim().split("\n")).toHaveLength(2);
  });

  test("a bundle left half-received (a power cut during the upload) is removed at start", () => {
    const d = join(dir, "stale");
    mkdirSync(d);
    const upload = join(d, "upload.raucb");
    writeFileSync(upload, new Uint8Array(4096));
    writeFileSync(join(d, "last-update.json"), "{}\n");
    lines.length = 0;
    new RaucSystemUpdates({ dir: d, rauc: fakeRauc("stale").bin, log });
    expect(existsSync(upload)).toBe(false);
    expect(existsSync(join(d, "last-update.json"))).toBe(true);
    expect(lines.some((l) => l.includes("half-received"))).toBe(true);
    // Nothing to remove: nothing said.
    lines.length = 0;
    new RaucSystemUpdates({ dir: d, rauc: fakeRauc("stale").bin, log });
    expect(lines.some((l) => l.includes("half-received"))).toBe(false);
  });
});
