/**
 * The harness of the `vipd run` lab tests (run*.test.ts): one real `bun src/main.ts run` process
 * per Vipd, its stderr JSON log lines collected as they come, its API on a free loopback port
 * (port 0, read back from the "API listening" line); polling with a deadline instead of sleeps;
 * small manifests. Everything started here is killed by PID in cleanup() (call it in afterAll).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { hashToken } from "../../src/api/auth.ts";
import { destroyAllLabs, type Lab } from "../support/netns.ts";
import { until } from "../support/until.ts";

export const ROOT = join(import.meta.dir, "../..");
const MAIN = join(ROOT, "src/main.ts");
export const EXAMPLE = join(ROOT, "examples/appliance");
/** How long any one awaited outcome may take on a loaded 2-core machine. */
export const DEADLINE_MS = 10_000;

const dirs: string[] = [];
const procs = new Set<Vipd>();

export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), `vipd-run-${process.pid}-`));
  dirs.push(d);
  return d;
}

/** For afterAll: kills every process still running, removes labs and temp directories. */
export async function cleanup(): Promise<void> {
  await Promise.all([...procs].map((p) => p.kill()));
  await destroyAllLabs();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export type LogLine = Record<string, unknown> & { level: string; message: string };

/** One `vipd run` process, its stderr log lines, and its API. */
export class Vipd {
  readonly logs: LogLine[] = [];
  private reading: Promise<void>;
  base = "";

  private constructor(
    readonly proc: Subprocess<"ignore", "ignore", "pipe">,
    readonly token?: string,
  ) {
    this.reading = this.read();
  }

  static async start(args: string[], opts: { token?: string; ns?: { lab: Lab; name: string } } = {}) {
    const cmd = [process.execPath, MAIN, "run", "--api-listen", "127.0.0.1:0", "--node-name", "n1", ...args];
    const proc = opts.ns
      ? (opts.ns.lab.spawn(opts.ns.name, cmd, { stderr: "pipe", cwd: ROOT }) as Subprocess<
          "ignore",
          "ignore",
          "pipe"
        >)
      : Bun.spawn(cmd, { cwd: ROOT, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    const v = new Vipd(proc, opts.token);
    procs.add(v);
    return v;
  }

  /** Starts and waits until the API listens (fails with the log if the process exits first). */
  static async ready(args: string[], opts: { token?: string } = {}): Promise<Vipd> {
    const v = await Vipd.start(args, opts);
    const line = await until(
      "the API to listen",
      () => {
        if (v.proc.exitCode !== null) throw new Error(`vipd exited ${v.proc.exitCode}: ${v.logText()}`);
        return v.logs.find((l) => l.message === "API listening");
      },
      DEADLINE_MS,
    );
    v.base = String(line["url"]).replace(/\/$/, "");
    return v;
  }

  private async read(): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of this.proc.stderr) {
      buf += dec.decode(chunk, { stream: true });
      let i = buf.indexOf("\n");
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ level: "raw", message: line });
        }
        i = buf.indexOf("\n");
      }
    }
  }

  logText(): string {
    return this.logs.map((l) => JSON.stringify(l)).join("\n");
  }

  async api(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.token !== undefined && !headers.has("authorization"))
      headers.set("authorization", `Bearer ${this.token}`);
    return fetch(`${this.base}${path}`, { ...init, headers });
  }

  async json<T>(path: string): Promise<T> {
    const r = await this.api(path);
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return (await r.json()) as T;
  }

  async generation(): Promise<number> {
    return (await this.json<{ configGeneration: number }>("/api/v1/status")).configGeneration;
  }

  async ips(): Promise<Record<string, string[]>> {
    const s = await this.json<{ items: { namespace: string; name: string; ips: string[] }[] }>(
      "/api/v1/services",
    );
    return Object.fromEntries(s.items.map((x) => [`${x.namespace}/${x.name}`, x.ips]));
  }

  /** vipd_config_reloads_total{result} from /metrics. */
  async reloads(result: "applied" | "unchanged" | "rejected"): Promise<number> {
    const text = await (await this.api("/metrics")).text();
    const m = new RegExp(`^vipd_config_reloads_total\\{result="${result}"\\} (\\d+)$`, "m").exec(text);
    if (!m) throw new Error(`no vipd_config_reloads_total{result="${result}"} in /metrics`);
    return Number(m[1]);
  }

  async waitGeneration(n: number): Promise<void> {
    await until(`generation ${n}`, async () => (await this.generation()) === n, DEADLINE_MS);
  }

  /** SIGTERM and wait for the exit code (SIGKILL after the deadline, failing the test). */
  async stop(): Promise<number | null> {
    this.proc.kill("SIGTERM");
    const code = await Promise.race([this.proc.exited, Bun.sleep(DEADLINE_MS).then(() => "late" as const)]);
    await this.kill();
    if (code === "late") throw new Error(`vipd did not exit within ${DEADLINE_MS} ms of SIGTERM`);
    return code;
  }

  async kill(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
    await this.proc.exited;
    await this.reading.catch(() => {});
    procs.delete(this);
  }
}

// ---- manifests --------------------------------------------------------------------------------

export const POOL = (addresses: string[]) => `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan, namespace: metallb-system }
spec:
  addresses: ${JSON.stringify(addresses)}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: lan-l2, namespace: metallb-system }
spec:
  ipAddressPools: [lan]
`;

export const SVC = (ns: string, name: string, extra = "") => `---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${ns}${extra} }
spec:
  type: LoadBalancer
  ports: [{ port: 80 }]
`;

// ---- API tokens -------------------------------------------------------------------------------

export const ADMIN = "admin-token-for-the-run-test";
export const READER = "read-token-for-the-run-test";
export const SETTINGS = `---
apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: this-node }
spec:
  api:
    tokens:
      - { name: ops, role: admin, hash: "${hashToken(ADMIN)}" }
      - { name: dashboard, role: read, hash: "${hashToken(READER)}" }
    metricsOpen: true
`;
export const YAML = { "content-type": "application/yaml" };

/** The API URL a process in a namespace logged (reachable from inside that namespace only). */
export function apiUrl(v: Vipd): string {
  const u = v.logs.find((l) => l.message === "API listening")?.["url"];
  if (typeof u !== "string") throw new Error(`no "API listening" line yet:\n${v.logText()}`);
  return u;
}
