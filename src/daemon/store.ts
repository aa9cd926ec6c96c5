/**
 * The manifest set on disk. Reading gathers every file under the configured paths; writing (for
 * `PUT /api/v1/config`) replaces the single configured file atomically: temp file in the same
 * directory, fsync, rename over the old one, fsync the directory. A crash at any moment leaves
 * the old or the new file, never a mix.
 */

import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { manifestFiles } from "../config/load.ts";

export interface ManifestSource {
  file: string;
  text: string;
}

export function readSources(paths: readonly string[]): ManifestSource[] {
  const { files } = manifestFiles(paths);
  const out: ManifestSource[] = [];
  for (const f of files) {
    try {
      out.push({ file: f, text: readFileSync(f, "utf8") });
    } catch {
      // A file that vanished between listing and reading is reported by the loader.
    }
  }
  return out;
}

/** The sources as one multi-document YAML text (what `GET /api/v1/config` returns). */
export function joinSources(sources: readonly ManifestSource[]): string {
  if (sources.length === 1) return sources[0]?.text ?? "";
  return sources.map((s) => `# source: ${s.file}\n${s.text.replace(/\n*$/, "\n")}`).join("---\n");
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

let tmpCounter = 0;

/** Atomically replaces `file` with `text`. */
export function writeAtomic(file: string, text: string): void {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${tmpCounter++}.tmp`);
  const fd = openSync(tmp, "w", 0o600);
  try {
    const bytes = new TextEncoder().encode(text);
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {}
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
  const dfd = openSync(dir, "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
