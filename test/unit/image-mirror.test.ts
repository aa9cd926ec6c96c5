/**
 * image/mirror.sh: the image scripts take the Debian mirror from the machine's apt sources
 * (one-line .list files and deb822 .sources), keep VIPD_IMAGE_MIRROR as the override, and name
 * no mirror host themselves. Runs the real script with bash on sample source files.
 */

import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..", "..");
const tmp = mkdtempSync(join(tmpdir(), "vipd-mirror-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** An apt configuration folder with these files (paths relative to it). */
function aptEtc(files: Record<string, string>): string {
  const dir = join(tmp, `etc${n++}`);
  mkdirSync(join(dir, "sources.list.d"), { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  return dir;
}

function mirror(etc: string, override?: string): { code: number; out: string; err: string } {
  const env: Record<string, string> = { ...(process.env as Record<string, string>), VIPD_APT_ETC: etc };
  delete env["VIPD_IMAGE_MIRROR"];
  if (override !== undefined) env["VIPD_IMAGE_MIRROR"] = override;
  const p = Bun.spawnSync(["bash", join(ROOT, "image", "mirror.sh"), "bookworm"], {
    env,
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: p.exitCode ?? -1, out: p.stdout.toString().trim(), err: p.stderr.toString() };
}

const DEB822 = `Types: deb
# a snapshot, commented out
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://mirror.example.org/debian/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`;

test("deb822 .sources: the paragraph for the suite itself with main, not -security", () => {
  const etc = aptEtc({ "sources.list.d/debian.sources": DEB822 });
  expect(mirror(etc)).toEqual({
    code: 0,
    out: `http://mirror.example.org/debian\t${etc}/sources.list.d/debian.sources`,
    err: "",
  });
});

test("deb822: disabled paragraphs, continuation lines, several URIs, cdrom skipped", () => {
  const etc = aptEtc({
    "sources.list.d/a.sources": `Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: cdrom:[Debian_12]/ http://second.example/debian
Suites: bookworm-updates
 bookworm
Components: contrib
 main
`,
  });
  expect(mirror(etc).out).toBe(`http://second.example/debian\t${etc}/sources.list.d/a.sources`);
});

test("one-line sources.list: options, comments, deb-src and other suites are passed over", () => {
  const etc = aptEtc({
    "sources.list": `deb-src http://src.example/debian bookworm main
# deb http://commented.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian/ bookworm-updates main
deb cdrom:[Debian GNU/Linux 12]/ bookworm main
deb http://contrib-only.example/debian bookworm contrib
deb [arch=amd64] http://one.example/debian/ bookworm contrib main # trailing comment
`,
    "sources.list.d/debian.sources": DEB822,
  });
  expect(mirror(etc).out).toBe(`http://one.example/debian\t${etc}/sources.list`);
});

test("apt's order: sources.list, then sources.list.d/*.list, then *.sources", () => {
  const etc = aptEtc({
    "sources.list": "# empty\n",
    "sources.list.d/z.list": "deb http://list.example/debian bookworm main\n",
    "sources.list.d/debian.sources": DEB822,
  });
  expect(mirror(etc).out).toBe(`http://list.example/debian\t${etc}/sources.list.d/z.list`);
});

test("VIPD_IMAGE_MIRROR overrides the sources", () => {
  const etc = aptEtc({ "sources.list.d/debian.sources": DEB822 });
  expect(mirror(etc, "http://override.example/debian").out).toBe(
    "http://override.example/debian\tVIPD_IMAGE_MIRROR",
  );
});

test("no usable source: exit 1 and a message naming the override", () => {
  const etc = aptEtc({ "sources.list": "deb http://x.example/debian trixie main\n" });
  const r = mirror(etc);
  expect(r.code).toBe(1);
  expect(r.out).toBe("");
  expect(r.err).toContain("no Debian mirror for 'bookworm'");
  expect(r.err).toContain("VIPD_IMAGE_MIRROR");
  expect(mirror(join(tmp, "no-such-dir")).code).toBe(1);
});

test("the image scripts name no mirror host and print the one they use", () => {
  for (const f of ["image/build.sh", "image/rootfs.sh", "image/mirror.sh"]) {
    const text = readFileSync(join(ROOT, f), "utf8");
    expect(text).not.toMatch(/https?:\/\/[^\s"']*debian/);
    expect(text).not.toContain("deb.debian.org");
  }
  for (const f of ["image/build.sh", "image/rootfs.sh"]) {
    const text = readFileSync(join(ROOT, f), "utf8");
    expect(text).toContain("mirror.sh");
    expect(text).toContain('log "Debian mirror: $MIRROR (from');
  }
});
