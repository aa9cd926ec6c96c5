/**
 * `vipd k8s --metrics-listen`: the listener Prometheus scrapes (MetalLB's 7472 in the DaemonSet)
 * serves /metrics with the metallb_* series of the cluster's state, and /livez, and nothing else;
 * it works with the API listener off, so it is a separate socket; an object vipd cannot apply
 * turns MetalLB's stale-config series on. Against the faithful test API server, as a process.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { until } from "../support/until.ts";
import { fakeCluster, NAMESPACE } from "./harness.ts";
import { create, getService, ingress, pool, service } from "./vipd.ts";

const MAIN = join(import.meta.dir, "../../src/main.ts");

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

test("vipd k8s --metrics-listen: /metrics with MetalLB's series and /livez only; the API listener can be off", async () => {
  const c = await fakeCluster();
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  let proc: ReturnType<typeof Bun.spawn> | undefined;
  try {
    await create(c, pool("lan", ["192.0.2.96/30"]));
    await create(c, service("scraped"));
    proc = Bun.spawn(
      [
        "bun",
        MAIN,
        "k8s",
        "--kubeconfig",
        c.kubeconfig,
        "--node-name",
        "metrics-node",
        "--namespace",
        NAMESPACE,
        "--api-listen",
        "",
        "--metrics-listen",
        `[127.0.0.1]:${port}`,
      ],
      { stdout: "ignore", stderr: "ignore" },
    );
    await until(
      "status written",
      async () => ingress(await getService(c, "scraped"))[0] === "192.0.2.96",
      30_000,
    );
    const scrape = async () => (await fetch(`${base}/metrics`).catch(() => null))?.text();
    const text = await until(
      "the pool's address counted in use",
      async () => {
        const t = await scrape();
        return t?.includes('metallb_allocator_addresses_in_use_total{pool="lan"} 1') ? t : undefined;
      },
      30_000,
    );
    expect(text).toContain('metallb_allocator_addresses_total{pool="lan"} 4');
    expect(text).toContain("metallb_k8s_client_config_loaded_bool 1");
    expect(text).toContain("metallb_k8s_client_config_stale_bool 0");
    expect(text).toContain('vipd_pool_addresses_assigned{pool="lan",family="IPv4"} 1');
    expect((await fetch(`${base}/livez`)).status).toBe(200);
    for (const path of ["/api/v1/services", "/api/v1/config", "/readyz", "/"])
      expect({ path, status: (await fetch(`${base}${path}`)).status }).toEqual({ path, status: 404 });
    expect((await fetch(`${base}/metrics`, { method: "POST" })).status).toBe(405);
    // An object the API server took but vipd cannot apply (a pool overlapping "lan"): vipd runs
    // on its last good configuration, and says so in MetalLB's series (its stale-config alert).
    await create(c, pool("overlap", ["192.0.2.97/32"]));
    await until(
      "metallb_k8s_client_config_stale_bool 1",
      async () => (await scrape())?.includes("metallb_k8s_client_config_stale_bool 1"),
      30_000,
    );
    expect(await scrape()).toContain("vipd_config_stale 1");
  } finally {
    if (proc !== undefined && proc.exitCode === null) {
      proc.kill("SIGTERM");
      await Promise.race([proc.exited, Bun.sleep(5000)]);
      if (proc.exitCode === null) proc.kill("SIGKILL");
    }
    await c.close();
  }
}, 90_000);
