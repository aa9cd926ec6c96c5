/**
 * The image's RAUC boot backend (image/rootfs/usr/lib/vipd/rauc-boot), run for real on a
 * directory standing in for the ESP: the systemd-boot entries it writes and renames are the A/B
 * state (which slot is good, which is on trial and how many tries it has, which boots next).
 * No root, no QEMU: the slots' roots are directories, their PARTUUIDs given.
 * What systemd-boot does with these entries (boots the highest version with tries left, counts
 * down, falls back) is covered by the QEMU test (system-update.test.ts).
 */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SCRIPT = join(import.meta.dir, "..", "..", "image", "rootfs", "usr", "lib", "vipd", "rauc-boot");
const dir = mkdtempSync(join(tmpdir(), "vipd-rauc-boot-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A fresh ESP as image/build.sh makes it (slot A good, recovery entry), and two slot roots. */
function setup(tries = 3) {
  const base = join(dir, `case${n++}`);
  const esp = join(base, "esp");
  mkdirSync(join(esp, "loader", "entries"), { recursive: true });
  writeFileSync(join(esp, "loader", "vipd-cmdline"), "ro console=ttyS0,115200 panic=10\n");
  writeFileSync(
    join(esp, "loader", "entries", "vipd-a.conf"),
    "title vipd edge node v1 (slot A)\nsort-key vipd\nversion 1\nlinux /vipd/a/vmlinuz\ninitrd /vipd/a/initrd.img\noptions root=PARTUUID=aaaa rauc.slot=A ro\n",
  );
  writeFileSync(
    join(esp, "loader", "entries", "vipd-recovery.conf"),
    "title vipd recovery shell (console)\nsort-key vipd\nversion 0\nlinux /vipd/a/vmlinuz\n",
  );
  const roots: Record<string, string> = {};
  for (const s of ["a", "b"]) {
    const r = join(base, `root-${s}`);
    mkdirSync(join(r, "boot"), { recursive: true });
    mkdirSync(join(r, "usr", "lib", "vipd"), { recursive: true });
    writeFileSync(join(r, "boot", "vmlinuz-6.1.0-50-amd64"), `kernel of ${s}`);
    writeFileSync(join(r, "boot", "initrd.img-6.1.0-50-amd64"), `initrd of ${s}`);
    writeFileSync(
      join(r, "usr", "lib", "vipd", "build-info.json"),
      `{\n  "image": "v-${s}",\n  "vipd": "0.1.0"\n}\n`,
    );
    roots[s] = r;
  }
  const conf = join(base, "update.conf");
  writeFileSync(conf, `TRIES=${tries}\nREADY_DEADLINE=60\n`);
  const env = {
    ...process.env,
    VIPD_ESP: esp,
    VIPD_UPDATE_CONF: conf,
    VIPD_SLOT_ROOT_a: roots["a"],
    VIPD_SLOT_ROOT_b: roots["b"],
    VIPD_SLOT_PARTUUID: "bbbb-uuid",
  };
  const boot = (...args: string[]) => {
    const r = Bun.spawnSync(["sh", SCRIPT, ...args], { env });
    return { code: r.exitCode, out: r.stdout.toString().trim(), err: r.stderr.toString().trim() };
  };
  const entries = () => readdirSync(join(esp, "loader", "entries")).sort();
  const read = (name: string) => readFileSync(join(esp, "loader", "entries", name), "utf8");
  /** What systemd-boot does on a boot attempt of a counting entry: +N-M → +(N-1)-(M+1). */
  const attempt = (name: string) => {
    const m = /^(.*)\+(\d+)(?:-(\d+))?\.conf$/.exec(name);
    if (!m) return name;
    const next = `${m[1]}+${Number(m[2]) - 1}-${Number(m[3] ?? 0) + 1}.conf`;
    writeFileSync(join(esp, "loader", "entries", next), read(name));
    rmSync(join(esp, "loader", "entries", name));
    return next;
  };
  return { esp, boot, entries, read, attempt };
}

describe("rauc-boot (RAUC custom backend over systemd-boot boot counting)", () => {
  test("a flashed node: slot A is primary and good, B is bad (no entry)", () => {
    const t = setup();
    expect(t.boot("get-primary")).toMatchObject({ code: 0, out: "A" });
    expect(t.boot("get-state", "A").out).toBe("good");
    expect(t.boot("get-state", "B").out).toBe("bad");
  });

  test("an install into B: B's kernel on the ESP, a trial entry above A, B primary", () => {
    const t = setup(3);
    // RAUC marks the target bad before writing it, then makes it primary.
    expect(t.boot("set-state", "B", "bad").code).toBe(0);
    const r = t.boot("set-primary", "B");
    expect(r).toMatchObject({ code: 0 });
    expect(t.entries()).toEqual(["vipd-a.conf", "vipd-b+3.conf", "vipd-recovery.conf"]);
    const e = t.read("vipd-b+3.conf");
    expect(e).toContain("version 2\n");
    expect(e).toContain("sort-key vipd\n");
    expect(e).toContain("options root=PARTUUID=bbbb-uuid rauc.slot=B ro console=ttyS0,115200 panic=10\n");
    expect(e).toContain("title vipd edge node v-b (slot B)");
    expect(readFileSync(join(t.esp, "vipd", "b", "vmlinuz"), "utf8")).toBe("kernel of b");
    expect(readFileSync(join(t.esp, "vipd", "b", "initrd.img"), "utf8")).toBe("initrd of b");
    expect(t.boot("get-primary").out).toBe("B");
    expect(t.boot("get-state", "B").out).toBe("good");
  });

  test("a trial that succeeds: mark-good drops the counter; the next update goes above it", () => {
    const t = setup(3);
    t.boot("set-primary", "B");
    const tried = t.attempt("vipd-b+3.conf");
    expect(tried).toBe("vipd-b+2-1.conf");
    expect(t.boot("get-primary").out).toBe("B");
    expect(t.boot("set-state", "B", "good").code).toBe(0);
    expect(t.entries()).toEqual(["vipd-a.conf", "vipd-b.conf", "vipd-recovery.conf"]);
    // The next update goes into A, which becomes primary above the good B.
    t.boot("set-state", "A", "bad");
    expect(t.entries()).toEqual(["vipd-b.conf", "vipd-recovery.conf"]);
    t.boot("set-primary", "A");
    expect(t.read("vipd-a+3.conf")).toContain("version 3\n");
    expect(t.boot("get-primary").out).toBe("A");
  });

  test("a trial that never succeeds: once its tries are used up, the old slot is primary again", () => {
    const t = setup(2);
    t.boot("set-primary", "B");
    let e = t.attempt("vipd-b+2.conf");
    expect(t.boot("get-primary").out).toBe("B");
    e = t.attempt(e);
    expect(e).toBe("vipd-b+0-2.conf");
    expect(t.boot("get-primary").out).toBe("A");
    expect(t.boot("get-state", "B").out).toBe("bad");
    expect(t.boot("get-state", "A").out).toBe("good");
  });

  test("bad input: unknown slot or state is refused and changes nothing", () => {
    const t = setup();
    const before = t.entries();
    const r = t.boot("set-state", "C", "good");
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("unknown slot 'C'");
    expect(t.boot("set-state", "A", "maybe").err).toContain("good or bad");
    expect(t.boot("frobnicate").err).toContain("usage:");
    expect(t.entries()).toEqual(before);
    // set-state good on a slot with no entry: refused.
    expect(t.boot("set-state", "B", "good").err).toContain("slot B has no boot entry");
  });
});
