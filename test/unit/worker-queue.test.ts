/**
 * src/util/worker-queue.ts, with a real Bun Worker (worker-queue-worker.ts): one job at a time in
 * order, each job made when it starts, replies matched by id, a full queue refused, a job past its
 * budget or a failing worker retired (the next job gets a fresh worker), close answers the queued.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { WorkerQueue } from "../../src/util/worker-queue.ts";

type Job = { id: number; op: string; wait?: number; bytes?: ArrayBuffer };
type Reply = { id: number; op: string; jobs: number; bytes?: number };
type V =
  | { kind: "ok"; op: string; jobs: number; bytes?: number | undefined; started: number }
  | { kind: "busy"; waiting: number }
  | { kind: "closed" }
  | { kind: "timeout" }
  | { kind: "failed"; message: string };

const URL_ = new URL("./worker-queue-worker.ts", import.meta.url).href;
const queues: WorkerQueue<Job, Reply, V>[] = [];
afterEach(() => {
  for (const q of queues.splice(0)) q.close();
});

function make(maxWaiting = 4) {
  const settled: V[] = [];
  let retired = 0;
  const q = new WorkerQueue<Job, Reply, V>({
    url: URL_,
    maxWaiting,
    verdicts: {
      busy: (waiting) => ({ kind: "busy", waiting }),
      closed: () => ({ kind: "closed" }),
      timeout: () => ({ kind: "timeout" }),
      failed: (message) => ({ kind: "failed", message }),
    },
    settled: (v) => settled.push(v),
    onRetire: () => retired++,
  });
  queues.push(q);
  let started = 0;
  const run = (op: string, opts: { wait?: number; timeoutMs?: number; bytes?: ArrayBuffer } = {}) =>
    q.submit(
      (id) => {
        started++;
        const n = started;
        return {
          job: {
            id,
            op,
            ...(opts.wait !== undefined ? { wait: opts.wait } : {}),
            ...(opts.bytes ? { bytes: opts.bytes } : {}),
          },
          transfer: opts.bytes ? [opts.bytes] : [],
          n,
        };
      },
      opts.timeoutMs ?? 10_000,
      (r) => ({ verdict: { kind: "ok", op: r.op, jobs: r.jobs, bytes: r.bytes, started }, keep: true }),
    );
  return { q, run, settled, retired: () => retired };
}

describe("WorkerQueue", () => {
  test("jobs run one at a time, in order, each made when it starts; stray replies are ignored", async () => {
    const { run, settled } = make();
    const all = await Promise.all([run("a", { wait: 20 }), run("b"), run("c")]);
    // The same worker answered all three, in order; job k was made after k-1 ended.
    expect(all.map((v) => (v.kind === "ok" ? [v.op, v.jobs, v.started] : v.kind))).toEqual([
      ["a", 1, 1],
      ["b", 2, 2],
      ["c", 3, 3],
    ]);
    expect(settled.map((v) => v.kind)).toEqual(["ok", "ok", "ok"]);
  });

  test("a full queue answers busy at once; the queued jobs still run", async () => {
    const { run, settled } = make(1);
    const first = run("slow", { wait: 50 });
    const second = run("queued");
    const third = await run("refused");
    expect(third).toEqual({ kind: "busy", waiting: 1 });
    expect((await first).kind).toBe("ok");
    expect((await second).kind).toBe("ok");
    expect(settled.map((v) => v.kind)).toEqual(["busy", "ok", "ok"]);
  });

  test("a job past its budget retires the worker; the next job gets a fresh one", async () => {
    const { run, retired } = make();
    expect(await run("hang", { timeoutMs: 100 })).toEqual({ kind: "timeout" });
    expect(retired()).toBe(1);
    const next = await run("after");
    // A fresh worker: its first job.
    expect(next.kind === "ok" ? next.jobs : -1).toBe(1);
  });

  test("a worker error fails the job and retires the worker", async () => {
    const { run, retired } = make();
    const v = await run("throw");
    expect(v.kind).toBe("failed");
    expect(v.kind === "failed" ? v.message : "").toContain("boom");
    expect(retired()).toBe(1);
    const next = await run("after");
    expect(next.kind === "ok" ? next.jobs : -1).toBe(1);
  });

  test("transferred buffers move to the worker", async () => {
    const { run } = make();
    const bytes = new Uint8Array([1, 2, 3]).buffer;
    const v = await run("bytes", { bytes });
    expect(v.kind === "ok" ? v.bytes : -1).toBe(3);
    expect(bytes.byteLength).toBe(0);
  });

  test("close answers queued jobs and later ones with closed", async () => {
    const { q, run, settled } = make();
    const running = run("hang", { timeoutMs: 200 });
    const queued = run("queued");
    q.close();
    expect(await queued).toEqual({ kind: "closed" });
    expect(await run("late")).toEqual({ kind: "closed" });
    // The running job's budget still ends it.
    expect(await running).toEqual({ kind: "timeout" });
    expect(settled.map((v) => v.kind)).toEqual(["timeout"]);
  });
});
