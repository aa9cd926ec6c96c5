/**
 * `vipd run` as an operator runs it: real `bun src/main.ts run` processes with a config in a temp
 * directory, a state directory of their own and the API on a free loopback port (port 0, read
 * back from the "API listening" log line). Logs are the process's stderr JSON lines.
 *
 * Stories: the API answers with the assignments; SIGHUP, a file change, or PUT /api/v1/config
 * (If-Match, admin token) apply a new generation; an invalid edit keeps the running one and the
 * log says why; SIGTERM exits 0; a restart keeps every Service's addresses even when the set
 * changed; SIGKILL during PUT leaves the old or the new file, never a mix; --local-delivery
 * installs owned VIPs as local routes in a network namespace the test makes.
 *
 * Every process is started by this file and stopped by PID in finally/afterAll. No fixed sleeps
 * for outcomes: everything is polled with a deadline.
 */
import { afterAll, describe, expect, test } from "bun:test";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { hashToken } from "../../src/api/auth.ts";
import { configFromText } from "../../src/config/index.ts";
import type { Lab } from "../../src/lab/netns.ts";

const ROOT = join(import.meta.dir, "../..");
const MAIN = join(ROOT, "src/main.ts");
const EXAMPLE = join(ROOT, "examples/appliance");
const DEADLINE_MS = 10_000;

// ---- helpers ----------------------------------------------------------------------------------

const dirs: string[] = [];
const procs = new Set<Vipd>();

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), `vipd-run-${process.pid}-`));
  dirs.push(d);
  return d;
}

afterAll(async () => {
  await Promise.all([...procs].map((p) => p.kill()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

type LogLine = Record<string, unknown> & { level: string; message: string };

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = DEADLINE_MS) {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await Bun.sleep(50);
  }
}

/** One `vipd run` process, its stderr log lines, and its API. */
class Vipd {
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
    const line = await until("the API to listen", () => {
      if (v.proc.exitCode !== null) throw new Error(`vipd exited ${v.proc.exitCode}: ${v.logText()}`);
      return v.logs.find((l) => l.message === "API listening");
    });
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

  async waitGeneration(n: number): Promise<void> {
    await until(`generation ${n}`, async () => (await this.generation()) === n);
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

const POOL = (addresses: string[]) => `apiVersion: metallb.io/v1beta1
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

const SVC = (ns: string, name: string, extra = "") => `---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${ns}${extra} }
spec:
  type: LoadBalancer
  ports: [{ port: 80 }]
`;

// ---- stories ----------------------------------------------------------------------------------

describe("vipd run: the API, reloads and shutdown", () => {
  test("serves the example appliance: ready, Services with their addresses, pool usage", async () => {
    const d = tempDir();
    const v = await Vipd.ready(["--config", EXAMPLE, "--state-dir", join(d, "state")]);
    try {
      const ready = await v.api("/readyz");
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ ready: true, reasons: [] });
      expect(await v.ips()).toEqual({
        "infra/dns": ["10.77.0.110"],
        "infra/dns-tcp": ["10.77.0.110"],
        "shop/web": ["10.77.0.100", "fd77::100"],
      });
      const pools = await v.json<{ items: unknown[] }>("/api/v1/pools");
      expect(pools.items).toEqual([
        {
          name: "site",
          autoAssign: true,
          families: [
            { family: "IPv4", assigned: "2", available: "18" },
            { family: "IPv6", assigned: "1", available: "15" },
          ],
        },
      ]);
      const st = await v.json<{ node: string; configGeneration: number; ready: boolean }>("/api/v1/status");
      expect([st.node, st.configGeneration, st.ready]).toEqual(["n1", 1, true]);
      // The assignments are on disk for the next start.
      expect(JSON.parse(readFileSync(join(d, "state", "assignments.json"), "utf8"))).toEqual({
        "infra/dns": ["10.77.0.110"],
        "infra/dns-tcp": ["10.77.0.110"],
        "shop/web": ["10.77.0.100", "fd77::100"],
      });
      expect(await v.stop()).toBe(0);
      expect(v.logs.at(-1)?.message).toBe("stopped");
    } finally {
      await v.kill();
    }
  });

  test("SIGHUP reloads a change the file watcher cannot see (the config is a symlink to another directory)", async () => {
    const d = tempDir();
    mkdirSync(join(d, "real"));
    mkdirSync(join(d, "etc"));
    const real = join(d, "real", "vipd.yaml");
    writeFileSync(real, POOL(["10.9.0.10-10.9.0.20"]) + SVC("shop", "web"));
    symlinkSync(real, join(d, "etc", "vipd.yaml"));
    const v = await Vipd.ready(["--config", join(d, "etc", "vipd.yaml"), "--state-dir", ""]);
    try {
      expect(await v.ips()).toEqual({ "shop/web": ["10.9.0.10"] });
      writeFileSync(real, POOL(["10.9.0.10-10.9.0.20"]) + SVC("shop", "web") + SVC("shop", "api"));
      v.proc.kill("SIGHUP");
      await v.waitGeneration(2);
      expect(await v.ips()).toEqual({ "shop/web": ["10.9.0.10"], "shop/api": ["10.9.0.11"] });
      const applied = v.logs.filter((l) => l.message === "configuration applied");
      expect(applied.map((l) => [l["reason"], l["generation"]])).toEqual([
        ["start", 1],
        ["SIGHUP", 2],
      ]);
      // SIGHUP with nothing changed applies nothing new.
      v.proc.kill("SIGHUP");
      v.proc.kill("SIGHUP");
      writeFileSync(real, POOL(["10.9.0.10-10.9.0.20"]) + SVC("shop", "api"));
      v.proc.kill("SIGHUP");
      await v.waitGeneration(3);
      expect(await v.ips()).toEqual({ "shop/api": ["10.9.0.11"] });
      expect(v.logs.some((l) => l["event"] === "IPReleased" && l["service"] === "shop/web")).toBe(true);
      expect(await v.stop()).toBe(0);
    } finally {
      await v.kill();
    }
  });

  test("a file change alone reloads: edited in place, replaced by rename, or added to the directory", async () => {
    const d = tempDir();
    const conf = join(d, "conf");
    mkdirSync(conf);
    writeFileSync(join(conf, "pools.yaml"), POOL(["10.9.1.10-10.9.1.20"]));
    writeFileSync(join(conf, "services.yaml"), SVC("shop", "web"));
    const v = await Vipd.ready(["--config", conf, "--state-dir", ""]);
    try {
      expect(await v.ips()).toEqual({ "shop/web": ["10.9.1.10"] });
      writeFileSync(join(conf, "services.yaml"), SVC("shop", "web") + SVC("shop", "api"));
      await v.waitGeneration(2);
      expect(await v.ips()).toEqual({ "shop/web": ["10.9.1.10"], "shop/api": ["10.9.1.11"] });
      // An editor's save: write a temp file, rename it over the old one.
      writeFileSync(join(conf, ".services.yaml.swp"), SVC("shop", "api"));
      renameSync(join(conf, ".services.yaml.swp"), join(conf, "services.yaml"));
      await v.waitGeneration(3);
      expect(await v.ips()).toEqual({ "shop/api": ["10.9.1.11"] });
      // A new file in the directory.
      writeFileSync(join(conf, "more.yaml"), SVC("ops", "grafana"));
      await v.waitGeneration(4);
      expect(await v.ips()).toEqual({ "shop/api": ["10.9.1.11"], "ops/grafana": ["10.9.1.10"] });
      const reasons = v.logs.filter((l) => l.message === "configuration applied").map((l) => l["reason"]);
      expect(reasons).toEqual(["start", "file change", "file change", "file change"]);
    } finally {
      await v.kill();
    }
  });

  test("an invalid edit keeps the running generation and its addresses, and the log says why", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    const good = POOL(["10.9.2.10-10.9.2.20"]) + SVC("shop", "web");
    writeFileSync(f, good);
    const v = await Vipd.ready(["--config", f, "--state-dir", join(d, "state")]);
    try {
      const before = await v.ips();
      expect(before).toEqual({ "shop/web": ["10.9.2.10"] });
      // A typo in a field name and an address outside any pool.
      writeFileSync(
        f,
        `${POOL(["10.9.2.10-10.9.2.20"]).replace("ipAddressPools", "ipAdressPools")}${SVC("shop", "web")}`,
      );
      const rejected = await until("the rejection in the log", () =>
        v.logs.find((l) => l.message === "configuration rejected"),
      );
      expect(rejected.level).toBe("error");
      expect(rejected["reason"]).toBe("file change");
      expect(rejected["keptGeneration"]).toBe(1);
      const problems = rejected["problems"] as string[];
      expect(problems).toHaveLength(1);
      expect(problems[0]).toStartWith(`${f}:11: L2Advertisement/lan-l2: spec.ipAdressPools: `);
      expect(problems[0]).toContain("ipAddressPools");
      // Nothing changed: same generation, same addresses, same file on disk for the state.
      expect(await v.generation()).toBe(1);
      expect(await v.ips()).toEqual(before);
      expect((await v.api("/readyz")).status).toBe(200);
      // SIGHUP does not make it acceptable either.
      v.proc.kill("SIGHUP");
      await until("a second rejection", () =>
        v.logs.find((l) => l.message === "configuration rejected" && l["reason"] === "SIGHUP"),
      );
      expect(await v.generation()).toBe(1);
      // A YAML syntax error is rejected the same way.
      writeFileSync(f, `${good}  ports: [ {\n`);
      await until(
        "the syntax error",
        () => v.logs.filter((l) => l.message === "configuration rejected").length >= 3 || undefined,
      );
      expect(await v.generation()).toBe(1);
      expect(await v.ips()).toEqual(before);
      // Fixing the file applies it.
      writeFileSync(f, good + SVC("shop", "api"));
      await v.waitGeneration(2);
      expect(await v.ips()).toEqual({ "shop/web": ["10.9.2.10"], "shop/api": ["10.9.2.11"] });
    } finally {
      await v.kill();
    }
  });

  test("an invalid configuration at start: exit 1, with the problem in the log", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    writeFileSync(f, POOL(["10.9.3.300"]));
    const v = await Vipd.start(["--config", f, "--state-dir", ""]);
    try {
      expect(await Promise.race([v.proc.exited, Bun.sleep(DEADLINE_MS).then(() => "late")])).toBe(1);
      await v.kill();
      const rejected = v.logs.find((l) => l.message === "configuration rejected");
      expect((rejected?.["problems"] as string[])[0]).toStartWith(
        `${f}:5: IPAddressPool/lan: spec.addresses[0]: `,
      );
      expect(v.logs.some((l) => l.message === "API listening")).toBe(false);
    } finally {
      await v.kill();
    }
  });

  test("SIGTERM: exits 0 promptly, also while reloads are being triggered", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    writeFileSync(f, POOL(["10.9.4.10-10.9.4.20"]) + SVC("shop", "web"));
    const v = await Vipd.ready(["--config", f, "--state-dir", join(d, "state")]);
    try {
      writeFileSync(f, POOL(["10.9.4.10-10.9.4.20"]) + SVC("shop", "web") + SVC("shop", "api"));
      v.proc.kill("SIGHUP");
      expect(await v.stop()).toBe(0);
      expect(v.logs.some((l) => l.message === "shutting down" && l["signal"] === "SIGTERM")).toBe(true);
      // The API port is closed.
      await expect(fetch(`${v.base}/readyz`)).rejects.toThrow();
    } finally {
      await v.kill();
    }
  });
});

describe("vipd run: addresses survive a restart", () => {
  test("b allocated first, then a added: after restarts a and b keep their IPs, whatever the order", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    const state = join(d, "state");
    const pool = POOL(["10.9.5.10-10.9.5.20", "fd09:5::10-fd09:5::20"]);
    const dual = ", annotations: {}";
    const dualSpec = (s: string) =>
      s.replace("type: LoadBalancer", "type: LoadBalancer\n  ipFamilyPolicy: RequireDualStack");

    writeFileSync(f, pool + dualSpec(SVC("shop", "b", dual)));
    let v = await Vipd.ready(["--config", f, "--state-dir", state]);
    try {
      expect(await v.ips()).toEqual({ "shop/b": ["10.9.5.10", "fd09:5::10"] });
      expect(await v.stop()).toBe(0);

      // a sorts before b: without the state file it would take b's addresses.
      writeFileSync(f, pool + dualSpec(SVC("shop", "a", dual)) + dualSpec(SVC("shop", "b", dual)));
      v = await Vipd.ready(["--config", f, "--state-dir", state]);
      const want = { "shop/a": ["10.9.5.11", "fd09:5::11"], "shop/b": ["10.9.5.10", "fd09:5::10"] };
      expect(await v.ips()).toEqual(want);
      expect(await v.stop()).toBe(0);

      // Again, with the order in the file reversed and a third Service before both.
      writeFileSync(
        f,
        pool + dualSpec(SVC("shop", "b", dual)) + dualSpec(SVC("shop", "a", dual)) + SVC("ops", "zero"),
      );
      v = await Vipd.ready(["--config", f, "--state-dir", state]);
      expect(await v.ips()).toEqual({ ...want, "ops/zero": ["10.9.5.12"] });
      expect(await v.stop()).toBe(0);

      // The control: the same config with an empty state directory re-addresses them.
      v = await Vipd.ready(["--config", f, "--state-dir", join(d, "fresh")]);
      const fresh = await v.ips();
      expect(fresh["shop/a"]).not.toEqual(want["shop/a"]);
      expect(fresh["shop/b"]).not.toEqual(want["shop/b"]);
      expect(await v.stop()).toBe(0);
    } finally {
      await v.kill();
    }
  });

  test("a state file naming an address the pool no longer has: kept but reported as stranded, the others untouched", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    const state = join(d, "state");
    writeFileSync(f, POOL(["10.9.6.10-10.9.6.20"]) + SVC("shop", "a") + SVC("shop", "b"));
    let v = await Vipd.ready(["--config", f, "--state-dir", state]);
    try {
      expect(await v.ips()).toEqual({ "shop/a": ["10.9.6.10"], "shop/b": ["10.9.6.11"] });
      expect(await v.stop()).toBe(0);
      // The pool shrinks while vipd is down; a's address is no longer in it. The allocator never
      // re-addresses a Service behind its back: a keeps its address, and the API says why.
      writeFileSync(
        f,
        POOL(["10.9.6.11-10.9.6.20"]) + SVC("shop", "a") + SVC("shop", "b") + SVC("shop", "c"),
      );
      v = await Vipd.ready(["--config", f, "--state-dir", state]);
      expect(await v.ips()).toEqual({
        "shop/a": ["10.9.6.10"],
        "shop/b": ["10.9.6.11"],
        "shop/c": ["10.9.6.12"],
      });
      const items = (await v.json<{ items: { name: string; warnings: string[] }[] }>("/api/v1/services"))
        .items;
      expect(items.find((x) => x.name === "a")?.warnings.join()).toContain("no longer allows");
      expect(items.find((x) => x.name === "b")?.warnings).toEqual([]);
    } finally {
      await v.kill();
    }
  });
});

const ADMIN = "admin-token-for-the-run-test";
const READER = "read-token-for-the-run-test";
const SETTINGS = `---
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
const YAML = { "content-type": "application/yaml" };

describe("vipd run: PUT /api/v1/config", () => {
  test("with the admin token and If-Match: replaces the file atomically and applies it; otherwise 401/403/428/412/400 change nothing", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    const first = `${POOL(["10.9.7.10-10.9.7.20"])}${SETTINGS}${SVC("shop", "web")}`;
    writeFileSync(f, first);
    const v = await Vipd.ready(["--config", f, "--state-dir", join(d, "state")], { token: ADMIN });
    try {
      const got = await v.api("/api/v1/config", { headers: { accept: "application/yaml" } });
      expect(got.status).toBe(200);
      expect(await got.text()).toBe(first);
      const etag = got.headers.get("etag") as string;
      expect(etag).toMatch(/^"[0-9a-f]{32}"$/);

      const second = first + SVC("shop", "api");
      const put = (body: string, headers: Record<string, string>) =>
        v.api("/api/v1/config", { method: "PUT", body, headers: { ...YAML, ...headers } });
      const unchanged = async () => {
        expect(readFileSync(f, "utf8")).toBe(first);
        expect(await v.generation()).toBe(1);
      };

      expect((await put(second, { "if-match": etag, authorization: "" })).status).toBe(401);
      await unchanged();
      expect((await put(second, { "if-match": etag, authorization: `Bearer ${READER}` })).status).toBe(403);
      await unchanged();
      expect((await put(second, {})).status).toBe(428);
      await unchanged();
      const stale = await put(second, { "if-match": '"0123456789abcdef0123456789abcdef"' });
      expect(stale.status).toBe(412);
      expect(stale.headers.get("etag")).toBe(etag);
      await unchanged();
      const invalid = await put(second.replace("10.9.7.10-10.9.7.20", "10.9.7.10-10.9.7.300"), {
        "if-match": etag,
      });
      expect(invalid.status).toBe(400);
      const body = (await invalid.json()) as { error: string; problems: { line: number; field: string }[] };
      expect(body.error).toBe("InvalidConfig");
      expect(body.problems.map((p) => [p.line, p.field])).toEqual([
        [5, "spec.addresses[0]"],
        [11, "spec.ipAddressPools[0]"],
      ]);
      await unchanged();

      const ok = await put(second, { "if-match": etag });
      expect(ok.status).toBe(200);
      const newTag = ok.headers.get("etag") as string;
      expect(newTag).not.toBe(etag);
      expect(readFileSync(f, "utf8")).toBe(second);
      expect(await v.generation()).toBe(2);
      expect(await v.ips()).toEqual({ "shop/web": ["10.9.7.10"], "shop/api": ["10.9.7.11"] });
      // The file watcher sees the API's own write and finds nothing new: still generation 2.
      await Bun.sleep(600);
      expect(await v.generation()).toBe(2);
      // GET now shows the new text and its tag; the old tag is stale.
      const again = await v.api("/api/v1/config");
      expect(again.headers.get("etag")).toBe(newTag);
      expect(((await again.json()) as { yaml: string }).yaml).toBe(second);
      expect((await put(first, { "if-match": etag })).status).toBe(412);
      expect(readFileSync(f, "utf8")).toBe(second);
      // The read token reads state, but not the configuration (it may hold BGP passwords).
      expect(
        (await v.api("/api/v1/services", { headers: { authorization: `Bearer ${READER}` } })).status,
      ).toBe(200);
      expect((await v.api("/api/v1/config", { headers: { authorization: `Bearer ${READER}` } })).status).toBe(
        403,
      );
      expect(await v.stop()).toBe(0);
    } finally {
      await v.kill();
    }
  });

  test("a directory config cannot be replaced through the API: 400 with the reason, nothing written", async () => {
    const d = tempDir();
    const conf = join(d, "conf");
    mkdirSync(conf);
    const text = POOL(["10.9.8.10-10.9.8.20"]) + SETTINGS + SVC("shop", "web");
    writeFileSync(join(conf, "all.yaml"), text);
    const v = await Vipd.ready(["--config", conf, "--state-dir", ""], { token: ADMIN });
    try {
      const etag = (await v.api("/api/v1/config")).headers.get("etag") as string;
      const r = await v.api("/api/v1/config", {
        method: "PUT",
        body: text + SVC("shop", "api"),
        headers: { ...YAML, "if-match": etag },
      });
      expect(r.status).toBe(400);
      expect(JSON.stringify(await r.json())).toContain(
        "is a directory; the API can replace only a single file",
      );
      expect(readFileSync(join(conf, "all.yaml"), "utf8")).toBe(text);
      expect(await v.generation()).toBe(1);
    } finally {
      await v.kill();
    }
  });

  test("SIGKILL during PUT, 20 rounds with a large config: the file is exactly the old or the new text, and it parses", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    const state = join(d, "state");
    // Two different valid sets of 600 Services each (~80 KB): validating, writing and applying
    // each takes a moment, so kills land at different stages of the PUT.
    const big = (tag: string) =>
      POOL(["10.10.0.0/20"]) +
      SETTINGS +
      Array.from({ length: 600 }, (_, i) => SVC(`ns-${tag}`, `s${i}`)).join("");
    const texts = [big("a"), big("b")] as const;
    writeFileSync(f, texts[0]);
    let v: Vipd | undefined;
    const outcomes = { old: 0, new: 0 };
    const start = async () => {
      v = await Vipd.ready(["--config", f, "--state-dir", state], { token: ADMIN });
      return v;
    };
    const putNext = async (w: Vipd) => {
      const before = readFileSync(f, "utf8");
      const next = before === texts[0] ? texts[1] : texts[0];
      const etag = (await w.api("/api/v1/config")).headers.get("etag") as string;
      const t0 = performance.now();
      const done = w
        .api("/api/v1/config", { method: "PUT", body: next, headers: { ...YAML, "if-match": etag } })
        .then((r) => ({ status: r.status, ms: performance.now() - t0 }))
        .catch(() => ({ status: 0, ms: performance.now() - t0 }));
      return { before, next, done };
    };
    try {
      // How long one PUT takes on this machine now, to spread the kills over it.
      const w0 = await start();
      const first = await putNext(w0);
      const took = await first.done;
      expect(took.status).toBe(200);
      expect(readFileSync(f, "utf8")).toBe(first.next);
      await w0.kill();
      for (let round = 0; round < 20; round++) {
        const w = await start();
        const { before, next, done } = await putNext(w);
        // From right away to a little after the PUT would have finished.
        await Bun.sleep((took.ms * 1.2 * round) / 19);
        w.proc.kill("SIGKILL");
        await w.kill();
        await done;
        const now = readFileSync(f, "utf8");
        expect(now === before || now === next).toBe(true);
        outcomes[now === before ? "old" : "new"]++;
        expect(configFromText(now, f).ok).toBe(true);
        // The state file is written atomically too: absent, or valid JSON.
        let held = "{}";
        try {
          held = readFileSync(join(state, "assignments.json"), "utf8");
        } catch {}
        expect(() => JSON.parse(held)).not.toThrow();
      }
      console.log(
        `SIGKILL during PUT (one PUT took ${took.ms.toFixed(0)} ms): old text ${outcomes.old} times, new text ${outcomes.new} times`,
      );
    } finally {
      await v?.kill();
    }
  }, 240_000);
});
