/**
 * A BfdManager in its own process, for interop tests, the benchmark and demos that need vipd's BFD
 * inside a network namespace: `ip netns exec NS bun test/support/bfd/agent.ts CONFIG.json`.
 *
 * CONFIG.json holds `DesiredSession[]`; the file is re-read whenever its content changes (polled
 * every 50 ms) and applied with setSessions. Output: one JSON object per line on stdout —
 * `{"ev":"ready"}`, `{"ev":"up"|"down","key","diag","t"}` (t = epoch ms, fractional),
 * `{"ev":"status",...}` on SIGUSR1 and every `--status-every MS` if given, `{"ev":"error",msg}`.
 * SIGTERM closes the manager (AdminDown to every peer) and exits.
 */

import { readFileSync } from "node:fs";
import { BfdManager, type DesiredSession } from "../../../src/bfd/manager.ts";

const path = process.argv[2];
if (!path) {
  console.error("usage: agent.ts CONFIG.json [--status-every MS]");
  process.exit(2);
}
const everyIdx = process.argv.indexOf("--status-every");
const statusEvery = everyIdx > 0 ? Number(process.argv[everyIdx + 1]) : 0;

const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
const wall = () => performance.timeOrigin + performance.now();

const mgr = new BfdManager({
  log: (msg, fields) => {
    if (msg !== "bfd packet dropped") return;
    out({ ev: "log", msg, ...fields });
  },
});
mgr.on("up", (key, diag) => out({ ev: "up", key, diag, t: wall() }));
mgr.on("down", (key, diag) => out({ ev: "down", key, diag, t: wall() }));

// Compared by content: two writes within one coarse mtime tick must not be missed.
let lastText = "";
async function load(): Promise<void> {
  const text = readFileSync(path!, "utf8");
  if (text === lastText) return;
  lastText = text;
  try {
    const desired = JSON.parse(text) as DesiredSession[];
    await mgr.setSessions(desired);
    out({ ev: "applied", n: desired.length });
  } catch (e) {
    out({ ev: "error", msg: String(e) });
  }
}

const status = () => out({ ev: "status", t: wall(), cpu: process.cpuUsage(), ...mgr.status() });
// Handlers first: a SIGUSR1 that arrived before them would kill the process.
let poll: ReturnType<typeof setInterval> | null = null;
let periodic: ReturnType<typeof setInterval> | null = null;
process.on("SIGUSR1", status);
process.on("SIGTERM", () => {
  if (poll) clearInterval(poll);
  if (periodic) clearInterval(periodic);
  void mgr.close().then(() => process.exit(0));
});
await load();
poll = setInterval(() => void load(), 50);
periodic = statusEvery > 0 ? setInterval(status, statusEvery) : null;
out({ ev: "ready" });
