/**
 * vipd-seed: runs on every boot of the edge-node image, before systemd-networkd and vipd
 * (vipd-seed.service). It reads the site's configuration from the seed partition (label
 * VIPDSEED, mounted read-only at /run/vipd/seed), applies it to /etc/vipd as decided by
 * ./plan.ts, makes sure an admin token exists (and removes a generated one the configuration no
 * longer accepts), records what it did for vipd (seed-state.json on the state partition), and
 * copies the seed's systemd-networkd files to
 * /run/systemd/network.
 *
 * Bundled to one JavaScript file at image build time and run by the vipd executable itself:
 * `BUN_BE_BUN=1 /usr/lib/vipd/vipd /usr/lib/vipd/seed.js [--seed DIR] [--etc DIR] [--state DIR]`.
 * Exit 0 when vipd can start (also when a bad seed was rejected and the old config kept), 1 on
 * an I/O failure.
 */

import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SEED_STATE_FILE } from "../../src/system/seed-state.ts";
import { isManifestName, planSeed, seedDigest } from "./plan.ts";

const NETWORK_FILE = /^[^/\\.][^/\\]*\.(network|netdev|link)$/;

function readManifests(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    if (!isManifestName(name) || !statSync(join(dir, name)).isFile()) continue;
    out.set(name, readFileSync(join(dir, name), "utf8"));
  }
  return out;
}

function readOptional(path: string): string | null {
  try {
    return readFileSync(path, "utf8").trim() || null;
  } catch {
    return null;
  }
}

/** Writes a file so that a power cut leaves either the old or the new content. */
function writeAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w", mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

function syncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      seed: { type: "string", default: "/run/vipd/seed" },
      etc: { type: "string", default: "/etc/vipd" },
      state: { type: "string", default: "/var/lib/vipd" },
      "network-dir": { type: "string", default: "/run/systemd/network" },
    },
    strict: true,
  });
  const seedRoot = values.seed as string;
  const etc = values.etc as string;
  const state = values.state as string;
  const say = (msg: string) => console.log(`vipd-seed: ${msg}`);

  mkdirSync(etc, { recursive: true, mode: 0o750 });
  mkdirSync(state, { recursive: true, mode: 0o700 });
  const seedDir = join(seedRoot, "vipd");
  const hasSeed = existsSync(seedRoot) && existsSync(seedDir);
  const digestFile = join(state, "seed.applied");
  const tokenFile = join(state, "admin-token");

  const seed = hasSeed ? readManifests(seedDir) : null;
  const appliedDigest = readOptional(digestFile);
  // The configuration model (zod schemas) is loaded only when there is a new seed to check: most
  // boots skip it, which matters on a slow edge CPU.
  const { validateFiles } =
    seed !== null && seed.size > 0 && seedDigest(seed) !== appliedDigest
      ? await import("./validate.ts")
      : { validateFiles: () => ["internal: validation was not loaded"] };
  const plan = planSeed({
    seed,
    appliedDigest,
    current: readManifests(etc),
    storedToken: readOptional(tokenFile),
    randomBytes: new Uint8Array(randomBytes(32)),
    validate: (files) => validateFiles(files, seedDir),
  });
  for (const n of plan.notes) say(n);
  for (const p of plan.rejected) say(`seed problem: ${p}`);

  // The token first: a NodeSettings must never name a hash whose token was not kept.
  if (plan.newToken !== null) {
    writeAtomic(tokenFile, `${plan.newToken}\n`, 0o600);
    syncDir(state);
  }
  for (const [name, text] of plan.write) writeAtomic(join(etc, name), text, 0o640);
  for (const name of plan.remove) unlinkSync(join(etc, name));
  if (plan.write.size > 0 || plan.remove.length > 0) syncDir(etc);
  if (plan.appliedDigest !== null) {
    writeAtomic(digestFile, `${plan.appliedDigest}\n`, 0o600);
    syncDir(state);
  }
  // After the configuration that no longer accepts it is in place.
  if (plan.removeToken) {
    unlinkSync(tokenFile);
    syncDir(state);
  }
  // What vipd shows of this step (GET /api/v1/system/seed) and whether it may say it is ready.
  writeAtomic(
    join(state, SEED_STATE_FILE),
    `${JSON.stringify({ checkedAt: new Date().toISOString(), ...plan.state })}\n`,
    0o600,
  );

  // Site network settings (static addresses, more interfaces): read from the seed on every boot.
  const netSrc = join(seedRoot, "network");
  if (existsSync(netSrc)) {
    const netDst = values["network-dir"] as string;
    mkdirSync(netDst, { recursive: true });
    // systemd-networkd reads these as its own user (systemd-network): copied as they come (the
    // seed's FAT mount has umask=077, this unit UMask=0077) they would be root's alone, and
    // networkd would skip them — the site's static addresses never applied. Readable by the
    // group systemd-network (a .netdev may hold a WireGuard key), by all when there is no such group.
    chmodSync(netDst, 0o755);
    const gid = groupId("systemd-network");
    for (const name of readdirSync(netSrc).sort()) {
      if (!NETWORK_FILE.test(name)) continue;
      const dst = join(netDst, name);
      copyFileSync(join(netSrc, name), dst);
      if (gid === undefined) chmodSync(dst, 0o644);
      else {
        chownSync(dst, 0, gid);
        chmodSync(dst, 0o640);
      }
      say(`network: ${name}`);
    }
  }
  return 0;
}

/** The id of a group in /etc/group, if it is there. */
function groupId(name: string): number | undefined {
  try {
    for (const line of readFileSync("/etc/group", "utf8").split("\n")) {
      const [n, , id] = line.split(":");
      if (n === name && id !== undefined && /^\d+$/.test(id)) return Number(id);
    }
  } catch {
    // no /etc/group: no such group
  }
  return undefined;
}

if (import.meta.main) {
  try {
    process.exit(await main(process.argv.slice(2)));
  } catch (e) {
    console.error(`vipd-seed: ${(e as Error).message}`);
    process.exit(1);
  }
}
