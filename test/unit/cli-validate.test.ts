/**
 * `vipd validate PATH...` as a user runs it: a real `bun src/main.ts` process. It prints one
 * `path:line: Kind/name: field: message` line per problem and exits 1, or prints a one-line summary
 * and exits 0. It never touches the network.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "../..");
const INVALID = "test/fixtures/invalid";
/** Each test starts a bun process; allow for a busy machine. */
const SLOW = 30_000;

function vipd(...args: string[]): { code: number; stdout: string; stderr: string } {
  const p = Bun.spawnSync([process.execPath, "src/main.ts", ...args], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

function expectedLines(path: string): string[] {
  return readFileSync(join(ROOT, path), "utf8")
    .split("\n")
    .filter((l) => l.startsWith("# expect: "))
    .map((l) => `${path}:${l.slice("# expect: ".length)}`);
}

describe("vipd validate", () => {
  test(
    "the guide's single-pool set is valid: exit 0 and a summary of what was read",
    () => {
      const r = vipd("validate", "test/fixtures/guide/single-pool");
      expect(r.stdout).toStartWith(
        "ok: 1 IPAddressPool, 1 L2Advertisement, 1 BGPAdvertisement, 1 BGPPeer, 0 BFDProfile, 0 Community, 1 Service (1 LoadBalancer)",
      );
      expect(r.stdout.trimEnd().split("\n")).toHaveLength(1);
      expect(r.code).toBe(0);
    },
    SLOW,
  );

  for (const f of [
    "yaml-duplicate-key.yaml",
    "unknown-field-misspelled.yaml",
    "peer-asn-and-dynamicasn.yaml",
    "pools-overlap.yaml",
    "service-annotation-disagrees-with-loadbalancerip.yaml",
  ]) {
    test(
      `${f}: prints exactly the expected line and exits 1`,
      () => {
        const path = `${INVALID}/${f}`;
        const r = vipd("validate", path);
        expect(r.stdout.trimEnd().split("\n")).toEqual(expectedLines(path));
        expect(r.stderr).toBe("vipd validate: 1 problem(s)\n");
        expect(r.code).toBe(1);
      },
      SLOW,
    );
  }

  test(
    "several paths at once: every problem of every file, sorted by file and line",
    () => {
      const a = `${INVALID}/peer-no-asn.yaml`;
      const b = `${INVALID}/bfd-receive-interval-too-small.yaml`;
      const r = vipd("validate", a, b);
      expect(r.stdout.trimEnd().split("\n")).toEqual([...expectedLines(b), ...expectedLines(a)]);
      expect(r.code).toBe(1);
    },
    SLOW,
  );

  test(
    "the whole corpus at once: one line per problem, each in its file, and a count that matches",
    () => {
      const r = vipd("validate", INVALID);
      const lines = r.stdout.trimEnd().split("\n");
      expect(lines.length).toBeGreaterThanOrEqual(60); // every fixture, plus clashes between them
      for (const l of lines) expect(l).toMatch(/^test\/fixtures\/invalid\/[a-z0-9-]+\.yaml:\d+: \S/);
      expect(r.stderr).toBe(`vipd validate: ${lines.length} problem(s)\n`);
      expect(r.code).toBe(1);
    },
    SLOW,
  );

  test(
    "a path that does not exist is a problem, not a crash",
    () => {
      const r = vipd("validate", "test/fixtures/no-such-dir");
      expect(r.stdout).toBe("test/fixtures/no-such-dir:0: -: no such file or directory\n");
      expect(r.code).toBe(1);
    },
    SLOW,
  );

  test(
    "no path at all is a usage error (exit 2)",
    () => {
      const r = vipd("validate");
      expect(r.stderr).toContain("give at least one file or directory");
      expect(r.code).toBe(2);
    },
    SLOW,
  );
});
