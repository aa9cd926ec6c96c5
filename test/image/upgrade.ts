/**
 * Helpers for the image's upgrade test: a BIRD 2 on the host's loopback that the guest peers with
 * through QEMU's user-mode network (the guest dials 10.0.2.2:PORT, slirp turns that into a
 * connection to 127.0.0.1:PORT), a poller that asks BIRD for a route every 100 ms, and FAT
 * "sticks" labelled VIPDUPGRADE made with mtools (no loop devices). BIRD has no kernel protocol:
 * nothing touches the host's routing table. Every BIRD started here is killed by PID.
 */

import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** A TCP port free on 127.0.0.1 that a BGPPeer may name (the schema allows 1..16384). */
export function freeLowPort(): number {
  for (let i = 0; i < 200; i++) {
    const port = 10_000 + Math.floor(Math.random() * 6_000);
    try {
      const s = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
      s.stop(true);
      return port;
    } catch {
      // in use: try another
    }
  }
  throw new Error("no free port in 10000..16000 on 127.0.0.1");
}

export interface Bird {
  proc: Bun.Subprocess;
  sock: string;
  port: number;
  /** Runs one birdc command; its output (empty when birdc failed). */
  cmd(args: string[]): Promise<{ ok: boolean; out: string }>;
  stop(): Promise<void>;
}

/**
 * Starts BIRD passive on 127.0.0.1:port for AS 64500, accepting AS 64512 from 127.0.0.0/8 with
 * graceful restart (RFC 4724). Multihop: the guest is behind NAT, not on a shared link.
 */
export async function startBird(dir: string, port: number): Promise<Bird> {
  const conf = join(dir, "bird.conf");
  const sock = join(dir, "bird.ctl");
  writeFileSync(
    conf,
    `log "${join(dir, "bird.log")}" all;
router id 192.0.2.254;
protocol device {}
protocol bgp fleet {
  local 127.0.0.1 port ${port} as 64500;
  neighbor range 127.0.0.0/8 as 64512;
  passive on;
  multihop;
  graceful restart on;
  ipv4 { import all; export none; };
}
`,
  );
  const proc = Bun.spawn(["bird", "-f", "-c", conf, "-s", sock, "-P", join(dir, "bird.pid")], {
    stdout: Bun.file(join(dir, "bird.out")),
    stderr: Bun.file(join(dir, "bird.err")),
  });
  const cmd = async (args: string[]) => {
    const p = Bun.spawn(["timeout", "5", "birdc", "-s", sock, ...args], { stdout: "pipe", stderr: "pipe" });
    const out = await new Response(p.stdout).text();
    return { ok: (await p.exited) === 0, out };
  };
  const bird: Bird = {
    proc,
    sock,
    port,
    cmd,
    stop: async () => {
      proc.kill("SIGTERM");
      await Promise.race([proc.exited, Bun.sleep(3_000)]);
      if (proc.exitCode === null) proc.kill("SIGKILL");
      await proc.exited;
    },
  };
  for (let i = 0; i < 50; i++) {
    if ((await cmd(["show", "status"])).ok) return bird;
    if (proc.exitCode !== null) break;
    await Bun.sleep(100);
  }
  await bird.stop();
  throw new Error(`BIRD did not start on 127.0.0.1:${port} (exit ${proc.exitCode})`);
}

/** The "Since" column of BIRD's established dynamic BGP session, or undefined when none is up. */
export async function establishedSince(bird: Bird): Promise<string | undefined> {
  const r = await bird.cmd(["show", "protocols"]);
  return /^dynbgp\d+\s+BGP\s+\S+\s+up\s+(\S+)\s+Established/m.exec(r.out)?.[1];
}

export interface RoutePoll {
  polls: number;
  /** Polls whose answer did not list the prefix (or birdc failed), with their time offsets. */
  misses: { atMs: number; out: string }[];
  durationMs: number;
}

/** Asks BIRD for `prefix` every `everyMs` until `stop()` (at most `maxMs`). */
export function pollRoute(
  bird: Bird,
  prefix: string,
  everyMs = 100,
  maxMs = 600_000,
): { stop(): Promise<RoutePoll> } {
  let stopped = false;
  const t0 = Date.now();
  const result: RoutePoll = { polls: 0, misses: [], durationMs: 0 };
  const loop = (async () => {
    while (!stopped && Date.now() - t0 < maxMs) {
      const start = Date.now();
      const r = await bird.cmd(["show", "route", prefix]);
      result.polls++;
      if (!r.ok || !r.out.includes(prefix))
        result.misses.push({ atMs: start - t0, out: r.out.slice(0, 300) });
      await Bun.sleep(Math.max(0, everyMs - (Date.now() - start)));
    }
    result.durationMs = Date.now() - t0;
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return result;
    },
  };
}

/** A FAT filesystem image labelled VIPDUPGRADE holding `files` (name → host path), via mtools. */
export function upgradeStick(path: string, files: Record<string, string>, sizeMiB: number): void {
  const run = (cmd: string[]) => {
    const r = Bun.spawnSync(cmd, { env: { ...process.env, MTOOLS_SKIP_CHECK: "1" } });
    if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString()}`);
  };
  run(["mkfs.vfat", "-C", "-n", "VIPDUPGRADE", path, String(sizeMiB * 1024)]);
  for (const [name, src] of Object.entries(files)) run(["mcopy", "-i", path, src, `::/${name}`]);
}

/** Copies a file out of an ext4 partition of a disk image (debugfs dump, read-only). */
export function dumpExt4(disk: string, startBytes: number, path: string, out: string): void {
  const r = Bun.spawnSync(["debugfs", "-R", `dump ${path} ${out}`, `${disk}?offset=${startBytes}`]);
  const err = r.stderr.toString();
  if (r.exitCode !== 0 || /not found|File not found/.test(err))
    throw new Error(`debugfs dump ${path}: ${err}`);
}

/** sha256 of a file, hex. */
export async function fileSha256(path: string): Promise<string> {
  const h = new Bun.CryptoHasher("sha256");
  h.update(new Uint8Array(await Bun.file(path).arrayBuffer()));
  return h.digest("hex");
}
