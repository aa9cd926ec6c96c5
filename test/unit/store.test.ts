/**
 * The manifest set on disk (src/appliance/store.ts): reading every manifest under the configured
 * paths, joining them into the one text the API shows, which single file the API may replace,
 * and replacing it atomically — including when the writer is killed with SIGKILL mid-write; and
 * parsing the set in the body worker (loadManifests) with problems at their own file and line.
 */
import { afterAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  closeManifestChecker,
  joinSources,
  loadManifests,
  readManifestSources,
  readSources,
  writableTarget,
  writeAtomic,
} from "../../src/appliance/store.ts";
import { configFromText } from "../../src/config/index.ts";

const ROOT = join(import.meta.dir, "../..");
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), `vipd-store-${process.pid}-`));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("writeAtomic", () => {
  test("creates a file with exactly the given text (UTF-8), readable only by its owner", () => {
    const d = tempDir();
    const f = join(d, "config.yaml");
    const text = "# Zürich — 東京 ✓\nkind: IPAddressPool\n";
    writeAtomic(f, text);
    expect(readFileSync(f, "utf8")).toBe(text);
    expect(readFileSync(f).length).toBe(new TextEncoder().encode(text).length);
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readdirSync(d)).toEqual(["config.yaml"]);
  });

  test("replaces an existing file by rename: a reader holding the old file still reads the old text", async () => {
    const d = tempDir();
    const f = join(d, "config.yaml");
    writeFileSync(f, "old\n");
    const before = statSync(f).ino;
    const reader = Bun.file(f);
    const oldHandle = await import("node:fs/promises").then((m) => m.open(f, "r"));
    try {
      writeAtomic(f, "new\n");
      expect(readFileSync(f, "utf8")).toBe("new\n");
      expect(statSync(f).ino).not.toBe(before);
      expect((await oldHandle.readFile()).toString()).toBe("old\n");
      expect(await reader.text()).toBe("new\n");
    } finally {
      await oldHandle.close();
    }
    // No temporary file is left behind.
    expect(readdirSync(d)).toEqual(["config.yaml"]);
  });

  test("through a symlink: the file it points to is replaced and the link stays a link", () => {
    const d = tempDir();
    mkdirSync(join(d, "site"));
    mkdirSync(join(d, "etc"));
    writeFileSync(join(d, "site", "vipd.yaml"), "old\n");
    symlinkSync(join(d, "site", "vipd.yaml"), join(d, "etc", "vipd.yaml"));
    writeAtomic(join(d, "etc", "vipd.yaml"), "new\n");
    expect(lstatSync(join(d, "etc", "vipd.yaml")).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(d, "site", "vipd.yaml"), "utf8")).toBe("new\n");
    expect(readdirSync(join(d, "etc"))).toEqual(["vipd.yaml"]);
    expect(readdirSync(join(d, "site"))).toEqual(["vipd.yaml"]);
  });

  test("the replaced file keeps its mode and owner", () => {
    const d = tempDir();
    const f = join(d, "c.yaml");
    writeFileSync(f, "old\n");
    chmodSync(f, 0o640);
    const uid = process.getuid?.() ?? 0;
    // As root, give it to another owner: the new file must carry it over.
    const other = uid === 0 ? 65534 : uid;
    if (uid === 0) chownSync(f, other, other);
    writeAtomic(f, "new\n");
    const st = statSync(f);
    expect(st.mode & 0o777).toBe(0o640);
    expect([st.uid, st.gid]).toEqual([other, other]);
    expect(readFileSync(f, "utf8")).toBe("new\n");
  });

  test("an empty text and a large text (8 MiB) are written whole", () => {
    const d = tempDir();
    const f = join(d, "c.yaml");
    writeAtomic(f, "");
    expect(readFileSync(f, "utf8")).toBe("");
    const big = `${"# padding line of a large manifest set ----------------------------------\n".repeat(110_000)}`;
    writeAtomic(f, big);
    expect(readFileSync(f, "utf8") === big).toBe(true);
  });

  test("a directory that does not exist: it throws and creates nothing", () => {
    const d = tempDir();
    const f = join(d, "missing", "config.yaml");
    expect(() => writeAtomic(f, "x")).toThrow(/ENOENT/);
    expect(readdirSync(d)).toEqual([]);
  });

  test("a target that is a directory: it throws, the directory is untouched and no temp file is left", () => {
    const d = tempDir();
    const target = join(d, "conf.d");
    mkdirSync(target);
    writeFileSync(join(target, "a.yaml"), "a\n");
    expect(() => writeAtomic(target, "x")).toThrow();
    expect(readFileSync(join(target, "a.yaml"), "utf8")).toBe("a\n");
    expect(readdirSync(d).filter((n) => n.endsWith(".tmp"))).toEqual([]);
  });

  test("killed with SIGKILL while writing, 20 times: the file is always exactly the old or the new text", async () => {
    const d = tempDir();
    const f = join(d, "config.yaml");
    // Two large, different, valid manifest sets; the writer alternates between them forever.
    const set = (n: number) =>
      Array.from(
        { length: 3000 },
        (_, i) =>
          `apiVersion: v1\nkind: Service\nmetadata: { name: s${n}-${i}, namespace: ns${n} }\nspec: { type: LoadBalancer, ports: [{ port: 80 }] }\n`,
      ).join("---\n");
    const a = set(1);
    const b = set(2);
    writeFileSync(join(d, "a.txt"), a);
    writeFileSync(join(d, "b.txt"), b);
    writeAtomic(f, a);
    const script = `
      import { readFileSync } from "node:fs";
      import { writeAtomic } from ${JSON.stringify(join(ROOT, "src/appliance/store.ts"))};
      const t = [readFileSync(${JSON.stringify(join(d, "a.txt"))}, "utf8"), readFileSync(${JSON.stringify(join(d, "b.txt"))}, "utf8")];
      console.log("ready");
      for (let i = 0; i < 100000; i++) writeAtomic(${JSON.stringify(f)}, t[i % 2]);
    `;
    for (let round = 0; round < 20; round++) {
      const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" });
      try {
        // Wait until it writes, then kill it at a different moment each round.
        const reader = child.stdout.getReader();
        await reader.read();
        reader.releaseLock();
        await Bun.sleep(5 + ((round * 7) % 40));
        child.kill("SIGKILL");
        await child.exited;
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
        await child.exited;
      }
      const now = readFileSync(f, "utf8");
      expect(now === a || now === b).toBe(true);
    }
    // Temp files the killed writers left are removed by the next write, which leaves none of its own.
    writeAtomic(f, a);
    expect(readdirSync(d).sort()).toEqual(["a.txt", "b.txt", "config.yaml"]);
    // The final text still parses as the manifests it was.
    const r = configFromText(readFileSync(f, "utf8"), "config.yaml");
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.config.services.length).toBe(3000);
  }, 60_000);
});

describe("readSources and joinSources", () => {
  test("a directory gives its *.yaml, *.yml and *.json files in name order; dot-files and others are skipped", () => {
    const d = tempDir();
    writeFileSync(join(d, "b.yml"), "kind: b\n");
    writeFileSync(join(d, "a.yaml"), "kind: a\n");
    writeFileSync(join(d, "c.json"), '{"kind":"c"}');
    writeFileSync(join(d, "README.md"), "# not a manifest\n");
    writeFileSync(join(d, ".a.yaml.123.0.tmp"), "half-written\n");
    writeFileSync(join(d, ".hidden.yaml"), "kind: hidden\n");
    mkdirSync(join(d, "sub"));
    writeFileSync(join(d, "sub", "d.yaml"), "kind: d\n");
    const s = readSources([d]);
    expect(s.map((x) => x.file)).toEqual([
      join(d, "a.yaml"),
      join(d, "b.yml"),
      join(d, "c.json"),
      join(d, "sub", "d.yaml"),
    ]);
    expect(s.map((x) => x.text)).toEqual(["kind: a\n", "kind: b\n", '{"kind":"c"}', "kind: d\n"]);
  });

  test("a file named directly is read whatever its extension; a missing path gives nothing", () => {
    const d = tempDir();
    writeFileSync(join(d, "vipd.conf"), "kind: x\n");
    expect(readSources([join(d, "vipd.conf"), join(d, "nope.yaml")])).toEqual([
      { file: join(d, "vipd.conf"), text: "kind: x\n" },
    ]);
  });

  test("readManifestSources names the paths that could not be read; a directory named *.yaml is walked", () => {
    const d = tempDir();
    writeFileSync(join(d, "a.yaml"), "kind: a\n");
    mkdirSync(join(d, "b.yaml"));
    writeFileSync(join(d, "b.yaml", "c.yaml"), "kind: c\n");
    const r = readManifestSources([
      join(d, "a.yaml"),
      join(d, "gone.yaml"),
      join(d, "b.yaml"),
      join(d, "a.yaml", "x.yaml"),
    ]);
    expect(r.sources.map((x) => x.file)).toEqual([join(d, "a.yaml"), join(d, "b.yaml", "c.yaml")]);
    expect(r.problems.map((p) => [p.file, p.line, p.message])).toEqual([
      [join(d, "gone.yaml"), 0, "no such file or directory"],
      [join(d, "a.yaml", "x.yaml"), 0, "no such file or directory"],
    ]);
  });

  test("one source is returned as it is, byte for byte", () => {
    expect(joinSources([{ file: "/etc/vipd/c.yaml", text: "a: 1\n\n\n" }])).toBe("a: 1\n\n\n");
    expect(joinSources([])).toBe("");
  });

  test("several sources become one multi-document text that names each file and validates as the set", () => {
    const d = tempDir();
    mkdirSync(join(d, "conf"));
    for (const f of ["pools.yaml", "services.yaml"])
      writeFileSync(join(d, "conf", f), readFileSync(join(ROOT, "examples/appliance", f)));
    const sources = readSources([join(d, "conf")]);
    const text = joinSources(sources);
    expect(text.startsWith(`# source: ${join(d, "conf", "pools.yaml")}\n`)).toBe(true);
    expect(text).toContain(`---\n# source: ${join(d, "conf", "services.yaml")}\n`);
    const r = configFromText(text, "joined");
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.config.pools.map((p) => p.metadata.name)).toEqual(["site"]);
      expect(r.config.services.map((s) => s.metadata.name)).toEqual(["web", "dns", "dns-tcp"]);
    }
  });

  test("a file without a final newline does not glue its last line to the next document's separator", () => {
    const text = joinSources([
      { file: "/a.yaml", text: "a: 1" },
      { file: "/b.yaml", text: "b: 2\n\n" },
    ]);
    expect(text).toBe("# source: /a.yaml\na: 1\n---\n# source: /b.yaml\nb: 2\n");
  });
});

describe("writableTarget: what PUT /api/v1/config may replace", () => {
  test("a single existing file, or a single file that does not exist yet", () => {
    const d = tempDir();
    writeFileSync(join(d, "c.yaml"), "x\n");
    expect(writableTarget([join(d, "c.yaml")])).toEqual({ file: join(d, "c.yaml") });
    expect(writableTarget([join(d, "new.yaml")])).toEqual({ file: join(d, "new.yaml") });
  });

  test("a directory, or several paths: refused with the reason", () => {
    const d = tempDir();
    const dir = writableTarget([d]);
    expect("reason" in dir && dir.reason).toBe(
      `--config ${d} is a directory; the API can replace only a single file`,
    );
    const two = writableTarget([join(d, "a.yaml"), join(d, "b.yaml")]);
    expect("reason" in two && two.reason).toBe(
      "vipd reads several --config paths; the API can replace only a single file",
    );
    const none = writableTarget([]);
    expect("reason" in none).toBe(true);
  });
});

describe("loadManifests: parsed and validated in the body worker", () => {
  afterAll(() => closeManifestChecker());
  const POOL = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan, namespace: metallb-system }
spec: { addresses: [192.0.2.0/28] }
`;
  const SVC = `---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { type: LoadBalancer, ports: [{ port: 80 }] }
`;

  test("a valid set of files gives the Config and the joined text", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vipd-load-"));
    try {
      writeFileSync(join(dir, "a.yaml"), POOL);
      writeFileSync(join(dir, "b.yaml"), SVC);
      const r = await loadManifests([dir]);
      expect(r.problems).toEqual([]);
      expect(r.config?.pools.map((p) => p.metadata.name)).toEqual(["lan"]);
      expect(r.config?.services.map((s) => s.metadata.name)).toEqual(["web"]);
      expect(r.text).toBe(joinSources(r.sources));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a problem is reported at its own file and line, not the joined text's", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vipd-load-"));
    try {
      writeFileSync(join(dir, "a.yaml"), POOL);
      writeFileSync(
        join(dir, "b.yaml"),
        `${SVC}---\napiVersion: v1\nkind: Service\nmetadata: { name: bad, namespace: shop }\nspec: { type: LoadBalancer, ports: [{ port: 99999 }] }\n`,
      );
      const r = await loadManifests([dir]);
      expect(r.config).toBeUndefined();
      expect(r.problems.length).toBeGreaterThan(0);
      expect(r.problems.map((p) => [p.file, p.line])).toContainEqual([join(dir, "b.yaml"), 10]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a file over the budget (nested too deep) is refused before parsing, at its file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vipd-load-"));
    try {
      writeFileSync(join(dir, "a.yaml"), POOL);
      writeFileSync(join(dir, "deep.yaml"), "[".repeat(100_000));
      const r = await loadManifests([dir]);
      expect(r.config).toBeUndefined();
      expect(r.problems).toHaveLength(1);
      expect(r.problems[0]?.file).toBe(join(dir, "deep.yaml"));
      expect(r.problems[0]?.line).toBe(1);
      expect(r.problems[0]?.message).toContain("nesting deeper than");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("no manifest at all is a problem, not an empty Config", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vipd-load-"));
    try {
      const r = await loadManifests([dir]);
      expect(r.config).toBeUndefined();
      expect(r.problems.map((p) => p.message)).toEqual(["no manifest files found"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
