/**
 * Reading the manifests again (src/appliance/store.ts SourceCache): a file unchanged since its
 * last read (device, inode, size, mtime and ctime as then) is not read again, and every change
 * is still seen — a rewrite in place with the same size and mtime, a rename over the path, a
 * deleted file, a new file in a directory — and a file read within SETTLED_MS of its last change
 * is read again each time (a rewrite within the kernel's timestamp tick keeps every stamp).
 */
import { afterAll, describe, expect, test } from "bun:test";
import {
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
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
  SETTLED_MS,
  SourceCache,
} from "../../src/appliance/store.ts";

const dirs: string[] = [];
afterAll(() => {
  closeManifestChecker();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), `vipd-store-reuse-${process.pid}-`));
  dirs.push(d);
  return d;
}

/** A cache whose reads all came long after the files' changes (only the stamps tell a change). */
const late = () => new SourceCache(() => Date.now() + 10 * SETTLED_MS);
/** Past the kernel's timestamp tick (at most 10 ms), so that a write gets a later ctime. */
const nextTick = () => Bun.sleep(30);
const texts = (paths: string[], cache: SourceCache) =>
  readManifestSources(paths, cache).sources.map((s) => [s.file, s.text]);

/** Sets the file's atime and mtime to one fixed second (a rewrite that keeps its mtime exactly). */
function keepTimes(file: string): void {
  utimesSync(file, 1_700_000_000, 1_700_000_000);
}

describe("manifests read again", () => {
  test("an unchanged file is not read again; its text is the same", () => {
    const d = tempDir();
    writeFileSync(join(d, "a.yaml"), "a: 1\n");
    writeFileSync(join(d, "b.yaml"), "b: 2\n");
    const cache = late();
    const first = texts([d], cache);
    expect(cache.reads).toBe(2);
    expect(texts([d], cache)).toEqual(first);
    expect(texts([d], cache)).toEqual(first);
    expect(cache.reads).toBe(2);
    expect(cache.reused).toBe(4);
    expect(first).toEqual([
      [join(d, "a.yaml"), "a: 1\n"],
      [join(d, "b.yaml"), "b: 2\n"],
    ]);
  });

  test("a file rewritten in place with the same size, its mtime set back: the new text", async () => {
    const d = tempDir();
    const f = join(d, "a.yaml");
    writeFileSync(f, "a: 1\n");
    keepTimes(f);
    const cache = late();
    expect(texts([f], cache)).toEqual([[f, "a: 1\n"]]);
    const st = statSync(f, { bigint: true });
    await nextTick();
    writeFileSync(f, "a: 2\n");
    keepTimes(f);
    const now = statSync(f, { bigint: true });
    // Only the ctime tells the change.
    expect([now.ino, now.size, now.mtimeNs]).toEqual([st.ino, st.size, st.mtimeNs]);
    expect(texts([f], cache)).toEqual([[f, "a: 2\n"]]);
    expect(cache.reads).toBe(2);
  });

  test("a file read within SETTLED_MS of its change is read again, even with every stamp the same", () => {
    const d = tempDir();
    const f = join(d, "a.yaml");
    writeFileSync(f, "a: 1\n");
    keepTimes(f);
    const cache = new SourceCache();
    expect(texts([f], cache)).toEqual([[f, "a: 1\n"]]);
    // Within the same tick as the read, possibly: ino, size, mtime and ctime may all be as read.
    writeFileSync(f, "a: 3\n");
    keepTimes(f);
    expect(texts([f], cache)).toEqual([[f, "a: 3\n"]]);
    expect(texts([f], cache)).toEqual([[f, "a: 3\n"]]);
    expect(cache.reads).toBe(3);
    expect(cache.reused).toBe(0);
  });

  test("a file replaced by rename (same size, same mtime): the new text", async () => {
    const d = tempDir();
    const f = join(d, "a.yaml");
    writeFileSync(f, "a: 1\n");
    keepTimes(f);
    const cache = late();
    expect(texts([d], cache)).toEqual([[f, "a: 1\n"]]);
    await nextTick();
    writeFileSync(join(d, ".a.tmp"), "a: 4\n");
    keepTimes(join(d, ".a.tmp"));
    renameSync(join(d, ".a.tmp"), f);
    expect(texts([d], cache)).toEqual([[f, "a: 4\n"]]);
  });

  test("a deleted file is gone; created again with the same size and mtime: its new text", async () => {
    const d = tempDir();
    const [a, b] = [join(d, "a.yaml"), join(d, "b.yaml")];
    writeFileSync(a, "a: 1\n");
    writeFileSync(b, "b: 1\n");
    keepTimes(b);
    const cache = late();
    expect(texts([d], cache)).toHaveLength(2);
    unlinkSync(b);
    expect(texts([d], cache)).toEqual([[a, "a: 1\n"]]);
    await nextTick();
    // The inode may well be the deleted file's again.
    writeFileSync(b, "b: 5\n");
    keepTimes(b);
    expect(texts([d], cache)).toEqual([
      [a, "a: 1\n"],
      [b, "b: 5\n"],
    ]);
    // A file named directly that is deleted: a problem, not its last text.
    unlinkSync(a);
    const r = readManifestSources([a], cache);
    expect(r.sources).toEqual([]);
    expect(r.problems).toHaveLength(1);
  });

  test("a new file in a directory is read, the others reused", () => {
    const d = tempDir();
    writeFileSync(join(d, "b.yaml"), "b: 1\n");
    const cache = late();
    expect(texts([d], cache)).toEqual([[join(d, "b.yaml"), "b: 1\n"]]);
    writeFileSync(join(d, "a.yaml"), "a: 1\n");
    writeFileSync(join(d, "c.yml"), "c: 1\n");
    expect(texts([d], cache)).toEqual([
      [join(d, "a.yaml"), "a: 1\n"],
      [join(d, "b.yaml"), "b: 1\n"],
      [join(d, "c.yml"), "c: 1\n"],
    ]);
    expect(cache.reads).toBe(3);
    expect(cache.reused).toBe(1);
  });
});

describe("loadManifests joins the files' bytes", () => {
  test("the same text and sources as the files' texts joined, read afresh and reused", async () => {
    const d = tempDir();
    const bodies: (string | Buffer)[] = [
      "a: 1\n",
      "",
      "no final newline",
      "several newlines\n\n\n",
      "\n",
      "\n\n",
      "# café, 東京, 🚀\nname: x\n",
      "\uFEFFbom: 1\n",
      Buffer.from([0x61, 0x3a, 0x20, 0x80, 0xe2, 0x82, 0x0a, 0xc3]),
      "kind: Service\r\n",
    ];
    const r = (seed: number) => {
      let s = seed;
      return () => {
        s = (s * 1103515245 + 12345) % 2147483648;
        return s / 2147483648;
      };
    };
    const rnd = r(7);
    const sets: string[][] = [];
    for (let k = 0; k < 12; k++) {
      const sub = join(d, `set${k}`);
      mkdirSync(sub);
      const names = Array.from({ length: 1 + Math.floor(rnd() * 4) }, (_, i) => join(sub, `f${i}.yaml`));
      for (const f of names) writeFileSync(f, bodies[Math.floor(rnd() * bodies.length)] as string | Buffer);
      sets.push(names);
    }
    const check = async () => {
      for (const names of sets) {
        const dir = join(names[0] as string, "..");
        const want = readSources([dir]);
        // Twice: the second reuses what the first read (the cache holds the last load's files).
        for (let i = 0; i < 2; i++) {
          const got = await loadManifests([dir]);
          expect(got.sources).toEqual(want);
          expect(got.text).toBe(want.length === 1 ? (want[0]?.text as string) : joinSources(want));
        }
        // A single file, named directly.
        const one = await loadManifests([names[0] as string]);
        expect(one.text).toBe(readSources([names[0] as string])[0]?.text as string);
      }
    };
    await check();
    // Past SETTLED_MS: the next loads reuse the texts (then change some files, by rename).
    await Bun.sleep(SETTLED_MS + 200);
    await check();
    await check();
    for (const names of sets)
      if (rnd() < 0.5) {
        const f = names[0] as string;
        writeFileSync(`${f}.tmp`, bodies[Math.floor(rnd() * bodies.length)] as string | Buffer);
        renameSync(`${f}.tmp`, f);
      }
    await check();
  });
});
