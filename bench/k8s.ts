/**
 * Kubernetes-mode benchmark (issue 9). Run: `bun bench/k8s.ts [services]` (default 10,000).
 *
 * Against the faithful test API server (test/k8s/apiserver.ts, HTTPS on loopback, in its own
 * process — test/k8s/serve.ts — so it does not share vipd's thread): vipd's controller is running
 * and synced with one /16 pool; N LoadBalancer Services are then created at once (by the server
 * itself, with the same watch events N creates make). Measured: time until every Service's
 * status.loadBalancer.ingress is written, vipd's API requests per Service, vipd's CPU and memory.
 * vipd runs in a process of its own too (this file with `--vipd`: only vipd's modules loaded, no
 * harness, no polling client), so the CPU and RSS printed are vipd's alone; the benchmark's
 * process only creates, polls and measures.
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
import { Controller } from "../src/k8s/controller.ts";
import { ClusterState } from "../src/k8s/state.ts";

/** One JSON object per line from a stream (the other process's stdout or stdin). */
function jsonLines(stream: ReadableStream<Uint8Array>): () => Promise<Record<string, unknown>> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  return async () => {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the other process closed its end");
      text += decoder.decode(value, { stream: true });
    }
    const at = text.indexOf("\n");
    const line = text.slice(0, at);
    text = text.slice(at + 1);
    return JSON.parse(line) as Record<string, unknown>;
  };
}

const cpuSeconds = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1e6;
const mb = (bytes: number): number => bytes / 2 ** 20;

/**
 * The vipd process (`--vipd <kubeconfig> <namespace>`): the controller role as the tests run it
 * (test/k8s/vipd.ts, speaker off), answering the benchmark over stdin/stdout: `start` (CPU and
 * request counts from now), `done` (every status written: CPU and memory now), then, once its
 * queue is empty, the rest.
 */
async function vipdProcess(kubeconfig: string, namespace: string): Promise<void> {
  const send = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
  const next = jsonLines(Bun.stdin.stream());
  Bun.gc(true);
  const heap0 = process.memoryUsage().heapUsed;
  const rss0 = mb(process.memoryUsage().rss);
  const kube = new Kube(loadKubeConfig(kubeconfig));
  let controller: Controller | undefined;
  const state = new ClusterState(kube, {
    namespace,
    endpointSliceVersion: "v1",
    informer: { backoffMs: [100, 1000], inactivityMs: 20_000 },
    onChange: () => controller?.kick(),
  });
  controller = new Controller(kube, state, {
    identity: "n1",
    namespace,
    leaseDurationS: 3,
    renewDeadlineMs: 2000,
    retryMs: 300,
  });
  state.start();
  controller.start();
  await state.waitSynced();
  while (!controller.isLeader) await Bun.sleep(10);
  send({ ready: true, rss0 });
  await next();
  const req0 = kube.requestCount;
  const cpu0 = process.cpuUsage();
  send({ started: true });
  await next();
  const cpuS = cpuSeconds(process.cpuUsage(cpu0));
  const heapMb = mb(process.memoryUsage().heapUsed - heap0);
  const rssMb = mb(process.memoryUsage().rss);
  send({ cpuS, heapMb, rssMb });
  await controller.idle();
  // The annotations and Events go after the statuses (lower priority): until they are sent too.
  const t = performance.now();
  while (kube.outstanding > 0 && performance.now() - t < 180_000) await Bun.sleep(50);
  const cpuIdleS = cpuSeconds(process.cpuUsage(cpu0));
  const perService = kube.requestCount - req0;
  const stats = { ...controller.stats };
  // What vipd keeps (N Services in its caches) once the burst's garbage is collected.
  Bun.gc(true);
  send({
    cpuIdleS,
    requests: perService,
    stats,
    heapGcMb: mb(process.memoryUsage().heapUsed - heap0),
    rssGcMb: mb(process.memoryUsage().rss),
  });
  await controller.stop();
  state.stop();
  process.exit(0);
}

if (process.argv[2] === "--vipd") await vipdProcess(process.argv[3] as string, process.argv[4] as string);

const { NAMESPACE } = await import("../test/k8s/harness.ts");
const { startRecording } = await import("./lib/results.ts");
type TestCluster = import("../test/k8s/harness.ts").TestCluster;

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

/** vipd in a process of its own, synced and leading, against the server at `kubeconfig`. */
async function spawnVipd(kubeconfig: string) {
  const proc = Bun.spawn(["bun", import.meta.path, "--vipd", kubeconfig, NAMESPACE], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const next = jsonLines(proc.stdout);
  const tell = (what: string) => {
    proc.stdin.write(`${JSON.stringify({ what })}\n`);
    proc.stdin.flush();
  };
  const ready = await next();
  return { proc, next, tell, rss0: ready.rss0 as number };
}

async function runVipd() {
  const s = await startServer();
  let v: Awaited<ReturnType<typeof spawnVipd>> | undefined;
  try {
    await s.cluster.admin.create(PATHS.metallb("ipaddresspools", NAMESPACE), {
      apiVersion: "metallb.io/v1beta1",
      kind: "IPAddressPool",
      metadata: { name: "big", namespace: NAMESPACE },
      spec: { addresses: ["10.128.0.0/16"] },
    });
    v = await spawnVipd(s.cluster.kubeconfig);
    v.tell("start");
    await v.next();
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
    v.tell("done");
    const at = await v.next();
    const end = await v.next();
    const idleS = (performance.now() - t0) / 1000;
    await v.proc.exited;
    const firstS = curve.find(([, n]) => n > 0)?.[0] ?? 0;
    return {
      ms,
      perService: (end.requests as number) / N,
      heapMb: at.heapMb as number,
      rssMb: at.rssMb as number,
      heapGcMb: end.heapGcMb as number,
      rssGcMb: end.rssGcMb as number,
      rss0: v.rss0,
      cpuS: at.cpuS as number,
      cpuIdleS: end.cpuIdleS as number,
      idleS,
      curve: thin(curve),
      createdS,
      firstS,
      stats: end.stats as Record<string, number>,
    };
  } finally {
    if (v !== undefined && v.proc.exitCode === null) {
      v.proc.kill("SIGTERM");
      await v.proc.exited;
    }
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
    `  the server created the Services in ${x.createdS.toFixed(2)} s (in the baseline's run: ${(((base[r] ?? 0) - (patchesOnly[r] ?? 0)) / 1000).toFixed(2)} s); first status at ${x.firstS.toFixed(2)} s; controller passes ${st.reconciles ?? 0}, configuration ${((st.configMs ?? 0) / 1000).toFixed(2)} s, allocation and writes ${((st.reconcileMs ?? 0) / 1000).toFixed(2)} s; annotations and Events sent by ${x.idleS.toFixed(1)} s, vipd CPU by then ${x.cpuIdleS.toFixed(1)} s; after a full GC heap +${x.heapGcMb.toFixed(0)} MB, rss ${x.rssGcMb.toFixed(0)} MB; vipd's process before vipd started (runtime and modules) ${x.rss0.toFixed(0)} MB`,
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
    { figure: "rss MB", op: "<=", value: 200, text: "RSS ≤ 200 MB (vipd's own process)" },
  ],
  units: { "statuses written": "Services", "time to every status": "s" },
  params: {
    services: N,
    repeats: REPEATS,
    server: "test API server (test/k8s/serve.ts)",
    vipd: "own process (controller role; this file with --vipd)",
    baseline: "status PATCHes only, same rate limit",
  },
});
console.log(`services/s: ${Math.round((N * 1000) / ms)}`);
