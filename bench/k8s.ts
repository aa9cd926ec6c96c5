/**
 * Kubernetes-mode benchmark (issue 9). Run: `bun bench/k8s.ts [services]` (default 10,000).
 *
 * Against the faithful test API server (test/k8s/apiserver.ts, HTTPS on loopback): the controller
 * is running and synced with one /16 pool; N LoadBalancer Services are then created at once.
 * Measured: time from the first create until every Service's status.loadBalancer.ingress is
 * written (read from the server's store), API requests per Service made by vipd, and memory.
 * vipd's client is rate limited (token bucket, 1000 requests/s, burst 2000, 64 in flight —
 * under the real kube-apiserver's default 400 read / 200 mutating in-flight limits).
 *
 * Baseline, measured in the same run: a plain client that only PATCHes N statuses with the same
 * rate limit (no informer, no allocator, no events) — the floor set by the API round trips.
 * Repeated; medians; the ratio is vipd / baseline. The last line is `services/s: N`.
 */

import { Kube, loadKubeConfig, PATHS } from "../src/k8s/client.ts";
import { fakeCluster, NAMESPACE } from "../test/k8s/harness.ts";
import { create, pool, service, startVipd } from "../test/k8s/vipd.ts";

const N = Number(process.argv[2] ?? 10_000);
const REPEATS = Number(process.env.REPEATS ?? 3);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function createAll(c: Awaited<ReturnType<typeof fakeCluster>>): Promise<void> {
  const admin = new Kube(loadKubeConfig(c.kubeconfig), { qps: 1e6, burst: 1e6, inflight: 256 });
  const names = Array.from({ length: N }, (_, i) => `svc-${i}`);
  await Promise.all(names.map((n) => admin.create(PATHS.services("default"), service(n))));
}

const statusCount = (c: Awaited<ReturnType<typeof fakeCluster>>): number =>
  c.server
    .objects("", "services")
    .filter(
      (s) =>
        ((s.status as { loadBalancer?: { ingress?: unknown[] } }).loadBalancer?.ingress ?? []).length > 0,
    ).length;

async function runVipd(): Promise<{ ms: number; perService: number; heapMb: number; rssMb: number }> {
  const c = await fakeCluster({ bookmarkMs: 5000 });
  try {
    await create(c, pool("big", ["10.128.0.0/16"]));
    Bun.gc(true);
    const heap0 = process.memoryUsage().heapUsed;
    const v = startVipd(c, { node: "n1", speaker: false });
    await v.state.waitSynced();
    while (!v.controller?.isLeader) await Bun.sleep(10);
    const req0 = v.kube.requestCount;
    const t0 = performance.now();
    await createAll(c);
    const deadline = Date.now() + 120_000;
    while (statusCount(c) < N) {
      if (Date.now() > deadline) throw new Error(`only ${statusCount(c)} of ${N} statuses after 120 s`);
      await Bun.sleep(20);
    }
    const ms = performance.now() - t0;
    await v.controller?.idle();
    const perService = (v.kube.requestCount - req0) / N;
    const heapMb = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
    const rssMb = process.memoryUsage().rss / 2 ** 20;
    await v.stop();
    return { ms, perService, heapMb, rssMb };
  } finally {
    await c.close();
  }
}

async function runBaseline(): Promise<number> {
  const c = await fakeCluster({ bookmarkMs: 5000 });
  try {
    await createAll(c);
    const kube = new Kube(loadKubeConfig(c.kubeconfig));
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: N }, (_, i) =>
        kube.mergePatch(`${PATHS.services("default")}/svc-${i}/status`, {
          status: { loadBalancer: { ingress: [{ ip: `10.128.${i >> 8}.${i & 255}` }] } },
        }),
      ),
    );
    return performance.now() - t0;
  } finally {
    await c.close();
  }
}

const vipd: Awaited<ReturnType<typeof runVipd>>[] = [];
const base: number[] = [];
for (let r = 0; r < REPEATS; r++) {
  base.push(await runBaseline());
  vipd.push(await runVipd());
  const last = vipd[vipd.length - 1];
  console.log(
    `run ${r + 1}: vipd ${((last?.ms ?? 0) / 1000).toFixed(2)} s (${last?.perService.toFixed(2)} requests/Service, heap +${last?.heapMb.toFixed(0)} MB, rss ${last?.rssMb.toFixed(0)} MB); baseline status-only ${((base[base.length - 1] ?? 0) / 1000).toFixed(2)} s`,
  );
}
const ms = median(vipd.map((x) => x.ms));
const b = median(base);
console.log(`namespace of the pool: ${NAMESPACE}; services: ${N}; repeats: ${REPEATS}`);
console.log(`median time to every status written: ${(ms / 1000).toFixed(2)} s (goal < 30 s)`);
console.log(
  `median baseline (status patches only, same rate limit): ${(b / 1000).toFixed(2)} s; ratio vipd/baseline: ${(ms / b).toFixed(2)}`,
);
console.log(`median API requests per Service (vipd): ${median(vipd.map((x) => x.perService)).toFixed(2)}`);
console.log(
  `median heap growth: ${median(vipd.map((x) => x.heapMb)).toFixed(0)} MB; rss: ${median(vipd.map((x) => x.rssMb)).toFixed(0)} MB`,
);
console.log(`services/s: ${Math.round((N * 1000) / ms)}`);
