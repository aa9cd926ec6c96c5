/**
 * `vipd k8s` as a process against the faithful test API server: it allocates and writes statuses
 * through a kubeconfig, and on SIGTERM exits 0 and hands its Lease back.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { PATHS } from "../../src/k8s/client.ts";
import { fakeCluster, NAMESPACE, waitFor } from "./harness.ts";
import { create, getService, ingress, pool, service } from "./vipd.ts";

const MAIN = join(import.meta.dir, "../../src/main.ts");

test("vipd k8s: writes statuses through the kubeconfig; SIGTERM exits 0 and releases the Lease", async () => {
  const c = await fakeCluster();
  let proc: ReturnType<typeof Bun.spawn> | undefined;
  try {
    await create(c, pool("lan", ["192.0.2.90/31"]));
    await create(c, service("cli"));
    proc = Bun.spawn(
      ["bun", MAIN, "k8s", "--kubeconfig", c.kubeconfig, "--node-name", "cli-node", "--namespace", NAMESPACE],
      { stdout: "pipe", stderr: "pipe" },
    );
    await waitFor(
      "status written by vipd k8s",
      async () => ingress(await getService(c, "cli"))[0] === "192.0.2.90",
      30_000,
    );
    const lease = await c.admin.get(`${PATHS.leases(NAMESPACE)}/vipd-controller`);
    expect((lease.spec as { holderIdentity?: string }).holderIdentity).toBe(`cli-node_${proc.pid}`);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    const after = await c.admin.get(`${PATHS.leases(NAMESPACE)}/vipd-controller`);
    expect((after.spec as { holderIdentity?: string }).holderIdentity).toBe("");
  } finally {
    if (proc !== undefined && proc.exitCode === null) {
      proc.kill("SIGKILL");
      await proc.exited;
    }
    await c.close();
  }
}, 60_000);

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
