/**
 * Files written so a crash never leaves half of one: `writeAtomic` (temp file in the same
 * directory, fsync, rename, fsync of the directory), used for manifests, the assignment state
 * and the site snapshot.
 */
import {
  closeSync,
  fchmodSync,
  fchownSync,
  fsyncSync,
  openSync,
  readdirSync,
  realpathSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";

let tmpCounter = 0;

const TEMP_RE = /^\.(.+)\.(\d+)\.\d+\.tmp$/;

/** Whether a process with this PID exists (EPERM means it does, owned by someone else). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes temp files of `file` left by writers that died mid-write (SIGKILL, power loss). */
function removeStaleTemps(file: string): void {
  const dir = dirname(file);
  const base = basename(file);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const m = TEMP_RE.exec(n);
    if (!m || m[1] !== base) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || alive(pid)) continue;
    try {
      unlinkSync(join(dir, n));
    } catch {}
  }
}

/**
 * Atomically replaces `path` with `text`: temp file in the same directory, fsync, rename, fsync
 * of the directory. On failure the temp file is removed and the file is untouched; temp files of
 * writers that died mid-write are removed too.
 *
 * Through a symlink (`/etc/vipd/vipd.yaml -> /srv/site/vipd.yaml`) the file it points to is
 * replaced, not the link. The new file keeps the old one's mode and owner; a new file gets mode
 * 0600 (manifests may hold BGP passwords).
 */
export function writeAtomic(path: string, text: string): void {
  let file = path;
  let mode = 0o600;
  let owner: { uid: number; gid: number } | undefined;
  try {
    file = realpathSync(path);
    const st = statSync(file);
    if (st.isFile()) {
      mode = st.mode & 0o7777;
      owner = { uid: st.uid, gid: st.gid };
    }
  } catch {
    // Does not exist yet.
  }
  const dir = dirname(file);
  removeStaleTemps(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${tmpCounter++}.tmp`);
  const fd = openSync(tmp, "w", 0o600);
  try {
    try {
      fchmodSync(fd, mode);
      if (owner !== undefined && (owner.uid !== process.getuid?.() || owner.gid !== process.getgid?.())) {
        try {
          fchownSync(fd, owner.uid, owner.gid);
        } catch {
          // Not permitted (not root): the file becomes ours, with the old mode.
        }
      }
      const bytes = new TextEncoder().encode(text);
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {}
    throw e;
  }
  const dfd = openSync(dir, "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
