/**
 * Helpers for the XDP tests and benchmarks (not used by vipd itself): building the object,
 * and private pin directories on a bpffs mounted just for one test run, so parallel tests and a
 * running vipd never share pins.
 *
 * The bpffs is mounted under /run in the host's mount namespace, so processes started with
 * `ip netns exec` (which remounts /sys, losing /sys/fs/bpf) still see the same pins.
 */

import { existsSync, rmdirSync } from "node:fs";
import { detachAll } from "../../src/xdp/loader.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
let counter = 0;

async function sh(cmd: string[], cwd?: string): Promise<{ code: number; out: string }> {
  const p = Bun.spawn(cmd, { cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  return { code, out: out + err };
}

/** Compiles src/xdp/*.c and test/support/bpf/*.c into build/xdp/ when sources are newer (scripts/build-xdp.sh). */
export async function buildXdp(): Promise<void> {
  const r = await sh(["bash", "scripts/build-xdp.sh"], ROOT);
  if (r.code !== 0) throw new Error(`scripts/build-xdp.sh failed:\n${r.out}`);
}

export function objectPath(name: string): string {
  return `${ROOT}build/xdp/${name}.o`;
}

export interface TempPins {
  /** The pin directory to hand to the driver (on a private bpffs). */
  pinDir: string;
  /** Detaches (in the caller's namespace), unpins, unmounts and removes the directory. */
  cleanup(): Promise<void>;
}

/** A pin directory on a bpffs of its own: /run/vipd-<tag>-<pid>-<n>/bpf/vipd. */
export async function tempPins(tag: string): Promise<TempPins> {
  const base = `/run/vipd-${tag}-${process.pid}-${counter++}`;
  const mnt = `${base}/bpf`;
  const r = await sh(["sh", "-c", `mkdir -p ${mnt} && mount -t bpf bpf ${mnt}`]);
  if (r.code !== 0) throw new Error(`mounting bpffs at ${mnt} failed: ${r.out}`);
  const pinDir = `${mnt}/vipd`;
  return {
    pinDir,
    async cleanup() {
      await detachAll(pinDir).catch(() => {});
      await sh(["umount", "-l", mnt]);
      for (const d of [mnt, base]) if (existsSync(d)) rmdirSync(d);
    },
  };
}
