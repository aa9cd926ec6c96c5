/**
 * The pure parts of system updates (src/system/rauc.ts, src/system/update-state.ts): reading
 * RAUC's status/info/progress output and vipd-boot-check's trial log, and the one-at-a-time update
 * state with its stored last result. The samples are RAUC 1.8's output on the edge image.
 */

import { describe, expect, test } from "bun:test";
import {
  cleanRaucError,
  installErrorFrom,
  lastTrial,
  parseBootLog,
  parseProgressLine,
  parseRaucInfo,
  parseRaucStatus,
} from "../../src/system/rauc.ts";
import { parseLastResult, UpdateTracker } from "../../src/system/update-state.ts";

const STATUS = JSON.stringify({
  compatible: "vipd-edge-x86_64",
  variant: "",
  booted: "A",
  boot_primary: "rootfs.1",
  slots: [
    {
      "rootfs.0": {
        class: "rootfs",
        device: "/dev/disk/by-partlabel/vipd-root-a",
        type: "ext4",
        bootname: "A",
        state: "booted",
        parent: null,
        mountpoint: "/",
        boot_status: "good",
        slot_status: { status: "ok" },
      },
    },
    {
      "rootfs.1": {
        class: "rootfs",
        device: "/dev/disk/by-partlabel/vipd-root-b",
        type: "ext4",
        bootname: "B",
        state: "inactive",
        parent: null,
        mountpoint: null,
        boot_status: "good",
        slot_status: {
          bundle: { compatible: "vipd-edge-x86_64", version: "test-v2" },
          installed: { timestamp: "2026-12-02T12:40:00Z", count: 1 },
          status: "ok",
        },
      },
    },
  ],
});

describe("rauc status", () => {
  test("slots, booted and primary, the installed bundle's version", () => {
    const s = parseRaucStatus(STATUS);
    expect(s.compatible).toBe("vipd-edge-x86_64");
    expect(s.booted).toBe("A");
    expect(s.primary).toBe("B");
    expect(s.slots.map((x) => [x.bootname, x.booted, x.primary, x.bootStatus])).toEqual([
      ["A", true, false, "good"],
      ["B", false, true, "good"],
    ]);
    expect(s.slots[1]).toMatchObject({ bundleVersion: "test-v2", installCount: 1 });
    expect(s.slots[0]?.bundleVersion).toBeNull();
  });

  test("not JSON, or no slots: an error that says so", () => {
    expect(() => parseRaucStatus("Failed to connect")).toThrow(/not JSON/);
    expect(() => parseRaucStatus("{}")).toThrow(/no slots/);
  });
});

describe("rauc info, progress, errors", () => {
  test("info: compatible and version", () => {
    expect(parseRaucInfo('{"compatible":"vipd-edge-x86_64","version":"test-v2","hooks":[]}')).toEqual({
      compatible: "vipd-edge-x86_64",
      version: "test-v2",
    });
    expect(() => parseRaucInfo('{"version":"x"}')).toThrow(/no compatible/);
    expect(() => parseRaucInfo("")).toThrow(/not JSON/);
  });

  test("progress lines", () => {
    expect(parseProgressLine("  40% Copying image to rootfs.1")).toEqual({
      percent: 40,
      message: "Copying image to rootfs.1",
    });
    expect(parseProgressLine("100% Installing done.")).toEqual({ percent: 100, message: "Installing done." });
    expect(parseProgressLine("installing `/x.raucb`")).toBeNull();
    expect(parseProgressLine("400% nonsense")).toBeNull();
  });

  test("the last meaningful line of an error, without D-Bus wrapping", () => {
    expect(
      cleanRaucError("Reading bundle...\nFailed to verify bundle: signature verification failed: x\n"),
    ).toBe("Failed to verify bundle: signature verification failed: x");
    expect(cleanRaucError("Call failed: rauc-Error: rauc info error\n")).toBe("rauc info error");
    expect(cleanRaucError("")).toBe("no message");
  });
});

test("the reason of a failed install, from the RAUC service's journal", () => {
  const journal = [
    "Mounting bundle '/var/lib/vipd/update/upload.raucb' to '/run/rauc/bundle'",
    "Installation error: Target slot for class rootfs of image rootfs.ext4 is readonly",
    "installing /var/lib/vipd/update/upload.raucb: Installation error: Target slot for class rootfs of image rootfs.ext4 is readonly",
    "installing /var/lib/vipd/update/upload.raucb: finished",
    "installing `/var/lib/vipd/update/upload.raucb` failed: 1",
  ].join("\n");
  expect(installErrorFrom(journal)).toBe("Target slot for class rootfs of image rootfs.ext4 is readonly");
  expect(installErrorFrom("Failed to mount bundle: loop: busy\ninstalling `/x` failed: 1")).toBe(
    "Failed to mount bundle: loop: busy",
  );
  expect(installErrorFrom("all fine")).toBeNull();
});

describe("the trial log", () => {
  const log = [
    "2026-12-02T12:00:00Z slot A: slot A is marked good (vipd-a.conf)",
    "2026-12-02T12:10:00Z slot B: slot B is on trial (vipd-b+0-1.conf): waiting up to 240 s",
    "2026-12-02T12:11:00Z slot B: marked good: vipd ready 61 s after the check started",
    "2026-12-02T12:20:00Z slot A: slot A is on trial (vipd-a+0-1.conf): waiting up to 240 s",
    "2026-12-02T12:24:00Z slot A: not marked good: vipd was not ready within 240 s; rebooting",
    "garbage line",
    "2026-12-02T12:27:00Z slot B: slot A used up its tries without becoming ready: rolled back to slot B",
    "2026-12-02T12:27:00Z slot B: slot B is marked good (vipd-b.conf)",
  ];
  test("entries and the last outcome at each step", () => {
    const entries = parseBootLog(log.join("\n"));
    expect(entries).toHaveLength(7);
    expect(lastTrial(entries.slice(0, 1))).toBeNull();
    expect(lastTrial(entries.slice(0, 2))).toMatchObject({ outcome: "trying", slot: "B" });
    expect(lastTrial(entries.slice(0, 3))).toMatchObject({ outcome: "good", slot: "B" });
    expect(lastTrial(entries.slice(0, 5))).toMatchObject({ outcome: "notReady", slot: "A" });
    expect(lastTrial(entries)).toMatchObject({ outcome: "rolledBack", slot: "A" });
  });
});

describe("update state", () => {
  test("one update at a time; phases and progress; the result becomes the last one", () => {
    let now = Date.parse("2026-12-02T12:00:00Z");
    const t = new UpdateTracker(() => now);
    expect(t.begin("fleet")).toBe(true);
    expect(t.begin("other")).toBe(false);
    t.received(1000);
    expect(t.current()).toMatchObject({ phase: "receiving", bytes: 1000, by: "fleet" });
    t.phase("checking", "checking");
    t.progress({ percent: 40, message: "Copying image" });
    t.progress({ percent: 20, message: "Checking slot" });
    expect(t.current()).toMatchObject({ phase: "installing", percent: 40, message: "Checking slot" });
    now += 60_000;
    const r = t.finish({ result: "installed", message: "ok", bundleVersion: "v2", slot: "B" });
    expect(r).toMatchObject({
      by: "fleet",
      startedAt: "2026-12-02T12:00:00.000Z",
      finishedAt: "2026-12-02T12:01:00.000Z",
    });
    expect(t.current()).toBeNull();
    expect(t.lastResult()).toEqual(r);
    expect(t.begin("other")).toBe(true);
  });

  test("a stored last result is read back; a torn or foreign file is none", () => {
    const t = new UpdateTracker(() => 0);
    t.begin("fleet");
    const r = t.finish({ result: "refused", error: "InvalidBundle", message: "bad signature" });
    expect(parseLastResult(JSON.stringify(r))).toEqual(r);
    expect(parseLastResult(JSON.stringify(r).slice(0, 20))).toBeNull();
    expect(parseLastResult('{"result":"exploded"}')).toBeNull();
    expect(parseLastResult(null)).toBeNull();
  });
});
