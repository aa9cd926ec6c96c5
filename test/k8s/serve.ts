/**
 * The faithful test API server as a process of its own (for bench/k8s.ts, so the server's work
 * does not share vipd's thread). Prints one JSON line {kubeconfig, url, pid}; stops and removes
 * its files on SIGTERM or when stdin closes.
 */
import { fakeCluster } from "./harness.ts";

const c = await fakeCluster({ bookmarkMs: 5000 });
console.log(JSON.stringify({ kubeconfig: c.kubeconfig, url: c.server.url, pid: process.pid }));
let done = false;
const stop = async () => {
  if (done) return;
  done = true;
  await c.close();
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.stdin.on("end", () => void stop());
process.stdin.resume();
