/**
 * Loading, pinning and attaching the responder with bpftool (the libbpf CLI).
 *
 * - bpffs: the pin directory's parent must be a bpf filesystem; it is mounted when missing
 *   (`ip netns exec` gives each process a fresh /sys without one).
 * - load: `bpftool prog load` pins the program at `<pinDir>/prog`; its maps are pinned as
 *   `<pinDir>/{vips,liveness,counters}`. Pins that exist are reused, never replaced: a restart
 *   finds the same maps and the same attached program, so there is no window without answers.
 * - attach: native (driver) mode first, generic (skb) mode as fallback with the reason kept.
 *   An attachment of this program is left as it is; an older vipd program (same name) is
 *   replaced atomically; another XDP program on the interface is an error.
 */

import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import {
  closeFd,
  ifNameToIndex,
  mapFdById,
  mapInfo,
  objGet,
  objPin,
  progFdById,
  progInfo,
  type XdpAttachMode,
  xdpQuery,
} from "./libbpf.ts";
import { MAP_NAMES, PROG_PIN } from "./maps.ts";

export const PROG_NAME = "vipd_arp";
/** Where the compiled responder is looked for, in order (the first that exists wins). */
export function objectCandidates(): string[] {
  return [
    process.env.VIPD_XDP_OBJECT ?? "",
    `${dirname(process.execPath)}/arp_responder.o`, // next to a `bun build --compile` executable
    `${dirname(process.execPath)}/xdp/arp_responder.o`,
    "/usr/lib/vipd/arp_responder.o",
    "/usr/lib/vipd/xdp/arp_responder.o",
    new URL("../../build/xdp/arp_responder.o", import.meta.url).pathname, // a source checkout
  ].filter((p) => p !== "");
}

/**
 * What an operator reads when the compiled XDP program is missing: what is wrong, what it means
 * for traffic, what to do on an installed node; the developer's hint comes last.
 */
export function missingObjectMessage(objPath: string, looked: readonly string[]): string {
  const others = looked.filter((p) => p !== objPath);
  return (
    `the XDP program file is missing: ${objPath} does not exist` +
    (others.length > 0 ? ` (also looked in ${others.join(", ")})` : "") +
    ". Without it this node cannot answer ARP/NDP for its layer-2 VIPs. " +
    "The installation is incomplete: on an edge-node image, update or re-flash the node (the file " +
    "ships as /usr/lib/vipd/xdp/arp_responder.o); elsewhere, install arp_responder.o next to the " +
    "vipd executable or point VIPD_XDP_OBJECT at it. Developers: scripts/build-xdp.sh builds it " +
    "from a source checkout."
  );
}

/** The compiled responder: $VIPD_XDP_OBJECT, next to the executable, /usr/lib/vipd, or build/xdp. */
export function defaultObjPath(): string {
  const all = objectCandidates();
  return all.find((p) => existsSync(p)) ?? all[all.length - 1]!;
}

export type AttachModeOption = "native" | "generic" | "auto";

export interface Attachment {
  ifname: string;
  ifindex: number;
  mode: "native" | "generic";
  /** Why native mode was not used (fallback), or how the attachment was found. */
  reason?: string;
}

/** A failed external command (bpftool, mount). */
export class LoaderError extends Error {
  constructor(
    readonly op: string,
    readonly stderr: string,
  ) {
    super(`${op} failed: ${stderr.trim() || "no message"}`);
    this.name = "LoaderError";
  }
}

async function run(cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => p.kill("SIGKILL"), 20_000);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Keeps the useful lines of bpftool/libbpf output (drops the verifier log and the strict-mode banner). */
function essence(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("Warning: bpftool is now running") && !l.startsWith("If it used to"));
  const useful = lines.filter((l) => /error|fail|not supported|unknown/i.test(l));
  return (useful.length > 0 ? useful : lines).slice(-3).join("; ");
}

async function isBpffs(dir: string): Promise<boolean> {
  if (!existsSync(dir)) return false;
  const r = await run(["stat", "-f", "-c", "%T", dir]);
  return r.code === 0 && r.stdout.trim() === "bpf_fs";
}

/**
 * Makes sure `pinDir` exists on a bpf filesystem, mounting one on its parent when needed — only
 * on an empty or missing directory (as /sys/fs/bpf is in a fresh sysfs), never over one that
 * holds something.
 */
export async function ensureBpffs(pinDir: string): Promise<void> {
  const parent = dirname(pinDir);
  if (!(await isBpffs(parent))) {
    if (existsSync(parent) && readdirSync(parent).length > 0) {
      throw new LoaderError(
        `pin directory ${pinDir}`,
        `${parent} is not a bpf filesystem and is not empty; mount one there (mount -t bpf bpf DIR) or pick another pin directory`,
      );
    }
    mkdirSync(parent, { recursive: true });
    const r = await run(["mount", "-t", "bpf", "bpf", parent]);
    if (r.code !== 0) throw new LoaderError(`mount -t bpf bpf ${parent}`, r.stderr);
  }
  mkdirSync(pinDir, { recursive: true });
}

/** Pins every map of the program at `progFd` that is not pinned yet. */
function pinMissingMaps(progFd: number, pinDir: string): void {
  for (const id of progInfo(progFd).mapIds) {
    const fd = mapFdById(id);
    try {
      const { name } = mapInfo(fd);
      if ((MAP_NAMES as readonly string[]).includes(name) && !existsSync(`${pinDir}/${name}`)) {
        objPin(fd, `${pinDir}/${name}`);
      }
    } finally {
      closeFd(fd);
    }
  }
}

/**
 * Loads the object and pins program and maps under `pinDir`, unless they are pinned already.
 * Returns whether the pinned program was reused.
 */
export async function loadPinned(objPath: string, pinDir: string): Promise<{ reused: boolean }> {
  await ensureBpffs(pinDir);
  const progPath = `${pinDir}/${PROG_PIN}`;
  if (existsSync(progPath)) {
    const fd = objGet(progPath);
    try {
      pinMissingMaps(fd, pinDir);
    } finally {
      closeFd(fd);
    }
    return { reused: true };
  }
  if (!existsSync(objPath)) {
    throw new LoaderError(`load ${objPath}`, missingObjectMessage(objPath, objectCandidates()));
  }
  const reuse = MAP_NAMES.filter((m) => existsSync(`${pinDir}/${m}`)).flatMap((m) => [
    "map",
    "name",
    m,
    "pinned",
    `${pinDir}/${m}`,
  ]);
  const r = await run(["bpftool", "prog", "load", objPath, progPath, "type", "xdp", ...reuse]);
  if (r.code !== 0) throw new LoaderError(`bpftool prog load ${objPath}`, essence(r.stderr));
  const fd = objGet(progPath);
  try {
    pinMissingMaps(fd, pinDir);
  } finally {
    closeFd(fd);
  }
  return { reused: false };
}

/**
 * When nothing is pinned under `pinDir` but an interface of this namespace runs a vipd
 * responder (pins lost: a fresh bpffs, as under `ip netns exec`), pins that program and its maps
 * there, so the restart reuses them instead of loading new, empty maps. Returns the interface
 * it was adopted from, or null.
 */
export async function adoptAttached(pinDir: string): Promise<string | null> {
  if (existsSync(`${pinDir}/${PROG_PIN}`)) return null;
  for (const ifname of await listInterfaces()) {
    let q: { progId: number; mode: XdpAttachMode };
    try {
      q = xdpQuery(ifNameToIndex(ifname));
    } catch {
      continue; // gone meanwhile
    }
    if (q.progId === 0) continue;
    const fd = progFdById(q.progId);
    try {
      const info = progInfo(fd);
      if (info.name !== PROG_NAME) continue;
      const names = info.mapIds.map((id) => {
        const mfd = mapFdById(id);
        try {
          return mapInfo(mfd).name;
        } finally {
          closeFd(mfd);
        }
      });
      if (!MAP_NAMES.every((m) => names.includes(m))) continue; // not our layout
      await ensureBpffs(pinDir);
      for (const m of MAP_NAMES) rmSync(`${pinDir}/${m}`, { force: true }); // stale pins of other maps
      objPin(fd, `${pinDir}/${PROG_PIN}`);
      pinMissingMaps(fd, pinDir);
      return ifname;
    } finally {
      closeFd(fd);
    }
  }
  return null;
}

/** The id of the pinned program. */
export function pinnedProgId(pinDir: string): number {
  const fd = objGet(`${pinDir}/${PROG_PIN}`);
  try {
    return progInfo(fd).id;
  } finally {
    closeFd(fd);
  }
}

function progName(id: number): string | null {
  try {
    const fd = progFdById(id);
    try {
      return progInfo(fd).name;
    } finally {
      closeFd(fd);
    }
  } catch {
    return null;
  }
}

const BPFTOOL_MODE: Record<"native" | "generic", string> = { native: "xdpdrv", generic: "xdpgeneric" };

async function bpftoolAttach(
  progPath: string,
  ifname: string,
  mode: "native" | "generic",
): Promise<string | null> {
  const r = await run([
    "bpftool",
    "net",
    "attach",
    BPFTOOL_MODE[mode],
    "pinned",
    progPath,
    "dev",
    ifname,
    "overwrite",
  ]);
  return r.code === 0 ? null : essence(r.stderr) || `bpftool exited ${r.code}`;
}

async function bpftoolDetach(ifname: string, mode: XdpAttachMode): Promise<void> {
  const type = mode === "generic" ? "xdpgeneric" : mode === "offload" ? "xdpoffload" : "xdpdrv";
  const r = await run(["bpftool", "net", "detach", type, "dev", ifname]);
  if (r.code !== 0) throw new LoaderError(`bpftool net detach ${type} dev ${ifname}`, essence(r.stderr));
}

/**
 * Attaches the pinned program to `ifname` (in the caller's network namespace). Leaves an
 * existing attachment of the same program alone.
 */
export async function attach(pinDir: string, ifname: string, want: AttachModeOption): Promise<Attachment> {
  const ifindex = ifNameToIndex(ifname);
  const ours = pinnedProgId(pinDir);
  const cur = xdpQuery(ifindex);
  if (cur.progId === ours && (cur.mode === "native" || cur.mode === "generic")) {
    if (want === "auto" || want === cur.mode) {
      return { ifname, ifindex, mode: cur.mode, reason: "already attached" };
    }
  }
  if (cur.progId !== 0 && cur.progId !== ours) {
    const name = progName(cur.progId);
    if (name !== PROG_NAME) {
      throw new LoaderError(
        `attach to ${ifname}`,
        `another XDP program is attached (id ${cur.progId}, name ${name ?? "?"}); not replacing it`,
      );
    }
  }
  const progPath = `${pinDir}/${PROG_PIN}`;
  // A program in the other mode must go first (the kernel allows one mode at a time).
  const tryMode = async (mode: "native" | "generic"): Promise<string | null> => {
    if (cur.progId !== 0 && cur.mode !== "none" && cur.mode !== mode) {
      const now = xdpQuery(ifindex);
      if (now.progId !== 0 && now.mode !== mode) await bpftoolDetach(ifname, now.mode);
    }
    return bpftoolAttach(progPath, ifname, mode);
  };
  if (want !== "generic") {
    const err = await tryMode("native");
    if (err === null) return { ifname, ifindex, mode: "native" };
    if (want === "native") throw new LoaderError(`attach native to ${ifname}`, err);
    const gerr = await tryMode("generic");
    if (gerr !== null) throw new LoaderError(`attach to ${ifname}`, `native: ${err}; generic: ${gerr}`);
    return { ifname, ifindex, mode: "generic", reason: `native mode failed: ${err}` };
  }
  const gerr = await tryMode("generic");
  if (gerr !== null) throw new LoaderError(`attach generic to ${ifname}`, gerr);
  return { ifname, ifindex, mode: "generic", reason: "generic mode requested" };
}

/** Detaches our program from `ifname` if it is attached there (by id, or by name when unpinned). */
export async function detach(ifname: string, progId: number | null): Promise<boolean> {
  const ifindex = ifNameToIndex(ifname);
  const cur = xdpQuery(ifindex);
  if (cur.progId === 0) return false;
  const ours = progId !== null ? cur.progId === progId : progName(cur.progId) === PROG_NAME;
  if (!ours) return false;
  await bpftoolDetach(ifname, cur.mode);
  return true;
}

/** Interface names of the caller's network namespace. */
export async function listInterfaces(): Promise<string[]> {
  const r = await run(["ip", "-j", "link", "show"]);
  if (r.code !== 0) throw new LoaderError("ip -j link show", r.stderr);
  const links = JSON.parse(r.stdout) as { ifname: string }[];
  return links.map((l) => l.ifname);
}

/**
 * Removes everything: detaches the program from every interface of this namespace where it is
 * attached, then unpins program and maps and removes the pin directory.
 */
export async function detachAll(pinDir: string): Promise<{ detached: string[] }> {
  let progId: number | null = null;
  if (existsSync(`${pinDir}/${PROG_PIN}`)) progId = pinnedProgId(pinDir);
  const detached: string[] = [];
  for (const ifname of await listInterfaces()) {
    if (await detach(ifname, progId)) detached.push(ifname);
  }
  for (const name of [PROG_PIN, ...MAP_NAMES]) rmSync(`${pinDir}/${name}`, { force: true });
  if (existsSync(pinDir)) {
    try {
      rmdirSync(pinDir);
    } catch {
      // Something else is pinned there: leave the directory.
    }
  }
  return { detached };
}
