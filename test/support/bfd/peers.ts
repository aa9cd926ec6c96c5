/**
 * Helpers for BFD interop tests and the benchmark: real peers (FRR bfdd, BIRD 2) and vipd's BFD
 * agent inside Lab namespaces, plus the tc bpf filter that drops BFD while the link stays up.
 *
 * Every process is started through Lab.spawn (tracked, killed by PID in lab.destroy()); every
 * file lives in a private temporary directory the caller removes with `rm`.
 */

import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { DesiredSession } from "../../../src/bfd/manager.ts";
import type { Lab } from "../netns.ts";
import { until } from "../until.ts";

const FRR = "/usr/lib/frr";

export function tempDir(tag: string): { path: string; rm: () => void } {
  const path = mkdtempSync(join(tmpdir(), `vipd-bfd-${tag}-${process.pid}-`));
  chmodSync(path, 0o755);
  return { path, rm: () => rmSync(path, { recursive: true, force: true }) };
}

/** FRR zebra + bfdd in the foreground (so their PIDs are the spawned ones). */
export class FrrBfd {
  constructor(
    readonly lab: Lab,
    readonly ns: string,
    readonly dir: string,
    readonly zebra: Subprocess,
    readonly bfdd: Subprocess,
  ) {}

  static async start(lab: Lab, ns: string, parent: string, bfddConf: string): Promise<FrrBfd> {
    const dir = join(parent, `frr-${ns}`);
    await Bun.$`mkdir -p ${dir}`.quiet();
    writeFileSync(join(dir, "zebra.conf"), "hostname zebra\nlog stdout\n");
    writeFileSync(join(dir, "bfdd.conf"), `hostname bfdd\nlog stdout\n${bfddConf}`);
    await Bun.$`chown -R frr:frr ${dir}`.quiet();
    const common = ["--vty_socket", dir, "-z", join(dir, "zserv.api"), "-P", "0"];
    const zebra = lab.spawn(ns, [
      `${FRR}/zebra`,
      ...common,
      "-f",
      join(dir, "zebra.conf"),
      "-i",
      join(dir, "zebra.pid"),
    ]);
    await waitFor(async () => existsSync(join(dir, "zserv.api")), 10_000, "zebra socket");
    const bfdd = lab.spawn(ns, [
      `${FRR}/bfdd`,
      ...common,
      "-f",
      join(dir, "bfdd.conf"),
      "-i",
      join(dir, "bfdd.pid"),
      "--bfdctl",
      join(dir, "bfdd.sock"),
    ]);
    const frr = new FrrBfd(lab, ns, dir, zebra, bfdd);
    await waitFor(async () => (await frr.peers().catch(() => null)) !== null, 10_000, "bfdd vty");
    return frr;
  }

  /** `show bfd peers json`: one object per peer with `peer`, `status`, `diagnostic`… */
  async peers(): Promise<{ peer: string; status: string; diagnostic?: string; multihop?: boolean }[]> {
    const r = await this.lab.run(this.ns, ["vtysh", "--vty_socket", this.dir, "-c", "show bfd peers json"], {
      timeoutMs: 5000,
    });
    return JSON.parse(r.stdout) as { peer: string; status: string }[];
  }

  async status(peer: string): Promise<string | undefined> {
    return (await this.peers()).find((p) => p.peer === peer)?.status;
  }
}

/** BIRD 2 in the foreground. */
export class Bird {
  constructor(
    readonly lab: Lab,
    readonly ns: string,
    readonly sock: string,
    readonly proc: Subprocess,
  ) {}

  static async start(lab: Lab, ns: string, parent: string, conf: string): Promise<Bird> {
    const dir = join(parent, `bird-${ns}`);
    await Bun.$`mkdir -p ${dir}`.quiet();
    const cfg = join(dir, "bird.conf");
    writeFileSync(cfg, conf);
    const sock = join(dir, "bird.ctl");
    const proc = lab.spawn(ns, ["bird", "-f", "-c", cfg, "-s", sock, "-P", join(dir, "bird.pid")]);
    const b = new Bird(lab, ns, sock, proc);
    await waitFor(async () => (await b.bfdSessions().catch(() => null)) !== null, 10_000, "bird socket");
    return b;
  }

  /** `show bfd sessions` as (address → state). */
  async bfdSessions(): Promise<Map<string, string>> {
    const r = await this.lab.run(this.ns, ["birdc", "-s", this.sock, "show", "bfd", "sessions"], {
      timeoutMs: 5000,
    });
    if (r.stdout.includes("Unable to connect")) throw new Error("bird not ready");
    const m = new Map<string, string>();
    for (const line of r.stdout.split("\n")) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 4 && /^[0-9a-f:.]+$/i.test(f[0]!) && f[0]!.match(/[.:]/)) m.set(f[0]!, f[2]!);
    }
    return m;
  }
}

export interface AgentEvent {
  ev: string;
  key?: string;
  diag?: string;
  t?: number;
  [k: string]: unknown;
}

/** vipd's BfdManager running in a namespace (test/support/bfd/agent.ts), read line by line. */
export class Agent {
  readonly events: AgentEvent[] = [];
  private waiters: (() => void)[] = [];

  private constructor(
    readonly lab: Lab,
    readonly proc: Subprocess<"ignore", "pipe", "inherit">,
    readonly configPath: string,
  ) {}

  static async start(
    lab: Lab,
    ns: string,
    dir: string,
    sessions: DesiredSession[],
    extra: string[] = [],
  ): Promise<Agent> {
    const configPath = join(dir, `agent-${ns}-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(configPath, JSON.stringify(sessions));
    const script = join(import.meta.dir, "agent.ts");
    const proc = lab.spawn(ns, [process.execPath, script, configPath, ...extra], {
      stdout: "pipe",
    }) as Subprocess<"ignore", "pipe", "inherit">;
    const a = new Agent(lab, proc, configPath);
    void a.pump();
    await a.waitFor((e) => e.ev === "ready", 15_000, "agent ready");
    return a;
  }

  private async pump(): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of this.proc.stdout) {
      buf += dec.decode(chunk, { stream: true });
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
        try {
          this.events.push(JSON.parse(line) as AgentEvent);
        } catch {
          this.events.push({ ev: "garbage", line });
        }
        for (const w of this.waiters.splice(0)) w();
      }
    }
  }

  /** Waits for an event (searching from index `from`) matching `pred`; returns it. */
  async waitFor(
    pred: (e: AgentEvent) => boolean,
    timeoutMs: number,
    what: string,
    from = 0,
  ): Promise<AgentEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.slice(from).find(pred);
      if (hit) return hit;
      const err = this.events.find((e) => e.ev === "error");
      if (err) throw new Error(`agent error while waiting for ${what}: ${String(err.msg)}`);
      const left = deadline - Date.now();
      if (left <= 0 || this.proc.exitCode !== null) {
        throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(this.events.slice(-8))}`);
      }
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), Bun.sleep(Math.min(left, 200))]);
    }
  }

  /** Latest status (asks the agent with SIGUSR1). */
  async status(): Promise<AgentEvent> {
    const n = this.events.length;
    this.proc.kill("SIGUSR1");
    return this.waitFor((e) => e.ev === "status", 5000, "status", n);
  }

  reconfigure(sessions: DesiredSession[]): void {
    writeFileSync(this.configPath, JSON.stringify(sessions));
  }
}

/** Polls `check` until it is true (bounded): test/support/until.ts with this file's argument order. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  await until(what, check, timeoutMs);
}

/** Compiles drop_bfd.c into `dir` (clang, BPF target) and returns the object path. */
export async function buildDropFilter(dir: string): Promise<string> {
  const obj = join(dir, "drop_bfd.o");
  const src = join(import.meta.dir, "drop_bfd.c");
  await Bun.$`clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c ${src} -o ${obj}`.quiet();
  return obj;
}

/** Drops BFD arriving on `ifname` in `ns` (ingress), link and other traffic untouched. */
export async function dropBfd(lab: Lab, ns: string, ifname: string, obj: string): Promise<void> {
  await lab.run(ns, ["tc", "qdisc", "add", "dev", ifname, "clsact"], { allowFail: true });
  await lab.run(ns, ["tc", "filter", "add", "dev", ifname, "ingress", "bpf", "da", "obj", obj, "sec", "tc"]);
}

export async function undropBfd(lab: Lab, ns: string, ifname: string): Promise<void> {
  await lab.run(ns, ["tc", "filter", "del", "dev", ifname, "ingress"]);
}
