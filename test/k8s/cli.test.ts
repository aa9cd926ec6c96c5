/**
 * `vipd k8s` as a process against the faithful test API server: it allocates and writes statuses
 * through a kubeconfig, and on SIGTERM exits 0 and hands its Lease back.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashToken } from "../../src/api/auth.ts";
import { PATHS } from "../../src/k8s/client.ts";
import { until } from "../support/until.ts";
import { fakeCluster, NAMESPACE } from "./harness.ts";
import { create, getService, ingress, pool, service } from "./vipd.ts";

const MAIN = join(import.meta.dir, "../../src/main.ts");

test("vipd k8s: writes statuses through the kubeconfig; after kill -9 the same pod resumes its own Lease; SIGTERM exits 0 and releases it", async () => {
  const c = await fakeCluster();
  let proc: ReturnType<typeof Bun.spawn> | undefined;
  const start = () =>
    Bun.spawn(
      ["bun", MAIN, "k8s", "--kubeconfig", c.kubeconfig, "--node-name", "cli-node", "--namespace", NAMESPACE],
      { stdout: "pipe", stderr: "pipe", env: { ...process.env, POD_NAME: "vipd-cli-7x2kq" } },
    );
  type Spec = { holderIdentity?: string; leaseTransitions?: number; acquireTime?: string };
  const lease = async () => (await c.admin.get(`${PATHS.leases(NAMESPACE)}/vipd-controller`)).spec as Spec;
  try {
    await create(c, pool("lan", ["192.0.2.90/31"]));
    await create(c, service("cli"));
    proc = start();
    await until(
      "status written by vipd k8s",
      async () => ingress(await getService(c, "cli"))[0] === "192.0.2.90",
      30_000,
    );
    // The identity is the pod's name (POD_NAME, from the downward API), not the PID.
    const first = await lease();
    expect(first.holderIdentity).toBe("vipd-cli-7x2kq");
    // kill -9: the Lease stays held; the restarted pod renews it as its own (no takeover: the
    // same acquireTime and transition count) and serves a new Service.
    proc.kill("SIGKILL");
    await proc.exited;
    proc = start();
    await create(c, service("cli2"));
    await until(
      "the restarted process serves a new Service",
      async () => ingress(await getService(c, "cli2"))[0] === "192.0.2.91",
      30_000,
    );
    const resumed = await lease();
    expect(resumed).toMatchObject({
      holderIdentity: "vipd-cli-7x2kq",
      leaseTransitions: first.leaseTransitions,
      acquireTime: first.acquireTime,
    });
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect((await lease()).holderIdentity).toBe("");
  } finally {
    if (proc !== undefined && proc.exitCode === null) {
      proc.kill("SIGKILL");
      await proc.exited;
    }
    await c.close();
  }
}, 90_000);

test("vipd k8s serves the HTTP API: probes and metrics open, state with a read token, config changes refused", async () => {
  const c = await fakeCluster();
  const dir = mkdtempSync(join(tmpdir(), "vipd-k8s-api-"));
  const tokens = join(dir, "tokens.yaml");
  writeFileSync(
    tokens,
    `- { name: dash, role: read, hash: "${hashToken("k8s-read-token")}" }\n- { name: ops, role: admin, hash: "${hashToken("k8s-admin-token")}" }\n`,
  );
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  let proc: ReturnType<typeof Bun.spawn> | undefined;
  try {
    await create(c, pool("lan", ["192.0.2.94/31"]));
    await create(c, service("api"));
    proc = Bun.spawn(
      [
        "bun",
        MAIN,
        "k8s",
        "--kubeconfig",
        c.kubeconfig,
        "--node-name",
        "api-node",
        "--namespace",
        NAMESPACE,
        "--api-listen",
        `127.0.0.1:${port}`,
        "--api-tokens-file",
        tokens,
      ],
      { stdout: "ignore", stderr: "ignore" },
    );
    await until(
      "status written",
      async () => ingress(await getService(c, "api"))[0] === "192.0.2.94",
      30_000,
    );
    await until(
      "readyz",
      async () => (await fetch(`${base}/readyz`).catch(() => null))?.status === 200,
      30_000,
    );
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
    expect((await fetch(`${base}/api/v1/services`)).status).toBe(401);
    const read = { authorization: "Bearer k8s-read-token" };
    await until(
      "the API to show the Service's IP",
      async () => {
        const r = (await (await fetch(`${base}/api/v1/services`, { headers: read })).json()) as {
          items: { name: string; ips: string[] }[];
        };
        return r.items.some((i) => i.name === "api" && i.ips[0] === "192.0.2.94");
      },
      30_000,
    );
    const pools = (await (await fetch(`${base}/api/v1/pools`, { headers: read })).json()) as {
      items: { name: string; families: { family: string; assigned: string; available: string }[] }[];
    };
    expect(pools.items.find((p) => p.name === "lan")?.families).toEqual([
      { family: "IPv4", assigned: "1", available: "1" },
    ]);
    const admin = { authorization: "Bearer k8s-admin-token" };
    const got = await fetch(`${base}/api/v1/config`, { headers: { ...admin, accept: "application/yaml" } });
    expect(got.status).toBe(200);
    expect(await got.text()).toContain("192.0.2.94/31");
    const put = await fetch(`${base}/api/v1/config`, {
      method: "PUT",
      headers: { ...admin, "content-type": "application/yaml", "if-match": got.headers.get("etag") ?? "" },
      body: "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: { name: x }\nspec: { addresses: [10.1.0.0/24] }\n",
    });
    expect(put.status).toBe(400);
    expect(JSON.stringify(await put.json())).toContain("the configuration lives in the cluster");
  } finally {
    if (proc !== undefined && proc.exitCode === null) {
      proc.kill("SIGTERM");
      await Promise.race([proc.exited, Bun.sleep(5000)]);
      if (proc.exitCode === null) proc.kill("SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
    await c.close();
  }
}, 90_000);

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

test("vipd k8s: bad arguments exit 2 with usage; an unreadable kubeconfig exits 1", async () => {
  const bad = Bun.spawnSync(["bun", MAIN, "k8s", "--xdp-mode", "fast"], { stderr: "pipe" });
  expect(bad.exitCode).toBe(2);
  expect(bad.stderr.toString()).toContain("--xdp-mode must be native or generic");
  const missing = Bun.spawnSync(["bun", MAIN, "k8s", "--kubeconfig", "/nonexistent/kubeconfig"], {
    stderr: "pipe",
    stdout: "pipe",
  });
  expect(missing.exitCode).toBe(1);
}, 60_000);

test("vipd k8s: a missing or short cluster key exits 1 before anything is watched; from the environment a missing file only turns membership off", async () => {
  const c = await fakeCluster();
  const dir = mkdtempSync(join(tmpdir(), "vipd-k8s-key-"));
  let proc: ReturnType<typeof Bun.spawn> | undefined;
  try {
    const short = join(dir, "short.key");
    writeFileSync(short, "too-short");
    const base = [
      "bun",
      MAIN,
      "k8s",
      "--kubeconfig",
      c.kubeconfig,
      "--node-name",
      "k",
      "--namespace",
      NAMESPACE,
    ];
    const watchesBefore = c.server.counts.WATCH ?? 0;
    for (const [file, why] of [
      [join(dir, "absent.key"), "no such file"],
      [short, "at least 16 bytes"],
    ] as const) {
      const r = Bun.spawnSync([...base, "--cluster-key-file", file, "--api-listen", ""], { stderr: "pipe" });
      expect(r.exitCode).toBe(1);
      const err = r.stderr.toString().toLowerCase();
      expect(err).toContain("cannot read the cluster key");
      expect(err).toContain(why);
    }
    expect(c.server.counts.WATCH ?? 0).toBe(watchesBefore);
    // The DaemonSet's way: VIPD_CLUSTER_KEY_FILE naming a file that is not there (no Secret).
    proc = Bun.spawn([...base, "--api-listen", ""], {
      env: { ...process.env, VIPD_CLUSTER_KEY_FILE: join(dir, "absent.key") },
      stderr: "pipe",
      stdout: "ignore",
    });
    const reader = (proc.stderr as ReadableStream<Uint8Array>).getReader();
    let text = "";
    const deadline = Date.now() + 30_000;
    // One read outstanding at a time: a read abandoned to a timeout would swallow its chunk.
    let pending = reader.read();
    while (!text.includes("live membership is off") && Date.now() < deadline) {
      const r = await Promise.race([pending, Bun.sleep(1000).then(() => undefined)]);
      if (r === undefined) continue;
      if (r.done) break;
      text += new TextDecoder().decode(r.value);
      pending = reader.read();
    }
    void reader.cancel().catch(() => {});
    expect(text).toContain("no cluster key file");
    expect(proc.exitCode).toBeNull();
  } finally {
    if (proc !== undefined && proc.exitCode === null) {
      proc.kill("SIGKILL");
      await proc.exited;
    }
    rmSync(dir, { recursive: true, force: true });
    await c.close();
  }
}, 60_000);
