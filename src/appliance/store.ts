/**
 * The manifest set on disk. Reading gathers every file under the configured paths; writing (for
 * `PUT /api/v1/config`) replaces the single configured file atomically: temp file in the same
 * directory, fsync, rename over the old one, fsync the directory. A crash at any moment leaves
 * the old or the new file, never a mix.
 *
 * Parsing and validating the set (`loadManifests`) runs off the main thread, in the file worker
 * (file-reload.ts) with the file budgets (src/config/budget.ts FILE_LIMITS): a large or hostile
 * file delays neither the API nor anything else on the main thread, and a reload hands on what
 * changed since the last valid set, by key, with the new Config.
 */

import { type BigIntStats, closeSync, fstatSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import type { Config } from "../config/index.ts";
import { manifestFiles, type Problem, sortProblems } from "../config/load.ts";
import { type FileChange, FileReloader } from "./file-reload.ts";
import type { FileStamp } from "./watch.ts";

export { writeAtomic } from "../util/fs.ts";

export interface ManifestSource {
  file: string;
  text: string;
}

/** A file's identity and state as fstat gives them: what a reuse of its last text compares. */
interface Seen {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  text: string;
  /** Whether the file's last change was `SETTLED_MS` older than the read (see SourceCache). */
  settled: boolean;
}

/** How much older than its read a file's last change must be for its text to be reused (ms). */
export const SETTLED_MS = 2000;

/**
 * The texts last read, by path: a file whose device, inode, size, mtime and ctime (ns) are as at
 * its last read is not read again. Reused only when that read came `SETTLED_MS` after the file's
 * last change: the kernel stamps a write with a coarse clock (a tick, up to 10 ms), so a file
 * rewritten in place within the tick of its last read can keep every stamp; a write after a read
 * made that much later gets a later ctime (which no call can set back), as do a rename over the
 * path (another inode too), a truncate and a chmod. A file seen to have changed is read again.
 */
export class SourceCache {
  private readonly seen = new Map<string, Seen>();
  /** Files read (not reused) so far. */
  reads = 0;
  /** Files reused so far. */
  reused = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** The text of the open file `fd` at `file`, stat'ed as `st` (read now, or reused). */
  text(file: string, fd: number, st: BigIntStats): string {
    const at = this.now();
    const was = this.reuse(file, st);
    if (was !== undefined) return was;
    const text = readFileSync(fd, "utf8");
    this.remember(file, st, text, at);
    return text;
  }

  /** The text last read from `file`, if the file is as `st` says it was then (and settled). */
  reuse(file: string, st: BigIntStats): string | undefined {
    const was = this.seen.get(file);
    if (
      was?.settled &&
      was.dev === st.dev &&
      was.ino === st.ino &&
      was.size === st.size &&
      was.mtimeNs === st.mtimeNs &&
      was.ctimeNs === st.ctimeNs
    ) {
      this.reused++;
      return was.text;
    }
    return undefined;
  }

  /** `text` was just read from `file`, stat'ed as `st` at `at` (this cache's clock, after the fstat). */
  remember(file: string, st: BigIntStats, text: string, at: number): void {
    this.reads++;
    // `at` follows the fstat that took `st` (synchronously): a write after it is stamped later.
    const settled = Number(st.ctimeNs / 1_000_000n) < at - SETTLED_MS;
    const { dev, ino, size, mtimeNs, ctimeNs } = st;
    this.seen.set(file, { dev, ino, size, mtimeNs, ctimeNs, text, settled });
  }

  /** This cache's clock (ms). */
  clock(): number {
    return this.now();
  }

  /** Forgets every file not in `files` (deleted, or no longer under the paths). */
  keepOnly(files: readonly string[]): void {
    if (this.seen.size === 0) return;
    const keep = new Set(files);
    for (const f of this.seen.keys()) if (!keep.has(f)) this.seen.delete(f);
  }
}

/**
 * Every manifest under `paths`, with the problems of reading them: a path that does not exist,
 * a file that cannot be read (or vanished between listing and reading). With `cache`, a file
 * unchanged since its last read through it is not read again (see SourceCache).
 */
export function readManifestSources(
  paths: readonly string[],
  cache?: SourceCache,
): {
  sources: ManifestSource[];
  problems: Problem[];
  /** Each file read, as it was when it was read (inode, size, mtime: taken before the read). */
  stamps: FileStamp[];
} {
  const { files, problems } = manifestFiles(paths);
  const sources: ManifestSource[] = [];
  const stamps: FileStamp[] = [];
  const read: string[] = [];
  for (const f of files) {
    let fd: number | undefined;
    try {
      fd = openSync(f, "r");
      const st = fstatSync(fd, { bigint: true });
      const text = cache !== undefined ? cache.text(f, fd, st) : readFileSync(fd, "utf8");
      sources.push({ file: f, text });
      stamps.push({ file: f, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs });
      read.push(f);
    } catch (e) {
      const message = `cannot read: ${(e as Error).message}`;
      problems.push({ file: f, line: 0, field: "-", message, pointer: "" });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  cache?.keepOnly(read);
  return { sources, problems, stamps };
}

/** The bytes of the joined text, in one buffer kept from one load to the next (grown as needed). */
let joinBuf = Buffer.allocUnsafe(0);

/** `joinBuf` with room for `need` bytes, its first `used` bytes kept. */
function room(need: number, used: number): Buffer {
  if (joinBuf.length >= need) return joinBuf;
  const b = Buffer.allocUnsafe(Math.max(need, 2 * joinBuf.length, 64 * 1024));
  joinBuf.copy(b, 0, 0, used);
  joinBuf = b;
  return b;
}

/**
 * readManifestSources, and the sources joined for the file worker: each opened by a `---` line and
 * a `# source:` line, its text ending in exactly one newline. The files' bytes are read into one
 * buffer and decoded once (not each file's text, then the joined copy of them: at 10,000 Services
 * two 1.4 MB strings, each allocation a likely collection on a large heap); each source's text is
 * a part of the joined text where it can be (no copy). With `cache`, unchanged files are not read.
 */
function readJoined(
  paths: readonly string[],
  cache: SourceCache,
): { sources: ManifestSource[]; problems: Problem[]; stamps: FileStamp[]; joined: string } {
  const { files, problems } = manifestFiles(paths);
  const stamps: FileStamp[] = [];
  const read: string[] = [];
  // Per source: its file, where its bytes start and end in the buffer, and its text if known.
  const parts: { file: string; start: number; end: number; text: string | undefined }[] = [];
  // The files read (not reused), to remember once their texts are known.
  const fresh: { file: string; st: BigIntStats; at: number; part: number }[] = [];
  let n = 0;
  for (const f of files) {
    let fd: number | undefined;
    const mark = n;
    try {
      fd = openSync(f, "r");
      const st = fstatSync(fd, { bigint: true });
      const at = cache.clock();
      const header = `---\n# source: ${f}\n`;
      room(n + Buffer.byteLength(header), n);
      n += joinBuf.write(header, n, "utf8");
      const start = n;
      let text = cache.reuse(f, st);
      const reused = text !== undefined;
      if (text !== undefined) {
        room(n + Buffer.byteLength(text) + 1, n);
        n += joinBuf.write(text, n, "utf8");
      } else {
        room(n + Number(st.size) + 1, n);
        for (;;) {
          const k = readSync(fd, joinBuf, n, joinBuf.length - n, null);
          if (k === 0) break;
          n += k;
          if (n === joinBuf.length) room(2 * n, n);
        }
      }
      // Exactly one final newline (oneNewline's rule, on bytes: 10 is only ever a newline in UTF-8).
      let end = n;
      while (end > start && joinBuf[end - 1] === 10) end--;
      if (end !== n - 1) {
        // The source's own text differs from its part of the joined text: decoded on its own.
        text ??= joinBuf.toString("utf8", start, n);
        n = end;
        room(n + 1, n);
        joinBuf[n++] = 10;
      }
      if (!reused) fresh.push({ file: f, st, at, part: parts.length });
      parts.push({ file: f, start, end: n, text });
      stamps.push({ file: f, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs });
      read.push(f);
    } catch (e) {
      n = mark;
      const message = `cannot read: ${(e as Error).message}`;
      problems.push({ file: f, line: 0, field: "-", message, pointer: "" });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  cache.keepOnly(read);
  const joined = joinBuf.toString("utf8", 0, n);
  // One byte per character (ASCII, the usual case): a part's bytes are its characters.
  const flat = joined.length === n;
  const sources: ManifestSource[] = parts.map((p) => ({
    file: p.file,
    text: p.text ?? (flat ? joined.slice(p.start, p.end) : joinBuf.toString("utf8", p.start, p.end)),
  }));
  for (const c of fresh) cache.remember(c.file, c.st, (sources[c.part] as ManifestSource).text, c.at);
  return { sources, problems, stamps, joined };
}

/** The manifests under `paths` that could be read (see readManifestSources for the problems). */
export function readSources(paths: readonly string[]): ManifestSource[] {
  return readManifestSources(paths).sources;
}

/** The text ending in exactly one newline (a regular expression took tens of ms on 1 MB). */
function oneNewline(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 10) end--;
  return end === text.length ? `${text}\n` : end === text.length - 1 ? text : `${text.slice(0, end)}\n`;
}

/** The sources as one multi-document YAML text (what `GET /api/v1/config` returns). */
export function joinSources(sources: readonly ManifestSource[]): string {
  if (sources.length === 1) return sources[0]?.text ?? "";
  return sources.map((s) => `# source: ${s.file}\n${oneNewline(s.text)}`).join("---\n");
}

/** The single file the API may replace, or why there is none. */
export function writableTarget(paths: readonly string[]): { file: string } | { reason: string } {
  if (paths.length !== 1)
    return { reason: "vipd reads several --config paths; the API can replace only a single file" };
  const p = paths[0] as string;
  try {
    if (statSync(p).isDirectory())
      return { reason: `--config ${p} is a directory; the API can replace only a single file` };
  } catch {
    // Does not exist yet: the API may create it.
  }
  return { file: p };
}

/** What loadManifests found: the sources as read, and either the Config or every problem. */
export interface LoadedManifests {
  sources: ManifestSource[];
  /** joinSources(sources): what `GET /api/v1/config` returns, and what tells a real change. */
  text: string;
  config: Config | undefined;
  /** Reading, budget, parse and validation problems, by file and line (empty when valid). */
  problems: Problem[];
  /** Valid: what changed since the Config the previous valid load gave (`change.base`), if known. */
  change?: FileChange | undefined;
  /** The files as they were read. */
  stamps: FileStamp[];
  /** The text is `unchangedFrom`'s, read without problems: neither parsed nor validated again. */
  unchanged?: boolean | undefined;
}

/** The source name of the joined text in the worker (problems are mapped back to their files). */
const FILES = "<files>";

/** The file worker, apart from the API's body checker: a flood of requests cannot make it busy. */
let fileChecker: FileReloader | undefined;

/** The texts loadManifests read last (a reload reads again only the files that changed). */
const sourceCache = new SourceCache();

/**
 * Reads every manifest under `paths` (on this thread: small reads), then pre-scans, parses and
 * validates them in the file worker within FILE_LIMITS and `timeoutMs` (default 120 s). The
 * sources travel as one multi-document text, each opened by a `# source:` line; problems are
 * mapped back to their own file and line (their `doc` index is left out: it would count
 * documents of the joined text).
 */
export async function loadManifests(
  paths: readonly string[],
  opts: { timeoutMs?: number; unchangedFrom?: string | undefined } = {},
): Promise<LoadedManifests> {
  const { sources, problems, stamps, joined } = readJoined(paths, sourceCache);
  if (sources.length === 0) {
    if (problems.length === 0)
      problems.push({
        file: paths.join(","),
        line: 0,
        field: "-",
        message: "no manifest files found",
        pointer: "",
      });
    return { sources, text: "", config: undefined, problems, stamps };
  }
  // joinSources(sources): the same text without its first `---` line (one source: its own text).
  const text = sources.length === 1 ? (sources[0] as ManifestSource).text : joined.slice(4);
  // The text the caller applied last, read again (a rewrite with the same bytes, a file that is
  // not a manifest): the same Config, without the worker's round trip.
  if (problems.length === 0 && opts.unchangedFrom !== undefined && text === opts.unchangedFrom)
    return { sources, text, config: undefined, problems, stamps, unchanged: true };
  // Lines are counted per source only to map a problem back to its file (not on a valid reload).
  let starts: { file: string; first: number; lines: number }[] | undefined;
  const lineStarts = (): { file: string; first: number; lines: number }[] => {
    if (starts !== undefined) return starts;
    starts = [];
    let line = 1;
    for (let k = 0; k < sources.length; k++) {
      const body = oneNewline((sources[k] as ManifestSource).text);
      let lines = 0;
      for (let i = body.indexOf("\n"); i >= 0; i = body.indexOf("\n", i + 1)) lines++;
      starts.push({ file: (sources[k] as ManifestSource).file, first: line + 2, lines });
      line += 2 + lines;
    }
    return starts;
  };
  const where = (l: number): { file: string; line: number } => {
    const starts = lineStarts();
    for (const s of starts)
      if (l >= s.first && l < s.first + Math.max(1, s.lines)) return { file: s.file, line: l - s.first + 1 };
    const last = starts.at(-1) as { file: string; first: number };
    return l <= 0
      ? { file: (starts[0] as { file: string }).file, line: 0 }
      : { file: last.file, line: Math.max(0, l - last.first + 1) };
  };
  // One worker for the files, never replaced for the size of their text (only after a timeout or
  // a failure): it keeps each document's result, so a reload parses and validates only the
  // documents that changed, and the last Config, so it answers with what changed.
  fileChecker ??= new FileReloader({ timeoutMs: 120_000, maxWaiting: 8 });
  const v = await fileChecker.check(joined, { file: FILES, timeoutMs: opts.timeoutMs });
  const at = (p: { line: number }) => where(p.line);
  switch (v.kind) {
    case "valid":
      if (problems.length > 0) return { sources, text, config: undefined, problems, stamps };
      return { sources, text, config: v.config, problems: [], change: v.change, stamps };
    case "invalid":
      return {
        sources,
        text,
        stamps,
        config: undefined,
        problems: sortProblems([
          ...problems,
          ...v.problems.map((p) => {
            if (p.file !== FILES) return p;
            const { doc: _doc, ...rest } = p;
            return { ...rest, ...at(p) };
          }),
        ]),
      };
    case "refused":
      return {
        sources,
        text,
        stamps,
        config: undefined,
        // The budget's message names the line in the joined text: say the file's own line.
        problems: [
          ...problems,
          {
            ...at(v),
            field: "-",
            message: v.message.replace(
              /at line (\d+)/,
              (_m, n: string) => `at line ${where(Number(n)).line}`,
            ),
            pointer: "",
          },
        ],
      };
    case "timeout":
      return {
        sources,
        text,
        stamps,
        config: undefined,
        problems: [
          ...problems,
          {
            file: paths.join(","),
            line: 0,
            field: "-",
            message: `parsing and validating took longer than ${Math.round(v.ms)} ms; refused`,
            pointer: "",
          },
        ],
      };
    default:
      return {
        sources,
        text,
        stamps,
        config: undefined,
        problems: [
          ...problems,
          {
            file: paths.join(","),
            line: 0,
            field: "-",
            message: `cannot check the manifests: ${v.kind === "busy" ? "the checker is busy" : v.message}`,
            pointer: "",
          },
        ],
      };
  }
}

/** Stops the file worker (process shutdown). */
export function closeManifestChecker(): void {
  fileChecker?.close();
  fileChecker = undefined;
}
