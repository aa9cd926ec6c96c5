/**
 * Kubernetes-mode benchmark (issue 9). Run: `bun bench/k8s.ts [services]` (default 10,000).
 *
 * Against the faithful test API server (test/k8s/apiserver.ts, HTTPS on loopback, in its own
 * process — test/k8s/serve.ts — so it does not share vipd's thread): vipd's controller is running
 * and synced with one /16 pool; N LoadBalancer Services are then created at once (by the server
 * itself, with the same watch events N creates make). Measured: time until every Service's
 * status.loadBalancer.ingress is written, vipd's API requests per Service, vipd's CPU and memory.
 * vipd's client is rate limited (token bucket 1000 requests/s, burst 2000, 64 in flight — under
 * the real kube-apiserver's default 400 read / 200 mutating in-flight limits).
 *
 * Baseline, measured in the same run: a plain client that only PATCHes N statuses with the same
 * rate limit (no informer, no allocator, no annotation, no Events) — the floor the round trips and
 * the rate limit set. Both clocks start before the server creates the N Services (the creation
 * takes seconds, and vipd's informers see the Services only as it goes). Repeated; medians;
 * ratio = vipd / baseline. vipd writes its annotations and Events after the statuses (lower
 * priority): the time and CPU until those are sent too are printed beside. Last line:
 * `services/s: N`.
 */

import { Kube, loadKubeConfig, PATHS } from "../src/k8s/client.ts";
import { NAMESPACE, type TestCluster } from "../test/k8s/harness.ts";
import { pool, startVipd } from "../test/k8s/vipd.ts";
import { startRecording } from "./lib/results.ts";

const recording = startRecording("k8s");

const N = Number(process.argv[2] ?? 10_000);
// Each repeat is two 10k passes (the baseline's and vipd's): two repeats keep CI's time down.
const REPEATS = Number(process.env.REPEATS ?? 2);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

interface Server {
  cluster: TestCluster;
  control(path: string): Promise<{ withIngress?: number }>;
  close(): Promise<void>;
}

async function startServer(): Promise<Server> {
  const proc = Bun.spawn(["bun", `${import.meta.dir}/../test/k8s/serve.ts`], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("test API server exited");
    text += new TextDecoder().decode(value);
  }
  const info = JSON.parse(text.split("\n")[0] as string) as { kubeconfig: string };
  const admin = new Kube(loadKubeConfig(info.kubeconfig), { qps: 1e6, burst: 1e6 });
  const close = async () => {
    proc.kill("SIGTERM");
    await proc.exited;
  };
  return {
    cluster: {
      name: "fake",
      kubeconfig: info.kubeconfig,
      admin,
      endpointSliceVersion: "v1",
      dualStack: true,
      down: async () => {},
      up: async () => {},
      close,
    },
    control: (path) => admin.get(path),
    close,
  };
}

async function runVipd() {
  const s = await startServer();
  try {
    await s.cluster.admin.create(PATHS.metallb("ipaddresspools", NAMESPACE), pool("big", ["10.128.0.0/16"]));
    Bun.gc(true);
    const heap0 = process.memoryUsage().heapUsed;
    const rss0 = process.memoryUsage().rss / 2 ** 20;
    const v = startVipd(s.cluster, { node: "n1", speaker: false });
    await v.state.waitSynced();
    while (!v.controller?.isLeader) await Bun.sleep(10);
    const req0 = v.kube.requestCount;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await s.control(`/_test/create-services?n=${N}`);
    const createdS = (performance.now() - t0) / 1000;
    const deadline = Date.now() + 180_000;
    const curve: [number, number][] = [[0, 0]];
    for (;;) {
      const { withIngress = 0 } = await s.control("/_test/count-ingress");
      curve.push([Math.round(performance.now() - t0) / 1000, withIngress]);
      if (withIngress >= N) break;
      if (Date.now() > deadline) throw new Error(`only ${withIngress} of ${N} statuses after 180 s`);
      await Bun.sleep(50);
    }
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    await v.controller?.idle();
    // The annotations and Events go after the statuses (lower priority): until they are sent too.
    while (v.kube.outstanding > 0 && performance.now() - t0 < 180_000) await Bun.sleep(50);
    const idleS = (performance.now() - t0) / 1000;
    const cpuIdle = process.cpuUsage(cpu0);
    const stats = { ...(v.controller?.stats ?? {}) };
    const perService = (v.kube.requestCount - req0) / N;
    const heapMb = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
    const rssMb = process.memoryUsage().rss / 2 ** 20;
    // What vipd keeps (10,000 Services in its caches) once the burst's garbage is collected.
    Bun.gc(true);
    const heapGcMb = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
    const rssGcMb = process.memoryUsage().rss / 2 ** 20;
    await v.stop();
    const firstS = curve.find(([, n]) => n > 0)?.[0] ?? 0;
    return {
      ms,
      perService,
      heapMb,
      rssMb,
      heapGcMb,
      rssGcMb,
      rss0,
      cpuS: (cpu.user + cpu.system) / 1e6,
      cpuIdleS: (cpuIdle.user + cpuIdle.system) / 1e6,
      idleS,
      curve: thin(curve),
      createdS,
      firstS,
      stats,
    };
  } finally {
    await s.close();
  }
}

/** At most ~200 points of a curve, the last one kept. */
function thin(points: [number, number][]): [number, number][] {
  const step = Math.max(1, Math.ceil(points.length / 200));
  return points.filter((_, i) => i % step === 0 || i === points.length - 1);
}

async function runBaseline(): Promise<{ ms: number; createdS: number; curve: [number, number][] }> {
  const s = await startServer();
  try {
    const kube = new Kube(loadKubeConfig(s.cluster.kubeconfig));
    // The clock starts where vipd's does: before the server creates the Services.
    const t0 = performance.now();
    await s.control(`/_test/create-services?n=${N}`);
    const createdS = (performance.now() - t0) / 1000;
    const curve: [number, number][] = [[0, 0]];
    let done = 0;
    await Promise.all(
      Array.from({ length: N }, (_, i) =>
        kube
          .mergePatch(`${PATHS.services("default")}/svc-${i}/status`, {
            status: { loadBalancer: { ingress: [{ ip: `10.128.${i >> 8}.${i & 255}` }] } },
          })
          .then(() => {
            curve.push([Math.round(performance.now() - t0) / 1000, ++done]);
          }),
      ),
    );
    return { ms: performance.now() - t0, createdS, curve: thin(curve) };
  } finally {
    await s.close();
  }
}

const vipd: Awaited<ReturnType<typeof runVipd>>[] = [];
const base: number[] = [];
/** The baseline's status patches alone (its clock started after the server created the Services). */
const patchesOnly: number[] = [];
const baseCurves: [number, number][][] = [];
for (let r = 0; r < REPEATS; r++) {
  const bl = await runBaseline();
  base.push(bl.ms);
  patchesOnly.push(bl.ms - bl.createdS * 1000);
  baseCurves.push(bl.curve);
  const x = await runVipd();
  vipd.push(x);
  console.log(
    `run ${r + 1}: vipd ${(x.ms / 1000).toFixed(2)} s (vipd CPU ${x.cpuS.toFixed(1)} s, ${x.perService.toFixed(2)} requests/Service, heap +${x.heapMb.toFixed(0)} MB, rss ${x.rssMb.toFixed(0)} MB); baseline status-only ${((base[r] ?? 0) / 1000).toFixed(2)} s`,
  );
  const st = x.stats as { reconciles?: number; configMs?: number; reconcileMs?: number };
  console.log(
    `  the server created the Services in ${x.createdS.toFixed(2)} s (in the baseline's run: ${(((base[r] ?? 0) - (patchesOnly[r] ?? 0)) / 1000).toFixed(2)} s); first status at ${x.firstS.toFixed(2)} s; controller passes ${st.reconciles ?? 0}, configuration ${((st.configMs ?? 0) / 1000).toFixed(2)} s, allocation and writes ${((st.reconcileMs ?? 0) / 1000).toFixed(2)} s; annotations and Events sent by ${x.idleS.toFixed(1)} s, vipd CPU by then ${x.cpuIdleS.toFixed(1)} s; after a full GC heap +${x.heapGcMb.toFixed(0)} MB, rss ${x.rssGcMb.toFixed(0)} MB; rss before vipd started ${x.rss0.toFixed(0)} MB`,
  );
}
const ms = median(vipd.map((x) => x.ms));
const b = median(base);
console.log(`services: ${N}; repeats: ${REPEATS}`);
console.log(`median time to every status written: ${(ms / 1000).toFixed(2)} s (goal < 30 s)`);
console.log(
  `median baseline (status patches only, same rate limit; both clocks start before the server creates the Services): ${(b / 1000).toFixed(2)} s; ratio vipd/baseline: ${(ms / b).toFixed(2)}`,
);
console.log(
  `(against the baseline's patches alone, its clock started after the Services were created, as this benchmark measured before: ${(median(patchesOnly) / 1000).toFixed(2)} s, ratio ${(ms / median(patchesOnly)).toFixed(2)})`,
);
console.log(
  `median until the annotations and Events are sent too: ${median(vipd.map((x) => x.idleS)).toFixed(1)} s, vipd CPU by then ${median(vipd.map((x) => x.cpuIdleS)).toFixed(1)} s`,
);
console.log(
  `median API requests per Service (vipd, until its queue is empty): ${median(vipd.map((x) => x.perService)).toFixed(2)}`,
);
console.log(
  `median vipd CPU: ${median(vipd.map((x) => x.cpuS)).toFixed(1)} s; heap growth: ${median(vipd.map((x) => x.heapMb)).toFixed(0)} MB; rss: ${median(vipd.map((x) => x.rssMb)).toFixed(0)} MB`,
);
const cpuS = median(vipd.map((x) => x.cpuS));
const rss = median(vipd.map((x) => x.rssMb));
console.log(
  `goals: ratio vipd/baseline ${(ms / b).toFixed(2)} (≤ 1.3), vipd CPU ${cpuS.toFixed(1)} s (≤ 5 s), RSS ${rss.toFixed(0)} MB (≤ 200 MB)`,
);
const byRun = (cs: [number, number][][]) =>
  Object.fromEntries(cs.map((c, i) => [`statuses written.run ${i + 1}`, c]));
await recording.finish({
  samples: {
    "time to every status.seconds": vipd.map((x) => x.ms / 1000),
    ...byRun(vipd.map((x) => x.curve)),
  },
  baseline: { "time to every status.seconds": base.map((x) => x / 1000), ...byRun(baseCurves) },
  figures: {
    "services/s": Math.round((N * 1000) / ms),
    "seconds to every status": ms / 1000,
    "baseline seconds": b / 1000,
    "vipd/baseline time": ms / b,
    "API requests per Service": median(vipd.map((x) => x.perService)),
    "vipd CPU seconds": cpuS,
    "rss MB": rss,
  },
  goals: [
    {
      figure: "seconds to every status",
      op: "<=",
      value: 30,
      text: `every status of ${N.toLocaleString("en-US")} Services written in under 30 s`,
    },
    { figure: "vipd/baseline time", op: "<=", value: 1.3, text: "within 1.3× the bare status patches" },
    { figure: "vipd CPU seconds", op: "<=", value: 5, text: "vipd CPU ≤ 5 s" },
    { figure: "rss MB", op: "<=", value: 200, text: "RSS ≤ 200 MB (the benchmark's process, vipd in it)" },
  ],
  units: { "statuses written": "Services", "time to every status": "s" },
  params: {
    services: N,
    repeats: REPEATS,
    server: "test API server (test/k8s/serve.ts)",
    baseline: "status PATCHes only, same rate limit",
  },
});
console.log(`services/s: ${Math.round((N * 1000) / ms)}`);
