/** The worker of test/unit/worker-queue.test.ts: echoes jobs; "hang" never answers, "throw" fails. */
declare const self: Worker;

let jobs = 0;
self.onmessage = async (ev: MessageEvent<{ id: number; op: string; wait?: number; bytes?: ArrayBuffer }>) => {
  const j = ev.data;
  jobs++;
  if (j.op === "hang") return;
  if (j.op === "throw") throw new Error("boom");
  if (j.wait !== undefined) await Bun.sleep(j.wait);
  // A message for another job first: the queue must ignore it.
  postMessage({ id: j.id + 1000, op: "stray", jobs });
  postMessage({ id: j.id, op: j.op, jobs, bytes: j.bytes?.byteLength ?? -1 });
};
postMessage({ id: -1, op: "ready", jobs });
