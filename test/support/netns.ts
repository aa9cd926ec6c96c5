/**
 * A throwaway lab of network namespaces, veth pairs, bridges and processes, for the lab and
 * interop tests, the benchmarks and the live demo.
 *
 * Everything a Lab creates carries a unique prefix (`v<tag>-<pid>-<n>-`), is tracked, and is
 * removed by `destroy()`: processes by PID (SIGTERM, then SIGKILL), then the namespaces. Nothing
 * touches the machine's own interfaces: every link lives inside a namespace the Lab made.
 *
 * @example
 * const lab = await Lab.create("xdp");
 * try {
 *   await lab.addNs("client"); await lab.addNs("node");
 *   await lab.veth("client", "eth0", "node", "eth0");
 *   await lab.addr("client", "eth0", "10.0.0.1/24");
 * } finally { await lab.destroy(); }
 */

import type { Subprocess } from "bun";
import { type RunOptions, type RunResult, sh } from "../../src/util/exec.ts";

export { type RunOptions, type RunResult, sh };

let counter = 0;
const live = new Set<Lab>();

export interface SpawnOptions {
  env?: Record<string, string>;
  cwd?: string;
  stdout?: "pipe" | "inherit" | "ignore";
  stderr?: "pipe" | "inherit" | "ignore";
}

export class Lab {
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly procs = new Set<Subprocess>();
  private destroyed = false;

  private constructor(tag: string) {
    // Interface and namespace names must stay short; keep the tag short too.
    this.prefix = `v${tag.slice(0, 6)}-${process.pid}-${counter++}-`;
  }

  static async create(tag: string): Promise<Lab> {
    const lab = new Lab(tag);
    live.add(lab);
    return lab;
  }

  nsName(short: string): string {
    return `${this.prefix}${short}`;
  }

  async addNs(short: string): Promise<string> {
    const name = this.nsName(short);
    await sh(["ip", "netns", "add", name]);
    this.namespaces.push(name);
    await this.run(short, ["ip", "link", "set", "lo", "up"]);
    return name;
  }

  /** A veth pair between two of this lab's namespaces; both ends are brought up. */
  async veth(aNs: string, aIf: string, bNs: string, bIf: string): Promise<void> {
    // Create inside namespace a (never on the host), then move the peer end.
    await this.run(aNs, [
      "ip",
      "link",
      "add",
      aIf,
      "type",
      "veth",
      "peer",
      "name",
      bIf,
      "netns",
      this.nsName(bNs),
    ]);
    await this.run(aNs, ["ip", "link", "set", aIf, "up"]);
    await this.run(bNs, ["ip", "link", "set", bIf, "up"]);
  }

  async bridge(ns: string, br: string, members: string[]): Promise<void> {
    await this.run(ns, ["ip", "link", "add", br, "type", "bridge"]);
    for (const m of members) await this.run(ns, ["ip", "link", "set", m, "master", br]);
    await this.run(ns, ["ip", "link", "set", br, "up"]);
  }

  async addr(ns: string, ifname: string, cidr: string): Promise<void> {
    const v6 = cidr.includes(":");
    await this.run(ns, [
      "ip",
      ...(v6 ? ["-6"] : []),
      "addr",
      "add",
      cidr,
      "dev",
      ifname,
      ...(v6 ? ["nodad"] : []),
    ]);
  }

  async mac(ns: string, ifname: string): Promise<string> {
    const r = await this.run(ns, ["cat", `/sys/class/net/${ifname}/address`]);
    return r.stdout.trim();
  }

  async ifindex(ns: string, ifname: string): Promise<number> {
    const r = await this.run(ns, ["cat", `/sys/class/net/${ifname}/ifindex`]);
    return Number(r.stdout.trim());
  }

  /** Runs a command inside one of this lab's namespaces and waits for it. */
  async run(ns: string, cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
    return sh(["ip", "netns", "exec", this.nsName(ns), ...cmd], opts);
  }

  /** Starts a long-running process inside a namespace; destroy() stops it. */
  spawn(ns: string, cmd: string[], opts: SpawnOptions = {}): Subprocess {
    const proc = Bun.spawn(["ip", "netns", "exec", this.nsName(ns), ...cmd], {
      stdout: opts.stdout ?? "ignore",
      stderr: opts.stderr ?? "inherit",
      stdin: "ignore",
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
    });
    this.procs.add(proc);
    return proc;
  }

  /** Stops a process this lab started: signal (default SIGTERM), then SIGKILL after graceMs. */
  async stop(proc: Subprocess, signal: NodeJS.Signals = "SIGTERM", graceMs = 3000): Promise<void> {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill(signal);
      const done = await Promise.race([proc.exited.then(() => true), Bun.sleep(graceMs).then(() => false)]);
      if (!done) {
        proc.kill("SIGKILL");
        await proc.exited;
      }
    }
    this.procs.delete(proc);
  }

  /** Removes every process and namespace this lab made. Idempotent; never throws. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all([...this.procs].map((p) => this.stop(p, "SIGTERM", 2000).catch(() => {})));
    // Processes started by tools inside a namespace (daemons that fork) are found by namespace.
    for (const ns of this.namespaces) {
      const pids = await sh(["ip", "netns", "pids", ns], { allowFail: true });
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {}
      }
    }
    for (const ns of this.namespaces.reverse()) {
      await sh(["ip", "netns", "del", ns], { allowFail: true });
    }
    live.delete(this);
  }
}

/** Destroys every lab still alive (for process exit handlers). */
export async function destroyAllLabs(): Promise<void> {
  await Promise.all([...live].map((l) => l.destroy()));
}

let signalsHooked = false;
/**
 * For benchmarks and scripts (not tests: bun test has its own afterAll): on SIGINT or SIGTERM
 * (Ctrl-C, or CI's `timeout`), destroy every live lab — processes by PID, then namespaces — and
 * exit 130 / 143, so an interrupted run leaves nothing behind.
 */
export function destroyLabsOnSignal(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const [sig, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.on(sig, () => void destroyAllLabs().finally(() => process.exit(code)));
  }
}
