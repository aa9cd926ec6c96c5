/**
 * Test helpers for the edge-node image: boot a disk image in QEMU (TCG, `-cpu max`, UEFI through
 * OVMF, user-mode networking with forwarded ports), watch its serial console, press its power
 * button, pull its plug, and read files from its ext4 partitions afterwards (debugfs, no mounts).
 * Every QEMU this module starts is tracked by PID and killed by `stopAll()`.
 */

import { dlopen, FFIType } from "bun:ffi";
import { copyFileSync, existsSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";

export const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
export const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";

export interface Forward {
  hostPort: number;
  /** Guest address; empty for the guest's own DHCP address. */
  guestAddr: string;
  guestPort: number;
}

export interface Vm {
  /** The QEMU running now (a machine started with `restart` gets a new one per guest reboot). */
  proc: Bun.Subprocess;
  serialLog: string;
  console: string;
  monitor: string;
  /** When the first QEMU of this machine started. */
  startedAt: number;
  /** When the QEMU running now started (the last cold start). */
  lastStartAt: number;
  /** QEMU processes started for this machine so far (1 + guest reboots when `restart`). */
  starts: number;
  serial(): string;
  /** Whether the machine runs, or is about to run again (its guest rebooted). */
  alive(): boolean;
}

/**
 * A second NIC on a tap device that lives in a network namespace (not the host's): the guest's
 * port on a segment the test builds there (a router, a client). The tap must exist already and
 * be persistent (`ip netns exec NS ip tuntap add dev IF mode tap`), so it outlives each QEMU —
 * its link only loses carrier while no QEMU is attached, as a cable between reboots.
 */
export interface TapNic {
  /** The namespace's name (`ip netns` list). */
  netns: string;
  /** The tap device's name inside that namespace. */
  ifname: string;
  /** The guest NIC's MAC address (a site's .network file can match it). */
  mac: string;
}

const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const CLONE_NEWNET = 0x40000000;
const O_CLOEXEC = 0o2000000;
const O_RDWR = 0o2;

let libc:
  | {
      open(path: Uint8Array, flags: number): number;
      close(fd: number): number;
      setns(fd: number, nstype: number): number;
      ioctl(fd: number, req: number, arg: Uint8Array): number;
    }
  | undefined;

function cstr(s: string): Uint8Array {
  return new TextEncoder().encode(`${s}\0`);
}

/**
 * Opens the tap `nic.ifname` of namespace `nic.netns` for QEMU (`-netdev tap,fd=N`): this thread
 * enters the namespace (setns), opens /dev/net/tun there and attaches it to the tap (TUNSETIFF),
 * and goes back to its own namespace at once. QEMU itself runs in the host's namespace, so its
 * user-mode network's forwarded ports stay on the host's loopback. The caller closes the fd.
 */
export function openTap(nic: TapNic): number {
  libc ??= dlopen("libc.so.6", {
    open: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    setns: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  }).symbols as unknown as typeof libc;
  const c = libc as NonNullable<typeof libc>;
  if (nic.ifname.length > 15) throw new Error(`tap name ${nic.ifname}: longer than 15 characters`);
  const home = c.open(cstr("/proc/thread-self/ns/net"), O_CLOEXEC);
  if (home < 0) throw new Error("cannot open this thread's network namespace");
  const target = c.open(cstr(`/run/netns/${nic.netns}`), O_CLOEXEC);
  if (target < 0) {
    c.close(home);
    throw new Error(`network namespace ${nic.netns} not found`);
  }
  // Nothing may throw between the two setns calls: this thread must always come back.
  let fd = -1;
  let problem = "";
  if (c.setns(target, CLONE_NEWNET) !== 0) problem = `setns into ${nic.netns} failed`;
  else {
    fd = c.open(cstr("/dev/net/tun"), O_RDWR | O_CLOEXEC);
    if (fd < 0) problem = "cannot open /dev/net/tun";
    else {
      const ifr = new Uint8Array(40);
      ifr.set(new TextEncoder().encode(nic.ifname));
      new DataView(ifr.buffer).setUint16(16, IFF_TAP | IFF_NO_PI, true);
      if (c.ioctl(fd, TUNSETIFF, ifr) !== 0) {
        c.close(fd);
        fd = -1;
        problem = `TUNSETIFF ${nic.ifname} in ${nic.netns} failed (is it a tap device there?)`;
      }
    }
    if (c.setns(home, CLONE_NEWNET) !== 0) {
      // A test thread left in another namespace would make everything after it wrong.
      console.error("openTap: setns back to the test's own network namespace failed");
      process.exit(1);
    }
  }
  c.close(target);
  c.close(home);
  if (fd < 0) throw new Error(problem);
  return fd;
}

const running = new Set<Bun.Subprocess>();
/** Machines that start a new QEMU when their guest reboots; stopAll() ends that. */
const restarting = new Set<{ stopped: boolean }>();
/** Colour codes systemd writes to the console. */
const ANSI_SGR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

/**
 * A copy-on-write overlay of a raw disk image (qcow2, `qemu-img create -b`): a VM booted from
 * it starts from the base's content, writes only to the overlay, and leaves the base untouched.
 */
export function overlay(base: string, file: string): void {
  const r = Bun.spawnSync(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", file]);
  if (r.exitCode !== 0) throw new Error(`qemu-img create ${file}: ${r.stderr.toString()}`);
}

/**
 * Boots `disk` with its own copy of the UEFI variable store in `dir`. QEMU exits when the guest
 * reboots, unless `reboots` is set (QEMU's warm reset then, which hung in OVMF for minutes under
 * TCG) or `restart` is: then each guest reboot ends the QEMU (`-no-reboot`) and a new QEMU starts
 * on the same disk, the same variable store and the same forwarded ports — a cold start, as a
 * box's power cycle; the serial log goes on in the same file. A power-off (the kernel's
 * "reboot: Power down") is not restarted. `format` is raw
 * unless given (qcow2 for an overlay); `cache` is `unsafe` unless given: QEMU then ignores the
 * guest's flushes, which loses nothing when QEMU is killed for a raw file (every write is already
 * in the host's file), but can for a qcow2 overlay (its metadata is written at a flush): a power
 * cut of a VM on an overlay needs `writeback`. `tap` adds a second NIC (after the user-mode
 * one, so the guest names it eth1) on a tap device in a network namespace (see TapNic); each QEMU
 * of the machine attaches to the same tap.
 */
export function boot(
  dir: string,
  disk: string,
  name: string,
  forwards: Forward[],
  opts: {
    reboots?: boolean;
    restart?: boolean;
    format?: "raw" | "qcow2";
    cache?: "unsafe" | "writeback";
    tap?: TapNic;
  } = {},
): Vm {
  for (const f of [OVMF_CODE, OVMF_VARS]) if (!existsSync(f)) throw new Error(`${f} missing: install ovmf`);
  const vars = join(dir, "ovmf-vars.fd");
  if (!existsSync(vars)) copyFileSync(OVMF_VARS, vars);
  const serialLog = join(dir, `${name}.serial.log`);
  const monitor = join(dir, `${name}.monitor`);
  const fwd = forwards
    .map((f) => `hostfwd=tcp:127.0.0.1:${f.hostPort}-${f.guestAddr}:${f.guestPort}`)
    .join(",");
  const consoleSock = join(dir, `${name}.console`);
  const args = [
    "qemu-system-x86_64",
    ..."-accel tcg -cpu max -smp 2 -m 1024 -display none".split(" "),
    ...(opts.reboots && !opts.restart ? [] : ["-no-reboot"]),
    ...["-drive", `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`],
    ...["-drive", `if=pflash,format=raw,file=${vars}`],
    ...["-drive", `file=${disk},format=${opts.format ?? "raw"},if=virtio,cache=${opts.cache ?? "unsafe"}`],
    ...["-netdev", fwd ? `user,id=n0,${fwd}` : "user,id=n0", "-device", "virtio-net-pci,netdev=n0"],
    // The tap's fd is the QEMU's fd 3 (see spawn below).
    ...(opts.tap
      ? ["-netdev", "tap,id=n1,fd=3", "-device", `virtio-net-pci,netdev=n1,mac=${opts.tap.mac}`]
      : []),
    // The serial console: a socket to type into; everything it prints also goes to serialLog.
    ...[
      "-chardev",
      `socket,id=ser0,path=${consoleSock},server=on,wait=off,logfile=${serialLog}${opts.restart ? ",logappend=on" : ""}`,
    ],
    ...["-serial", "chardev:ser0"],
    ...["-monitor", `unix:${monitor},server,nowait`],
  ];
  const serial = () => (existsSync(serialLog) ? readFileSync(serialLog, "latin1").replace(ANSI_SGR, "") : "");
  const state = { stopped: !opts.restart };
  const spawn = (n: number) => {
    const suffix = n === 1 ? "" : `.${n}`;
    const stdout = Bun.file(join(dir, `${name}${suffix}.qemu.log`));
    const stderr = Bun.file(join(dir, `${name}${suffix}.qemu.err`));
    let p: Bun.Subprocess;
    if (opts.tap) {
      const tapFd = openTap(opts.tap);
      try {
        p = Bun.spawn(args, { stdio: ["ignore", stdout, stderr, tapFd] });
      } finally {
        libc?.close(tapFd); // QEMU has its own copy
      }
    } else {
      p = Bun.spawn(args, { stdout, stderr });
    }
    running.add(p);
    void p.exited.then((code) => {
      running.delete(p);
      if (state.stopped || code !== 0 || p !== vm.proc) return;
      // The guest rebooted (or powered off): QEMU exited by itself.
      if (/reboot: Power down\s*$/.test(serial().trimEnd().split("\n").slice(-3).join("\n"))) {
        state.stopped = true;
        restarting.delete(state);
        return;
      }
      vm.starts++;
      vm.lastStartAt = Date.now();
      vm.proc = spawn(vm.starts);
    });
    return p;
  };
  if (opts.restart) restarting.add(state);
  const now = Date.now();
  const vm: Vm = {
    proc: undefined as unknown as Bun.Subprocess,
    serialLog,
    console: consoleSock,
    monitor,
    startedAt: now,
    lastStartAt: now,
    starts: 1,
    serial,
    alive: () => vm.proc.exitCode === null || !state.stopped,
  };
  vm.proc = spawn(1);
  machines.set(vm, state);
  return vm;
}

const machines = new WeakMap<Vm, { stopped: boolean }>();

/** Sends one command to the QEMU monitor; returns what the monitor printed in answer. */
export async function monitorCommand(vm: Vm, cmd: string): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const s = connect(vm.monitor);
    let answer = "";
    let sent = false;
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`monitor: no answer to ${cmd}`));
    }, 10_000);
    s.once("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.on("data", (d: Buffer) => {
      if (sent) {
        answer += d.toString();
        return;
      }
      sent = true; // the greeting and first prompt came; now the command
      s.write(`${cmd}\n`, () => {
        setTimeout(() => {
          clearTimeout(t);
          s.end();
          // The monitor echoes (and redraws) the command as it is typed: the answer is what
          // follows its last full echo, without prompts and the terminal's escape sequences.
          const text = answer.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, "g"), "");
          const at = text.lastIndexOf(cmd);
          resolve(
            (at >= 0 ? text.slice(at + cmd.length) : text)
              .split(/\r?\n/)
              .map((l) => l.trim())
              .filter((l) => !l.startsWith("(qemu)") && l !== "")
              .join("\n"),
          );
        }, 500);
      });
    });
  });
}

/** Types on the serial console ("\r" is Enter). */
export async function type(vm: Vm, text: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const s = connect(vm.console);
    s.once("error", reject);
    s.once("connect", () =>
      s.write(text, () =>
        setTimeout(() => {
          s.end();
          resolve();
        }, 200),
      ),
    );
  });
}

/** Waits until the console has printed a match of `re` after its first `from` characters. */
export async function waitConsole(vm: Vm, re: RegExp, ms: number, from = 0): Promise<string> {
  return until(vm, `console shows ${re}`, ms, async () => re.exec(vm.serial().slice(from))?.[0]);
}

/** Pulls the plug: SIGKILL, no shutdown of any kind. */
export async function powerCut(vm: Vm): Promise<void> {
  const st = machines.get(vm);
  if (st) {
    st.stopped = true;
    restarting.delete(st);
  }
  vm.proc.kill("SIGKILL");
  await vm.proc.exited;
}

/** Waits for the VM to exit by itself (after a power-off), up to `ms`. Returns whether it did. */
export async function waitExit(vm: Vm, ms: number): Promise<boolean> {
  const done = await Promise.race([vm.proc.exited.then(() => true), Bun.sleep(ms).then(() => false)]);
  return done;
}

export function stopAll(): void {
  for (const st of restarting) st.stopped = true;
  restarting.clear();
  for (const p of running) p.kill("SIGKILL");
  running.clear();
}

/** Kills every VM still running (a test that failed half-way) and waits until each has exited. */
export async function stopAllAndWait(): Promise<void> {
  const procs = [...running];
  stopAll();
  await Promise.all(procs.map((p) => p.exited));
}

// A test run stopped from outside (Ctrl-C, a CI timeout) must not leave a VM behind.
process.on("exit", stopAll);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(sig, () => {
    stopAll();
    process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
  });
}

/** GET through a forwarded port; null while nothing answers. */
export async function get(url: string, token?: string): Promise<{ status: number; body: string } | null> {
  try {
    const r = await fetch(url, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      signal: AbortSignal.timeout(5_000),
    });
    return { status: r.status, body: await r.text() };
  } catch {
    return null;
  }
}

/** Polls until `check` returns a value (not undefined) or `ms` pass; throws with the serial tail. */
export async function until<T>(
  vm: Vm,
  what: string,
  ms: number,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await check();
    if (v !== undefined) return v;
    if (!vm.alive()) break;
    await Bun.sleep(1_000);
  }
  const tail = vm.serial().split("\n").slice(-40).join("\n");
  throw new Error(
    `${what}: not within ${ms / 1000} s (qemu exit ${vm.proc.exitCode})\n--- serial ---\n${tail}`,
  );
}

export interface Partition {
  name: string;
  startBytes: number;
  sizeBytes: number;
}

/** The GPT partitions of a disk image, by name (sfdisk). */
export function partitions(disk: string): Map<string, Partition> {
  const r = Bun.spawnSync(["sfdisk", "-J", disk]);
  if (r.exitCode !== 0) throw new Error(`sfdisk -J ${disk}: ${r.stderr.toString()}`);
  const j = JSON.parse(r.stdout.toString()) as {
    partitiontable: { sectorsize?: number; partitions: { start: number; size: number; name?: string }[] };
  };
  const ss = j.partitiontable.sectorsize ?? 512;
  const out = new Map<string, Partition>();
  for (const p of j.partitiontable.partitions) {
    if (p.name) out.set(p.name, { name: p.name, startBytes: p.start * ss, sizeBytes: p.size * ss });
  }
  return out;
}

/** sha256 of a byte range of a file (a partition of a disk image). */
export async function rangeDigest(file: string, p: Partition): Promise<string> {
  const h = new Bun.CryptoHasher("sha256");
  const f = Bun.file(file);
  const chunk = 64 << 20;
  for (let o = 0; o < p.sizeBytes; o += chunk) {
    const end = Math.min(o + chunk, p.sizeBytes);
    h.update(new Uint8Array(await f.slice(p.startBytes + o, p.startBytes + end).arrayBuffer()));
  }
  return h.digest("hex");
}

/** Reads a file from an ext4 partition of a disk image (debugfs, read-only); null when absent. */
export function readExt4(disk: string, p: Partition, path: string): string | null {
  const r = Bun.spawnSync(["debugfs", "-R", `cat ${path}`, `${disk}?offset=${p.startBytes}`]);
  const out = r.stdout.toString();
  const err = r.stderr.toString();
  if (r.exitCode !== 0 || /File not found|not found by ext2_lookup/.test(err)) return null;
  return out;
}
