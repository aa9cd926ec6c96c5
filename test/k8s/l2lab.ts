/**
 * The k8s tier's layer-2 lab: N real `vipd k8s` speakers, each in its own network namespace on
 * one bridge with XDP on its eth0, a client namespace that arpings the VIP, and a real
 * kube-apiserver (test/k8s/harness.ts realCluster) on the host's loopback.
 *
 * Reaching the API server from a namespace: `ip netns exec` processes have their own loopback,
 * so each namespace runs test/k8s/forward.ts listening on its own 127.0.0.1:<API port> and
 * forwarding to a Unix socket, which a host-side forward.ts connects to the real 127.0.0.1:<API
 * port>. vipd runs with the unchanged kubeconfig (TLS end to end); only heartbeats, ARP and the
 * client's traffic use the bridge. Heartbeats go to each Node's InternalIP (its eth0 address).
 *
 * Everything is made through test/support/netns.ts (unique names, processes by PID) or tracked here,
 * and removed by destroy(), also when a test fails.
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { hashToken } from "../../src/api/auth.ts";
import { PATHS } from "../../src/k8s/client.ts";
import { Lab } from "../support/netns.ts";
import { buildXdp, objectPath, type TempPins, tempPins } from "../support/xdp-testkit.ts";
import { NAMESPACE, type TestCluster } from "./harness.ts";

const ROOT = join(import.meta.dir, "../..");
const MAIN = join(ROOT, "src/main.ts");
const FORWARD = join(import.meta.dir, "forward.ts");
export const SUBNET = "10.87.0";
export const VIP = `${SUBNET}.100`;
export const SUBNET6 = "fd87::";
const API = "127.0.0.1:7473";
export const READ_TOKEN = "k8s-l2-lab-read-token-0123456789";
export const ADMIN_TOKEN = "k8s-l2-lab-admin-token-0123456789";

export interface K8sNode {
  name: string;
  ns: string;
  ip: string;
  ip6: string;
  mac: string;
  pins: TempPins;
  proc: Subprocess | undefined;
  logs: string[];
}

export interface MemberItem {
  name: string;
  state: string;
  ready: boolean;
}

export interface ElectionItem {
  ip: string;
  owner?: string;
  candidates: string[];
  notOwner: { node: string; reason: string; message: string }[];
  lease?: { state: string; holder?: string; until?: string };
}

/** Reads a child's stdout until a line equals `want` (bounded by `ms`). */
async function waitLine(
  proc: Subprocess<"ignore", "pipe", "inherit">,
  want: string,
  ms = 10_000,
): Promise<void> {
  const reader = proc.stdout.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const deadline = Date.now() + ms;
  try {
    while (Date.now() < deadline) {
      const r = await Promise.race([reader.read(), Bun.sleep(deadline - Date.now()).then(() => undefined)]);
      if (r === undefined || r.done) break;
      buf += dec.decode(r.value, { stream: true });
      if (buf.split("\n").includes(want)) return;
    }
  } finally {
    reader.releaseLock();
  }
  throw new Error(`forwarder did not say "${want}" (got ${JSON.stringify(buf)})`);
}

export class K8sL2Lab {
  readonly nodes: K8sNode[] = [];
  readonly work: string;
  readonly keyFile: string;
  readonly key = crypto.getRandomValues(new Uint8Array(32));
  readonly tokensFile: string;
  private hostForward: Subprocess | undefined;
  private readonly apiPort: number;

  private constructor(
    readonly lab: Lab,
    readonly cluster: TestCluster,
  ) {
    this.work = mkdtempSync(join(tmpdir(), `vipd-k8s-l2-${process.pid}-`));
    this.keyFile = join(this.work, "cluster.key");
    this.tokensFile = join(this.work, "tokens.yaml");
    this.apiPort = Number(new URL(cluster.admin.server).port);
  }

  static async create(cluster: TestCluster, opts: { tag: string; nodes: number }): Promise<K8sL2Lab> {
    await buildXdp();
    const l = new K8sL2Lab(await Lab.create(opts.tag), cluster);
    try {
      await l.build(opts.nodes);
    } catch (e) {
      await l.destroy();
      throw e;
    }
    return l;
  }

  get sock(): string {
    return join(this.work, "api.sock");
  }

  private async build(n: number): Promise<void> {
    const { lab } = this;
    writeFileSync(this.keyFile, this.key, { mode: 0o600 });
    writeFileSync(
      this.tokensFile,
      `- { name: lab, role: read, hash: "${hashToken(READ_TOKEN)}" }\n` +
        `- { name: fleet, role: admin, hash: "${hashToken(ADMIN_TOKEN)}" }\n`,
    );
    const host = Bun.spawn(
      [process.execPath, FORWARD, `unix:${this.sock}`, `tcp:127.0.0.1:${this.apiPort}`],
      {
        stdout: "pipe",
        stderr: "inherit",
        stdin: "ignore",
      },
    );
    this.hostForward = host;
    await waitLine(host, "ready");
    await lab.addNs("lan");
    const hosts = ["client", ...Array.from({ length: n }, (_, i) => `n${i + 1}`)];
    for (const h of hosts) {
      await lab.addNs(h);
      await lab.veth("lan", `p-${h}`, h, "eth0");
    }
    await lab.bridge(
      "lan",
      "br0",
      hosts.map((h) => `p-${h}`),
    );
    await lab.addr("client", "eth0", `${SUBNET}.2/24`);
    for (let i = 1; i <= n; i++) {
      const name = `n${i}`;
      const ip = `${SUBNET}.${10 + i}`;
      await lab.addr(name, "eth0", `${ip}/24`);
      await lab.addr(name, "eth0", `${SUBNET6}${10 + i}/64`);
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
      const fwd = lab.spawn(
        name,
        [process.execPath, FORWARD, `tcp:127.0.0.1:${this.apiPort}`, `unix:${this.sock}`],
        {
          stdout: "pipe",
        },
      ) as Subprocess<"ignore", "pipe", "inherit">;
      await waitLine(fwd, "ready");
      this.nodes.push({
        name,
        ns: name,
        ip,
        ip6: `${SUBNET6}${10 + i}`,
        mac: (await lab.mac(name, "eth0")).toLowerCase(),
        pins: await tempPins(`k8l2-${name}`),
        proc: undefined,
        logs: [],
      });
    }
  }

  /** Creates each lab node's Node object: Ready, with its eth0 addresses (v4, v6) as InternalIPs. */
  async createNodes(): Promise<void> {
    for (const n of this.nodes) {
      const path = `${PATHS.nodes()}/${n.name}`;
      await this.cluster.admin.create(PATHS.nodes(), {
        apiVersion: "v1",
        kind: "Node",
        metadata: { name: n.name, labels: { "kubernetes.io/hostname": n.name } },
        spec: {},
      });
      await this.cluster.admin.mergePatch(`${path}/status`, {
        status: {
          addresses: [
            { type: "InternalIP", address: n.ip },
            { type: "InternalIP", address: n.ip6 },
            { type: "Hostname", address: n.name },
          ],
          conditions: [
            {
              type: "Ready",
              status: "True",
              reason: "KubeletReady",
              message: "lab",
              lastHeartbeatTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
              lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
            },
          ],
        },
      });
    }
  }

  node(name: string): K8sNode {
    const n = this.nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  nodeByMac(mac: string | undefined): string | undefined {
    return this.nodes.find((n) => n.mac === mac)?.name;
  }

  live(): K8sNode[] {
    return this.nodes.filter((n) => n.proc !== undefined);
  }

  /** Starts `vipd k8s` on a node (stderr log kept in node.logs). */
  start(node: K8sNode, extra: string[] = []): void {
    node.logs = [];
    const proc = this.lab.spawn(
      node.ns,
      [
        process.execPath,
        MAIN,
        "k8s",
        "--kubeconfig",
        // Under RBAC, vipd runs as the k3s addon's ServiceAccount: exactly the rights it ships with.
        this.cluster.vipdKubeconfig ?? this.cluster.kubeconfig,
        "--node-name",
        node.name,
        "--namespace",
        NAMESPACE,
        "--interface",
        "eth0",
        "--endpointslice-version",
        this.cluster.endpointSliceVersion,
        "--api-listen",
        API,
        "--api-tokens-file",
        this.tokensFile,
        ...extra,
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

  /** kill -9: the process is gone, its kernel state (XDP program, map) stays behind. */
  async kill9(node: K8sNode): Promise<void> {
    node.proc?.kill("SIGKILL");
    await node.proc?.exited;
    node.proc = undefined;
  }

  /** SIGTERM (a clean shutdown), SIGKILL after 10 s. */
  async stop(node: K8sNode): Promise<void> {
    if (node.proc !== undefined) await this.lab.stop(node.proc, "SIGTERM", 10_000);
    node.proc = undefined;
  }

  /** GET on a node's API from inside its namespace; undefined when it does not answer. */
  async api<T>(node: K8sNode, path: string): Promise<T | undefined> {
    const r = await this.lab.run(
      node.ns,
      ["curl", "-sf", "-H", `authorization: Bearer ${READ_TOKEN}`, "--max-time", "2", `http://${API}${path}`],
      { allowFail: true, timeoutMs: 5000 },
    );
    return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
  }

  /** POST of a JSON body to a node's API as the admin, from inside its namespace. */
  async post(node: K8sNode, path: string, body: unknown): Promise<{ status: number; body: unknown }> {
    const r = await this.lab.run(
      node.ns,
      [
        "curl",
        "-s",
        "-w",
        "\n%{http_code}",
        "-H",
        `authorization: Bearer ${ADMIN_TOKEN}`,
        "-H",
        "content-type: application/json",
        "--max-time",
        "5",
        "--data-binary",
        JSON.stringify(body),
        `http://${API}${path}`,
      ],
      { allowFail: true, timeoutMs: 8000 },
    );
    const nl = r.stdout.lastIndexOf("\n");
    const text = r.stdout.slice(0, nl);
    return { status: Number(r.stdout.slice(nl + 1)), body: text === "" ? undefined : JSON.parse(text) };
  }

  async metrics(node: K8sNode): Promise<string> {
    const r = await this.lab.run(node.ns, ["curl", "-sf", "--max-time", "2", `http://${API}/metrics`], {
      allowFail: true,
      timeoutMs: 5000,
    });
    return r.stdout;
  }

  async members(node: K8sNode): Promise<MemberItem[]> {
    return (await this.api<{ items: MemberItem[] }>(node, "/api/v1/cluster/members"))?.items ?? [];
  }

  async election(node: K8sNode, ip = VIP): Promise<ElectionItem | undefined> {
    const l = await this.api<{ items: ElectionItem[] }>(node, "/api/v1/l2/elections");
    return l?.items.find((e) => e.ip === ip);
  }

  /** Running nodes whose XDP map holds the VIP now (their /api/v1/l2/announcements). */
  async holders(ip = VIP): Promise<string[]> {
    const got = await Promise.all(
      this.live().map(async (n) => {
        const a = await this.api<{ items: { ip: string }[] }>(n, "/api/v1/l2/announcements");
        return a?.items.some((x) => x.ip === ip) ? n.name : undefined;
      }),
    );
    return got.filter((x): x is string => x !== undefined);
  }

  /** Nodes whose MAC answered broadcast ARP requests for the VIP from the client (3 requests). */
  async arpAnswerers(ip = VIP, count = 3): Promise<string[]> {
    const r = await this.lab.run(
      "client",
      ["arping", "-b", "-c", String(count), "-W", "0.1", "-w", "1", "-i", "eth0", ip],
      { allowFail: true, timeoutMs: 5000 },
    );
    const macs = [...r.stdout.matchAll(/bytes from ([0-9a-f:]{17})/gi)].map((m) =>
      (m[1] as string).toLowerCase(),
    );
    return [...new Set(macs.map((m) => this.nodeByMac(m) ?? m))].sort();
  }

  /** Sends heartbeats as `node` from the client to `to`'s heartbeat port (`key`: the wrong one forges). */
  async sendHeartbeats(
    to: K8sNode,
    node: string,
    key: Uint8Array,
    count: number,
    intervalMs: number,
  ): Promise<void> {
    const script = join(import.meta.dir, "send-heartbeats.ts");
    const r = await this.lab.run(
      "client",
      [
        process.execPath,
        script,
        to.ip,
        "7946",
        node,
        Buffer.from(key).toString("hex"),
        String(count),
        String(intervalMs),
      ],
      { allowFail: true, timeoutMs: count * intervalMs + 10_000 },
    );
    if (r.code !== 0) throw new Error(`send-heartbeats failed: ${r.stderr}`);
  }

  tails(lines = 8): string {
    return this.nodes.map((n) => `${n.name}:\n  ${n.logs.slice(-lines).join("\n  ")}`).join("\n");
  }

  async destroy(): Promise<void> {
    await this.lab.destroy();
    for (const n of this.nodes) await n.pins.cleanup().catch(() => {});
    if (this.hostForward !== undefined && this.hostForward.exitCode === null) {
      this.hostForward.kill("SIGTERM");
      await this.hostForward.exited;
    }
    rmSync(this.work, { recursive: true, force: true });
  }
}
