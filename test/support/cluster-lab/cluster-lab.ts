/**
 * Lab helper for the layer-2 cluster tests and the failover benchmark (not used by vipd itself):
 * a client and N vipd nodes on one bridge, each node a real `vipd run` process in its own
 * network namespace (NodeSettings: interfaces [eth0], localDelivery, members with addresses,
 * cluster.keyFile; private bpffs pins), a UDP responder per node that names itself, and a probe
 * on the client that sends to the VIP every few ms.
 *
 * With `router: true`, a Linux router namespace ("rtr", default neighbour sysctls, forwarding
 * on) sits on the same bridge at .1 / ::1 and routes to a second segment where the "far" client
 * lives (10.89.0.2, fd89::2); the nodes route back through it. Clients that trust their
 * neighbour cache (ping, see ping.ts) can then be placed on the VIP's segment or behind the router.
 *
 * Everything is made through test/support/netns.ts (unique names, processes tracked by PID) and
 * removed by destroy(), also when a test fails.
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { hashToken } from "../../../src/api/auth.ts";
import { Lab } from "../netns.ts";
import { until } from "../until.ts";
import { buildXdp, objectPath, type TempPins, tempPins } from "../xdp-testkit.ts";

const ROOT = join(import.meta.dir, "../../..");
const MAIN = join(ROOT, "src/main.ts");
export const SUBNET = "10.88.0";
export const VIP = `${SUBNET}.100`;
export const SUBNET6 = "fd88::";
/** The IPv6 address of the same (dual-stack) Service: it follows VIP's owner. */
export const VIP6 = `${SUBNET6}100`;
export const RESPONDER_PORT = 9000;
/** The router's addresses on the VIP's segment (with `router: true`). */
export const ROUTER4 = `${SUBNET}.1`;
export const ROUTER6 = `${SUBNET6}1`;
/** The client behind the router (namespace "far"). */
export const FAR4 = "10.89.0.2";
export const FAR6 = "fd89::2";
const API = "127.0.0.1:7473";
/** The admin bearer token of every lab node's API. */
export const ADMIN_TOKEN = "l2-lab-admin-token-0123456789";
const AUTH = ["-H", `authorization: Bearer ${ADMIN_TOKEN}`];

export interface LabNode {
  name: string;
  ns: string;
  ip: string;
  mac: string;
  dir: string;
  pins: TempPins;
  proc: Subprocess | undefined;
  /** The node's UDP responder (its "service"). */
  responder: Subprocess | undefined;
  logs: string[];
  stopped: boolean;
}

export interface ClusterLabOptions {
  tag: string;
  nodes?: number;
  intervalMs?: number;
  deadAfterMs?: number;
  riseMs?: number;
  /** Extra manifests appended to every node's configuration. */
  extra?: string;
  /** A router namespace on the segment and a client behind it (namespace "far"). */
  router?: boolean;
  /** Node names (default n1, n2, ...); they decide the election order (sha256 of name#ip). */
  names?: string[];
}

export interface Answer {
  t: number;
  node: string;
  seq: number;
}

/** A probe running on the client, its answers collected as they arrive. */
export class Probe {
  readonly answers: Answer[] = [];
  readonly done: Promise<void>;
  constructor(readonly proc: Subprocess<"ignore", "pipe", "pipe">) {
    this.done = this.read();
  }
  private async read(): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of this.proc.stdout) {
      buf += dec.decode(chunk, { stream: true });
      let i = buf.indexOf("\n");
      while (i >= 0) {
        const [t, node, seq] = buf.slice(0, i).split(" ");
        buf = buf.slice(i + 1);
        if (node !== undefined && node !== "start")
          this.answers.push({ t: Number(t), node, seq: Number(seq) });
        i = buf.indexOf("\n");
      }
    }
  }
  /** Answers after absolute time t (ms, performance.timeOrigin based). */
  since(t: number): Answer[] {
    return this.answers.filter((a) => a.t >= t);
  }
  /** The longest silence between answers within [from, to]. */
  maxGap(from: number, to: number): number {
    const xs = this.answers.filter((a) => a.t >= from && a.t <= to).map((a) => a.t);
    let gap = 0;
    for (let i = 1; i < xs.length; i++) gap = Math.max(gap, (xs[i] as number) - (xs[i - 1] as number));
    return gap;
  }
}

export const absNow = () => performance.timeOrigin + performance.now();

/** The tests' one poll-until-deadline helper (test/support/until.ts), for the lab's users. */
export { until };

export class ClusterLab {
  readonly nodes: LabNode[] = [];
  readonly work: string;
  readonly keyFile: string;
  private constructor(
    readonly lab: Lab,
    readonly opts: ClusterLabOptions,
  ) {
    this.work = mkdtempSync(join(tmpdir(), `vipd-l2c-${process.pid}-`));
    this.keyFile = join(this.work, "cluster.key");
  }

  static async create(opts: ClusterLabOptions): Promise<ClusterLab> {
    await buildXdp();
    const c = new ClusterLab(await Lab.create(opts.tag), opts);
    try {
      await c.build();
    } catch (e) {
      await c.destroy();
      throw e;
    }
    return c;
  }

  private async build(): Promise<void> {
    const { lab } = this;
    const n = this.opts.names?.length ?? this.opts.nodes ?? 3;
    await lab.addNs("lan");
    const ports: string[] = [];
    const hosts = ["client", ...(this.opts.router ? ["rtr"] : []), ...this.names(n)];
    for (const h of hosts) {
      await lab.addNs(h);
      await lab.veth("lan", `p-${h}`, h, "eth0");
      ports.push(`p-${h}`);
    }
    await lab.bridge("lan", "br0", ports);
    await lab.addr("client", "eth0", `${SUBNET}.2/24`);
    await lab.addr("client", "eth0", `${SUBNET6}2/64`);
    if (this.opts.router) await this.buildRouter();
    writeFileSync(this.keyFile, crypto.getRandomValues(new Uint8Array(32)), { mode: 0o600 });
    for (let i = 1; i <= n; i++) {
      const name = this.names(n)[i - 1] as string;
      const ip = `${SUBNET}.${10 + i}`;
      await lab.addr(name, "eth0", `${ip}/24`);
      await lab.addr(name, "eth0", `${SUBNET6}${10 + i}/64`);
      if (this.opts.router) {
        // Replies to the far client go back through the router.
        await lab.run(name, ["ip", "route", "add", "default", "via", ROUTER4]);
        await lab.run(name, ["ip", "-6", "route", "add", "default", "via", ROUTER6]);
      }
      // veth drops XDP_TX frames unless the peer end runs an XDP program too (LAB.md).
      await lab.run("lan", [
        "ip",
        "link",
        "set",
        "dev",
        `p-${name}`,
        "xdp",
        "obj",
        objectPath("lab_pass"),
        "sec",
        "xdp",
      ]);
      const dir = join(this.work, name);
      this.nodes.push({
        name,
        ns: name,
        ip,
        mac: (await lab.mac(name, "eth0")).toLowerCase(),
        dir,
        pins: await tempPins(`l2c-${name}`),
        proc: undefined,
        responder: undefined,
        logs: [],
        stopped: false,
      });
    }
    for (const node of this.nodes) {
      this.writeConfig(node);
      this.startResponder(node);
    }
  }

  /**
   * The router (namespace "rtr": eth0 on the segment, eth1 to "far") and the far client. Only
   * forwarding is turned on; every neighbour sysctl keeps its default (arp_accept=0,
   * accept_untracked_na=0), as on a stock Linux router.
   */
  private async buildRouter(): Promise<void> {
    const { lab } = this;
    await lab.addr("rtr", "eth0", `${ROUTER4}/24`);
    await lab.addr("rtr", "eth0", `${ROUTER6}/64`);
    await lab.addNs("far");
    await lab.veth("rtr", "eth1", "far", "eth0");
    await lab.addr("rtr", "eth1", "10.89.0.1/24");
    await lab.addr("rtr", "eth1", "fd89::1/64");
    await lab.addr("far", "eth0", `${FAR4}/24`);
    await lab.addr("far", "eth0", `${FAR6}/64`);
    await lab.run("rtr", ["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
    await lab.run("far", ["ip", "route", "add", "default", "via", "10.89.0.1"]);
    await lab.run("far", ["ip", "-6", "route", "add", "default", "via", "fd89::1"]);
  }

  private names(n: number): string[] {
    return this.opts.names ?? Array.from({ length: n }, (_, i) => `n${i + 1}`);
  }

  /**
   * The node's link goes down or comes back at the switch (its bridge port): the node sees its
   * carrier go and return, and keeps its addresses and routes, as when a cable or a switch port
   * fails. (`ip link set eth0 down` inside the node is different: the kernel then removes the
   * node's IPv6 addresses and every route through eth0, and nothing puts them back.)
   */
  async link(node: LabNode, up: boolean): Promise<void> {
    await this.lab.run("lan", ["ip", "link", "set", `p-${node.name}`, up ? "up" : "down"]);
  }

  /** Starts the node's UDP responder (the service the VIP leads to). */
  startResponder(node: LabNode): void {
    node.responder = this.lab.spawn(
      node.ns,
      [process.execPath, join(import.meta.dir, "responder.ts"), node.name, String(RESPONDER_PORT)],
      { stdout: "ignore", stderr: "ignore" },
    );
  }

  /** kill -9 of vipd and of the node's service together: the node is gone, only its kernel remains. */
  async crash(node: LabNode): Promise<void> {
    for (const p of [node.proc, node.responder]) p?.kill("SIGKILL");
    await Promise.all([node.proc?.exited, node.responder?.exited]);
    node.proc = undefined;
    node.responder = undefined;
  }

  /** The node's manifests: NodeSettings (cluster), one pool, one L2Advertisement, one Service. */
  writeConfig(node: LabNode, extraSettings: Record<string, unknown> = {}): void {
    const o = this.opts;
    const settings = {
      apiVersion: "vipd.io/v1alpha1",
      kind: "NodeSettings",
      metadata: { name: node.name },
      spec: {
        nodeName: node.name,
        interfaces: ["eth0"],
        localDelivery: true,
        api: { listen: API, tokens: [{ name: "ops", role: "admin", hash: hashToken(ADMIN_TOKEN) }] },
        members: this.nodes.map((m) => ({ name: m.name, address: m.ip })),
        cluster: {
          keyFile: this.keyFile,
          intervalMs: o.intervalMs ?? 50,
          deadAfterMs: o.deadAfterMs ?? 200,
          riseMs: o.riseMs ?? 1000,
        },
        ...extraSettings,
      },
    };
    const manifests = `${JSON.stringify(settings)}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan, namespace: metallb-system }
spec: { addresses: ["${VIP}-${SUBNET}.110", "${VIP6}-${SUBNET6}110"] }
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: lan-l2, namespace: metallb-system }
spec: { ipAddressPools: [lan] }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { type: LoadBalancer, ipFamilyPolicy: RequireDualStack, ports: [{ port: 80 }] }
${o.extra ?? ""}`;
    Bun.spawnSync(["mkdir", "-p", join(node.dir, "config"), join(node.dir, "state")]);
    writeFileSync(join(node.dir, "config", "vipd.yaml"), manifests);
  }

  node(name: string): LabNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** Starts `vipd run` on a node (its stderr log kept in node.logs). */
  start(node: LabNode): void {
    node.logs = [];
    node.stopped = false;
    const proc = this.lab.spawn(
      node.ns,
      [
        process.execPath,
        MAIN,
        "run",
        "--config",
        join(node.dir, "config"),
        "--state-dir",
        join(node.dir, "state"),
      ],
      { stderr: "pipe", env: { VIPD_BPF_PIN_DIR: node.pins.pinDir, VIPD_LOG_LEVEL: "info" }, cwd: ROOT },
    );
    node.proc = proc;
    void (async () => {
      const dec = new TextDecoder();
      let buf = "";
      for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) {
        buf += dec.decode(chunk, { stream: true });
        const lines = buf.split("\n");
        buf = lines.pop() ?? "";
        node.logs.push(...lines);
      }
    })().catch(() => {});
  }

  /** GET on a node's API (from inside its namespace); undefined when it does not answer. */
  async api<T>(node: LabNode, path: string, timeoutS = 1): Promise<T | undefined> {
    const r = await this.lab.run(
      node.ns,
      ["curl", "-sf", ...AUTH, "--max-time", String(timeoutS), `http://${API}${path}`],
      {
        allowFail: true,
        timeoutMs: (timeoutS + 2) * 1000,
      },
    );
    return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
  }

  async post<T>(node: LabNode, path: string, body: unknown): Promise<{ code: number; body: T }> {
    const r = await this.lab.run(
      node.ns,
      [
        "curl",
        "-s",
        ...AUTH,
        "--max-time",
        "3",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-H",
        "content-type: application/json",
        "-d",
        JSON.stringify(body),
        `http://${API}${path}`,
      ],
      { allowFail: true },
    );
    const i = r.stdout.lastIndexOf("\n");
    return { code: Number(r.stdout.slice(i + 1)), body: JSON.parse(r.stdout.slice(0, i) || "null") as T };
  }

  async metrics(node: LabNode): Promise<string> {
    const r = await this.lab.run(node.ns, ["curl", "-sf", "--max-time", "2", `http://${API}/metrics`], {
      allowFail: true,
    });
    return r.stdout;
  }

  /** The owner every running node's /api/v1/l2/elections agrees on, once they agree. */
  async agreedOwner(ip = VIP): Promise<string | undefined> {
    const live = this.nodes.filter((n) => n.proc !== undefined && !n.stopped);
    const seen = await Promise.all(
      live.map(async (n) => {
        const e = await this.api<{ items: { ip: string; owner?: string }[] }>(n, "/api/v1/l2/elections");
        return e?.items.find((x) => x.ip === ip)?.owner;
      }),
    );
    const first = seen[0];
    return first !== undefined && seen.every((s) => s === first) ? first : undefined;
  }

  /** Nodes whose XDP map (GET /api/v1/l2/announcements) holds the VIP now, as its owner. */
  async holders(ip = VIP): Promise<string[]> {
    return (await this.announcing(ip)).owners;
  }

  /**
   * Nodes whose XDP map holds the VIP: as its owner, or still answering for it while they hand it
   * over (make before break: until the new owner confirms, at most HANDOVER_HOLD_MS).
   */
  async announcing(ip = VIP): Promise<{ owners: string[]; handingOver: string[] }> {
    const live = this.nodes.filter((n) => n.proc !== undefined && !n.stopped);
    const got = await Promise.all(
      live.map(async (n) => {
        const a = await this.api<{ items: { ip: string; handingOver?: boolean }[] }>(
          n,
          "/api/v1/l2/announcements",
        );
        return { name: n.name, item: a?.items.find((x) => x.ip === ip) };
      }),
    );
    return {
      owners: got.filter((g) => g.item !== undefined && g.item.handingOver !== true).map((g) => g.name),
      handingOver: got.filter((g) => g.item?.handingOver === true).map((g) => g.name),
    };
  }

  /** Starts every node and waits until all are ready and agree on one owner that holds the VIP. */
  async startAll(): Promise<string> {
    for (const n of this.nodes) this.start(n);
    await this.allReady();
    return this.settled();
  }

  /** Waits until every running node sees itself and every other running node Alive and ready. */
  async allReady(ms = 20_000): Promise<void> {
    const live = () => this.nodes.filter((n) => n.proc !== undefined && !n.stopped);
    await until(
      "every node to see every other one Alive and ready",
      async () => {
        const names = new Set(live().map((n) => n.name));
        for (const n of live()) {
          const m = await this.api<{ items: { name: string; state: string; ready: boolean }[] }>(
            n,
            "/api/v1/cluster/members",
          );
          const ok = m?.items.filter((x) => names.has(x.name) && x.state === "Alive" && x.ready).length;
          if (ok !== names.size) return false;
        }
        return true;
      },
      ms,
    );
  }

  /**
   * Waits until every running node agrees on the owner, only the owner holds the VIP, and no
   * other node still answers for it while handing it over.
   */
  async settled(ms = 20_000): Promise<string> {
    let seen = "";
    try {
      return await until(
        "the nodes to agree on one owner holding the VIP",
        async () => {
          const owner = await this.agreedOwner();
          const { owners: h, handingOver } = await this.announcing();
          seen = `owner ${owner ?? "(no agreement)"}, holders [${h.join(", ")}], handing over [${handingOver.join(", ")}]`;
          if (owner === undefined) return undefined;
          return h.length === 1 && h[0] === owner && handingOver.length === 0 ? owner : undefined;
        },
        ms,
      );
    } catch (e) {
      const tails = this.nodes.map((n) => `${n.name}: ${n.logs.slice(-6).join("\n  ")}`).join("\n");
      throw new Error(`${(e as Error).message}; last seen: ${seen}\n${tails}`);
    }
  }

  /**
   * Starts a probe (default: on the client; "far": behind the router): one datagram to the VIP's
   * service every intervalMs, for at most durationMs.
   */
  probe(intervalMs: number, durationMs: number, ns = "client"): Probe {
    const proc = this.lab.spawn(
      ns,
      [
        process.execPath,
        join(import.meta.dir, "probe.ts"),
        VIP,
        String(RESPONDER_PORT),
        String(intervalMs),
        String(durationMs),
      ],
      { stdout: "pipe", stderr: "ignore" },
    ) as Subprocess<"ignore", "pipe", "pipe">;
    return new Probe(proc);
  }

  /** The MAC the client's neighbour table holds for the VIP (undefined: none or FAILED). */
  async clientNeigh(ip = VIP): Promise<string | undefined> {
    const r = await this.lab.run("client", ["ip", "-j", "neigh", "show", ip, "dev", "eth0"], {
      allowFail: true,
    });
    const e = (JSON.parse(r.stdout || "[]") as { lladdr?: string }[])[0];
    return e?.lladdr?.toLowerCase();
  }

  /** MACs that answer one broadcast ARP request for the VIP from the client (all of them, 1 s). */
  async arpAnswerers(ip = VIP): Promise<string[]> {
    const r = await this.lab.run(
      "client",
      ["arping", "-b", "-c", "3", "-W", "0.2", "-w", "2", "-i", "eth0", ip],
      {
        allowFail: true,
      },
    );
    return [
      ...new Set(
        [...r.stdout.matchAll(/bytes from ([0-9a-f:]{17})/gi)].map((m) => (m[1] as string).toLowerCase()),
      ),
    ];
  }

  /** The MAC that answers a Neighbor Solicitation for the IPv6 VIP (undefined: none). */
  async ndpAnswerer(ip = VIP6): Promise<string | undefined> {
    const r = await this.lab.run("client", ["ndisc6", "-q", "-1", "-r", "3", "-w", "500", ip, "eth0"], {
      allowFail: true,
    });
    return r.code === 0 ? r.stdout.trim().toLowerCase() : undefined;
  }

  nodeByMac(mac: string | undefined): string | undefined {
    return this.nodes.find((n) => n.mac === mac)?.name;
  }

  async destroy(): Promise<void> {
    await this.lab.destroy();
    for (const n of this.nodes) await n.pins.cleanup().catch(() => {});
    rmSync(this.work, { recursive: true, force: true });
  }
}
